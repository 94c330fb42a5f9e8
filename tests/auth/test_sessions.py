"""Login, refresh rotation with reuse detection, logout, expiry, lockout and enumeration safety."""

from __future__ import annotations

import statistics
import time

import grpc
import jwt
import pytest

from emotion.v1 import auth_pb2
from services.common.tokens import TokenVerifier
from tests.auth.conftest import PASSWORD, bearer_md, running_auth, settings_for

pytestmark = pytest.mark.asyncio


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def verifier_of(auth) -> TokenVerifier:
    reply = await auth.stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest())
    return TokenVerifier(reply.issuer, "emotion", keys={k.kid: k.pem for k in reply.keys})


async def test_login_returns_verifiable_tokens_and_profile(auth):
    user = await auth.register("Alice")
    reply = await auth.login("ALICE")  # usernames are case-insensitive
    assert reply.user.id == user.id

    principal = await (await verifier_of(auth)).verify(reply.tokens.access_token)
    assert (principal.subject, principal.role, principal.username) == (user.id, "user", "Alice")
    assert principal.session_id
    header = jwt.get_unverified_header(reply.tokens.access_token)
    assert header["alg"] == "EdDSA" and header["kid"]

    now = auth.clock().timestamp()
    assert abs(reply.tokens.access_expires_at.seconds - (now + 15 * 60)) <= 1
    assert abs(reply.tokens.refresh_expires_at.seconds - (now + 30 * 24 * 3600)) <= 1
    assert len(reply.tokens.refresh_token) >= 40

    profile = await auth.stub.GetProfile(
        auth_pb2.GetProfileRequest(), metadata=bearer_md(reply.tokens.access_token)
    )
    assert profile.user.username == "Alice"

    # The refresh token is stored only as its SHA-256.
    from services.auth.storage import RefreshToken
    from services.auth.tokens import hash_refresh_token

    async with auth.app.storage.transaction() as db:
        assert await db.get(RefreshToken, reply.tokens.refresh_token) is None
        assert await db.get(RefreshToken, hash_refresh_token(reply.tokens.refresh_token)) is not None


