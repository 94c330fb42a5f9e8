"""Forged and mangled access tokens are refused; key rotation keeps old tokens valid; service tokens."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from emotion.v1 import auth_pb2
from services.auth.tokens import KeyRing, TokenMinter
from services.common.keys import generate_private_pem, key_id, public_pem_of
from tests.auth.conftest import GATEWAY_SECRET, bearer_md, running_auth, settings_for

pytestmark = pytest.mark.asyncio


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


async def profile_code(auth, token: str) -> grpc.StatusCode:
    try:
        await auth.stub.GetProfile(auth_pb2.GetProfileRequest(), metadata=bearer_md(token))
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_forged_and_mangled_tokens_are_refused(auth):
    await auth.register("alice")
    await auth.register("mallory")
    token = (await auth.login("mallory")).tokens.access_token
    alice_id = (await auth.login("alice")).user.id
    assert await profile_code(auth, token) == grpc.StatusCode.OK

    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(unb64(header_b64))
    claims = json.loads(unb64(payload_b64))

    # Tampered payload: become alice, or a counsellor, keeping the signature.
    for change in ({"sub": alice_id}, {"role": "counselor"}, {"exp": claims["exp"] + 3600}):
        forged = ".".join([header_b64, b64(json.dumps({**claims, **change}).encode()), signature_b64])
        assert await profile_code(auth, forged) == grpc.StatusCode.UNAUTHENTICATED, change
    # Tampered signature.
    flipped = bytearray(unb64(signature_b64))
    flipped[0] ^= 1
    assert await profile_code(auth, f"{header_b64}.{payload_b64}.{b64(bytes(flipped))}") == (
        grpc.StatusCode.UNAUTHENTICATED
    )

    # Signed by another Ed25519 key, claiming our key id, or its own.
    other_key = Ed25519PrivateKey.generate()
    for kid in (header["kid"], "someone-elses-key"):
        forged = jwt.encode({**claims, "sub": alice_id}, other_key, algorithm="EdDSA", headers={"kid": kid})
        assert await profile_code(auth, forged) == grpc.StatusCode.UNAUTHENTICATED, kid

    # alg: none, with and without a signature.
    none_header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": header["kid"]}).encode())
    none_payload = b64(json.dumps({**claims, "sub": alice_id}).encode())
    for unsigned in (f"{none_header}.{none_payload}.", f"{none_header}.{none_payload}.{signature_b64}"):
        assert await profile_code(auth, unsigned) == grpc.StatusCode.UNAUTHENTICATED

    # Algorithm confusion: HS256 keyed with the public key PEM.
    public_pem = (await auth.stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest())).keys[0].pem
    hs = jwt.api_jws.PyJWS()
    hs._algorithms["HS256"].prepare_key = lambda key: key  # PyJWT refuses PEM HMAC keys; an attacker wouldn't
    confused = hs.encode(
        json.dumps({**claims, "sub": alice_id}).encode(),
        public_pem.encode(),
        algorithm="HS256",
        headers={"kid": header["kid"]},
    )
    assert await profile_code(auth, confused) == grpc.StatusCode.UNAUTHENTICATED

    # Garbage, wrong scheme, no token.
    assert await profile_code(auth, "not.a.jwt") == grpc.StatusCode.UNAUTHENTICATED
    assert await profile_code(auth, token.replace(".", "", 1)) == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.stub.GetProfile(
            auth_pb2.GetProfileRequest(), metadata=(("authorization", f"Basic {token}"),)
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.stub.GetProfile(auth_pb2.GetProfileRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_audience_issuer_or_type_is_refused(auth):
    user = await auth.register("alice")
    tokens = (await auth.login("alice")).tokens
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    minter = auth.app.minter
    for change in ({"aud": "elsewhere"}, {"iss": "someone"}, {"typ": "refresh"}):
        forged = jwt.encode(
            {**claims, **change, "sub": user.id},
            minter._private_key,
            algorithm="EdDSA",
            headers={"kid": auth.app.keyring.active_kid},
        )
        assert await profile_code(auth, forged) == grpc.StatusCode.UNAUTHENTICATED, change
    # The opaque refresh token is not an access token.
    assert await profile_code(auth, tokens.refresh_token) == grpc.StatusCode.UNAUTHENTICATED


async def test_rotated_out_key_still_verifies_until_removed(database_url, tmp_path):
    old_private = generate_private_pem()
    old_public = public_pem_of(old_private)
    (tmp_path / "old.pub.pem").write_text(old_public)
    new_key = tmp_path / "new.pem"
    new_key.write_text(generate_private_pem())
    settings = settings_for(
        database_url,
        tmp_path,
        signing_key_file=str(new_key),
        verify_key_files=f" {tmp_path / 'old.pub.pem'} ,",
    )
    async with running_auth(settings) as auth:
        user = await auth.register("alice")
        session_id = (await auth.login("alice")).tokens  # a live session for the old-key token below
        sid = jwt.decode(session_id.access_token, options={"verify_signature": False})["sid"]

        reply = await auth.stub.GetPublicKeys(auth_pb2.GetPublicKeysRequest())
        kids = [k.kid for k in reply.keys]
        assert kids == [auth.app.keyring.active_kid, key_id(old_public)]  # active first
        assert {k.algorithm for k in reply.keys} == {"EdDSA"}
        assert reply.issuer == "emotion-auth"

        old_minter = TokenMinter(
            KeyRing(old_private), "emotion-auth", "emotion", timedelta(minutes=15), timedelta(minutes=5)
        )
        old_token = old_minter.access_token(user.id, "user", "alice", "", sid).token
        assert jwt.get_unverified_header(old_token)["kid"] == key_id(old_public)
        assert await profile_code(auth, old_token) == grpc.StatusCode.OK

        # New tokens are signed with the new key only.
        fresh = (await auth.login("alice")).tokens.access_token
        assert jwt.get_unverified_header(fresh)["kid"] == auth.app.keyring.active_kid

    # Once the old key is dropped from AUTH_VERIFY_KEY_FILES, its tokens are refused.
    async with running_auth(settings_for(database_url, tmp_path, signing_key_file=str(new_key))) as auth:
        assert await profile_code(auth, old_token) == grpc.StatusCode.UNAUTHENTICATED


async def test_service_tokens(auth):
    reply = await auth.stub.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(service="gateway", secret=GATEWAY_SECRET)
    )
    claims = jwt.decode(reply.access_token, options={"verify_signature": False})
    assert (claims["sub"], claims["role"], claims["typ"]) == ("service:gateway", "service", "access")
    assert abs(reply.expires_at.seconds - (auth.clock().timestamp() + 300)) <= 1
    # A service has no profile.
    assert await profile_code(auth, reply.access_token) == grpc.StatusCode.PERMISSION_DENIED

    for service, secret in (
        ("gateway", "wrong"),
        ("gateway", GATEWAY_SECRET[:-1]),
        ("intruder", GATEWAY_SECRET),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await auth.stub.IssueServiceToken(
                auth_pb2.IssueServiceTokenRequest(service=service, secret=secret)
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details() == "unknown service or wrong secret"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await auth.stub.IssueServiceToken(auth_pb2.IssueServiceTokenRequest(service="gateway"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_dev_signing_key_is_generated_once_with_private_permissions(auth, tmp_path):
    key_file = tmp_path / "keys" / "auth_signing_key.pem"
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert auth.app.keyring.active_kid == key_id(public_pem_of(key_file.read_text()))
    mtime = key_file.stat().st_mtime_ns
    await asyncio.sleep(0.01)
    from services.auth.tokens import load_keyring

    again = load_keyring("", [], str(key_file))
    assert again.active_kid == auth.app.keyring.active_kid and key_file.stat().st_mtime_ns == mtime
