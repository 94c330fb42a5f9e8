"""Profile, password change, counsellor lookup and agreements."""

from __future__ import annotations

import grpc
import pytest

from emotion.v1 import auth_pb2
from services.auth import agreements
from tests.auth.conftest import PASSWORD, bearer_md

pytestmark = pytest.mark.asyncio

NEW_PASSWORD = "a brand new passphrase"


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_get_and_update_profile(auth):
    await auth.register("alice", display_name="Alice")
    md = bearer_md((await auth.login()).tokens.access_token)

    profile = (await auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=md)).user
    assert (profile.display_name, profile.phone, profile.store_thumbnails) == (
        "Alice",
        "+442079460958",
        False,
    )

    updated = (
        await auth.stub.UpdateProfile(
            auth_pb2.UpdateProfileRequest(display_name=" Alice Ω ", phone="138 0013 8000", phone_region="CN"),
            metadata=md,
        )
    ).user
    assert (updated.display_name, updated.phone, updated.store_thumbnails) == (
        "Alice Ω",
        "+8613800138000",
        False,
    )

    # Unset fields are left alone; explicit false is a change.
    opted_in = (
        await auth.stub.UpdateProfile(auth_pb2.UpdateProfileRequest(store_thumbnails=True), metadata=md)
    ).user
    assert (opted_in.display_name, opted_in.store_thumbnails) == ("Alice Ω", True)
    opted_out = (
        await auth.stub.UpdateProfile(auth_pb2.UpdateProfileRequest(store_thumbnails=False), metadata=md)
    ).user
    assert not opted_out.store_thumbnails
    assert (await auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=md)).user == opted_out

    for request, field in (
        (auth_pb2.UpdateProfileRequest(display_name="   "), "display_name"),
        (auth_pb2.UpdateProfileRequest(display_name="x" * 65), "display_name"),
        (auth_pb2.UpdateProfileRequest(phone="12"), "phone"),
        (auth_pb2.UpdateProfileRequest(phone="+44 20 7946 0958", phone_region="ZZ"), "phone_region"),
    ):
        error = await rpc_error(auth.stub.UpdateProfile(request, metadata=md))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith(field + ":"), error.details()
    assert (await auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=md)).user == opted_out


async def test_change_password_reauthenticates_and_revokes_other_sessions(auth):
    await auth.register("alice")
    current = (await auth.login()).tokens
    other = (await auth.login()).tokens
    md = bearer_md(current.access_token)

    wrong = await rpc_error(
        auth.stub.ChangePassword(
            auth_pb2.ChangePasswordRequest(current_password="not my password", new_password=NEW_PASSWORD),
            metadata=md,
        )
    )
    assert wrong.code() == grpc.StatusCode.PERMISSION_DENIED
    for new_password in ("short", "alice", "1234567890", PASSWORD):
        error = await rpc_error(
            auth.stub.ChangePassword(
                auth_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=new_password),
                metadata=md,
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, new_password
        assert error.details().startswith("new_password:")

    changed = (
        await auth.stub.ChangePassword(
            auth_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD), metadata=md
        )
    ).tokens
    # Every earlier session is over, the new one works.
    for old in (current, other):
        error = await rpc_error(auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=old.refresh_token)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        error = await rpc_error(
            auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=bearer_md(old.access_token))
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    await auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=bearer_md(changed.access_token))
    await auth.stub.Refresh(auth_pb2.RefreshRequest(refresh_token=changed.refresh_token))

    assert (await rpc_error(auth.login("alice", PASSWORD))).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await auth.login("alice", NEW_PASSWORD)).user.username == "alice"


async def test_reauthentication_failures_count_towards_lockout(auth):
    await auth.register("alice")
    md = bearer_md((await auth.login()).tokens.access_token)
    for _ in range(5):
        await rpc_error(
            auth.stub.ChangePassword(
                auth_pb2.ChangePasswordRequest(current_password="guess number x", new_password=NEW_PASSWORD),
                metadata=md,
            )
        )
    locked = await rpc_error(
        auth.stub.ChangePassword(
            auth_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD), metadata=md
        )
    )
    assert locked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await rpc_error(auth.login())).code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_lookup_counselor_and_agreements(auth):
    from services.auth.handlers import NewAccount

    await auth.app.handlers.accounts.create(
        NewAccount(
            "DrWu", PASSWORD, "+8613800138000", display_name="Dr. Wu", role="counselor", organization="Clinic"
        )
    )
    found = await auth.stub.LookupCounselor(auth_pb2.LookupCounselorRequest(username="drwu"))
    assert (found.username, found.display_name, found.organization) == ("DrWu", "Dr. Wu", "Clinic")
    assert found.counselor_id
    error = await rpc_error(auth.stub.LookupCounselor(auth_pb2.LookupCounselorRequest(username="nobody")))
    assert error.code() == grpc.StatusCode.NOT_FOUND

    reply = await auth.stub.GetAgreements(auth_pb2.GetAgreementsRequest())
    policy, terms = reply.privacy_policy, reply.user_agreement
    assert policy.version == agreements.current(agreements.PRIVACY_POLICY, auth.clock()).version
    assert (policy.title, terms.title) == ("Privacy Policy", "User Agreement")
    assert policy.effective_at.ToDatetime().date().isoformat() == policy.version
    text = policy.text_markdown.lower()
    for promise in (
        "no image is kept unless you opt in",
        "not a medical or psychological diagnosis",
        "consent",
        "delete your account",
        "how long we keep it",
    ):
        assert promise in text, promise
    assert "not a diagnosis" in terms.text_markdown.lower() or "not medical" in terms.text_markdown.lower()