async def test_unknown_user_and_wrong_password_are_indistinguishable(auth):
    await auth.register("alice")
    wrong = await rpc_error(auth.login("alice", "wrong password 123"))
    unknown = await rpc_error(auth.login("nobody", "wrong password 123"))
    assert wrong.code() == unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong.details() == unknown.details() == "invalid username or password"
    missing = await rpc_error(auth.login("", ""))
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unknown_user_costs_as_much_time_as_a_wrong_password(database_url, tmp_path):
    # Realistic Argon2 cost, so the hash dominates and a missing dummy hash would show.
    settings = settings_for(
        database_url,
        tmp_path,
        argon2_time_cost=2,
        argon2_memory_kib=16 * 1024,
        lockout_max_failures=100,
        address_max_failures=100,
    )
    async with running_auth(settings) as auth:
        await auth.register("alice")

        async def timed(username: str) -> float:
            started = time.perf_counter()
            await rpc_error(auth.login(username, "wrong password 123"))
            return time.perf_counter() - started

        known, unknown = [], []
        for i in range(5):
            known.append(await timed("alice"))
            unknown.append(await timed(f"nobody{i}"))
        # Without the dummy hash an unknown username would answer several times faster.
        ratio = statistics.median(unknown) / statistics.median(known)
        assert 0.5 < ratio < 2.0, (known, unknown)


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(auth):
    await auth.register("alice")
    first = (await auth.login()).tokens
    other_session = (await auth.login()).tokens

    auth.clock.advance(seconds=5)
    second = (await auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=first.refresh_token))).tokens
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert second.refresh_expires_at.seconds > first.refresh_expires_at.seconds  # renewed
    third = (await auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=second.refresh_token))).tokens

    # Replaying a spent token (as a thief would) fails and kills every token of that login...
    replay = await rpc_error(auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=first.refresh_token)))
    assert replay.code() == grpc.StatusCode.UNAUTHENTICATED
    revoked = await rpc_error(auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=third.refresh_token)))
    assert revoked.code() == grpc.StatusCode.UNAUTHENTICATED
    # ...including access tokens of that session at auth itself,
    ended = await rpc_error(
        auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=bearer_md(third.access_token))
    )
    assert ended.code() == grpc.StatusCode.UNAUTHENTICATED
    # but not the user's other sessions.
    fine = await auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=other_session.refresh_token))
    assert fine.tokens.access_token

    unknown = await rpc_error(auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token="made-up")))
    assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    empty = await rpc_error(auth.stub.Refresh(auth_pb2.RefreshRequest()))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_logout_revokes_the_session_and_is_idempotent(auth):
    await auth.register("alice")
    tokens = (await auth.login()).tokens
    await auth.stub.Logout(auth_pb2.LogoutRequest(refresh_token=tokens.refresh_token))
    error = await rpc_error(auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = await rpc_error(
        auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=bearer_md(tokens.access_token))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    await auth.stub.Logout(auth_pb2.LogoutRequest(refresh_token=tokens.refresh_token))  # again: fine
    await auth.stub.Logout(auth_pb2.LogoutRequest(refresh_token="never-issued"))


async def test_tokens_expire_by_the_injected_clock(auth):
    await auth.register("alice")
    verifier = await verifier_of(auth)

    auth.clock.advance(minutes=-14)  # minted 14 minutes ago: still valid
    young = (await auth.login()).tokens
    await verifier.verify(young.access_token)
    await auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=bearer_md(young.access_token))

    auth.clock.advance(minutes=-2)  # minted 16 minutes ago: expired
    old = (await auth.login()).tokens
    error = await rpc_error(
        auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=bearer_md(old.access_token))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in error.details()

    auth.clock.advance(minutes=16)
    tokens = (await auth.login()).tokens
    auth.clock.advance(days=29, hours=23)
    tokens = (await auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token))).tokens
    auth.clock.advance(days=30, seconds=1)  # each rotation renews 30 days; then it lapses
    error = await rpc_error(auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_lockout_after_five_failures_with_retry_after(auth):
    await auth.register("alice")
    for _ in range(5):
        error = await rpc_error(auth.login("alice", "wrong password 123"))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        auth.clock.advance(seconds=10)

    # Even the right password is refused during the cool-down, and without checking it.
    locked = await rpc_error(auth.login("Alice", PASSWORD))
    assert locked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_after = int(dict(locked.trailing_metadata())["retry-after"])
    assert retry_after == 15 * 60 - 50  # the first failure ages out of the 15-minute window
    assert f"retry after {retry_after} seconds" in locked.details()

    auth.clock.advance(seconds=retry_after - 1)
    assert (await rpc_error(auth.login("alice", PASSWORD))).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    auth.clock.advance(seconds=1)
    assert (await auth.login("alice", PASSWORD)).user.username == "alice"

    # A success clears the count: four more failures do not lock.
    for _ in range(4):
        await rpc_error(auth.login("alice", "wrong password 123"))
    assert (await auth.login("alice", PASSWORD)).user.username == "alice"


async def test_lockout_looks_the_same_for_unknown_usernames(auth):
    await auth.register("alice")
    for name in ("alice", "ghost"):
        for _ in range(5):
            await rpc_error(auth.login(name, "wrong password 123"))
    alice = await rpc_error(auth.login("alice", "wrong password 123"))
    ghost = await rpc_error(auth.login("ghost", "wrong password 123"))
    assert alice.code() == ghost.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert alice.details() == ghost.details()
    # Another username is not affected.
    await auth.register("bob")
    assert (await auth.login("bob", PASSWORD)).user.username == "bob"


async def test_per_address_limit_spans_usernames(database_url, tmp_path):
    settings = settings_for(database_url, tmp_path, address_max_failures=8)
    async with running_auth(settings) as auth:
        await auth.register("alice")
        for i in range(8):  # a credential-stuffing run: one try per username
            assert (await rpc_error(auth.login(f"user{i}", "wrong password 123"))).code() == (
                grpc.StatusCode.UNAUTHENTICATED
            )
        blocked = await rpc_error(auth.login("alice", PASSWORD))
        assert blocked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert int(dict(blocked.trailing_metadata())["retry-after"]) > 0
        auth.clock.advance(minutes=15, seconds=1)
        assert (await auth.login("alice", PASSWORD)).user.username == "alice"


async def test_behind_a_trusted_proxy_the_forwarded_client_address_counts(database_url, tmp_path):
    settings = settings_for(
        database_url, tmp_path, address_max_failures=3, trusted_proxies="127.0.0.0/8, ::1"
    )

    def via_gateway(client: str) -> tuple[tuple[str, str]]:
        return (("x-forwarded-for", client),)

    async with running_auth(settings) as auth:
        await auth.register("alice")
        for i in range(3):
            request = auth_pb2.LoginRequest(username=f"user{i}", password="wrong password 123")
            await rpc_error(auth.stub.Login(request, metadata=via_gateway("203.0.113.7")))
        request = auth_pb2.LoginRequest(username="alice", password=PASSWORD)
        blocked = await rpc_error(auth.stub.Login(request, metadata=via_gateway("203.0.113.7")))
        assert blocked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Other clients behind the same gateway are not affected.
        assert (await auth.stub.Login(request, metadata=via_gateway("198.51.100.2"))).user.username == "alice"
