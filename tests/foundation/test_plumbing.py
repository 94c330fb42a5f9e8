"""Shared plumbing in-process on real gRPC: token checks, the auth interceptor,
client deadlines, request-id propagation and retries of idempotent calls."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from emotion.v1 import history_pb2, history_pb2_grpc
from services.common.clients import connect, service_config
from services.common.config import ServiceSettings
from services.common.keys import generate_private_pem, key_id, public_pem_of
from services.common.logs import request_id_var
from services.common.server import GrpcService, serve
from services.common.tokens import InvalidToken, TokenVerifier, current_principal
from tests.support import free_port

ISS, AUD = "emotion-auth", "emotion"


def mint(private_pem: str, *, kid: str | None = None, exp_in: float = 900, **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": ISS,
        "aud": AUD,
        "sub": "u1",
        "role": "user",
        "typ": "access",
        "iat": now,
        "exp": now + int(exp_in),
        **claims,
    }
    key = load_pem_private_key(private_pem.encode(), None)
    return jwt.encode(
        payload, key, algorithm="EdDSA", headers={"kid": kid or key_id(public_pem_of(private_pem))}
    )


@pytest.fixture
def keypair():
    private = generate_private_pem()
    return private, public_pem_of(private)


@pytest.fixture
def verifier(keypair):
    _, public = keypair
    return TokenVerifier(ISS, AUD, keys={key_id(public): public})


async def test_valid_token_gives_principal(keypair, verifier):
    principal = await verifier.verify(mint(keypair[0], role="counselor", org="Clinic", username="c"))
    assert (principal.user_id, principal.role, principal.organization) == ("u1", "counselor", "Clinic")


@pytest.mark.parametrize("case", ["expired", "other_key", "alg_none", "tampered", "refresh_typ", "wrong_aud"])
async def test_bad_tokens_are_refused(keypair, verifier, case):
    private, public = keypair
    if case == "expired":
        token = mint(private, exp_in=-60)
    elif case == "other_key":  # signed by a key the verifier doesn't know, under the known kid
        token = mint(generate_private_pem(), kid=key_id(public))
    elif case == "alg_none":
        header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": key_id(public)}).encode())
        body = base64.urlsafe_b64encode(json.dumps({"sub": "admin", "iss": ISS, "aud": AUD}).encode())
        token = f"{header.decode().rstrip('=')}.{body.decode().rstrip('=')}."
    elif case == "tampered":
        head, body, sig = mint(private).split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=="))
        claims["sub"] = "someone-else"
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        token = f"{head}.{body}.{sig}"
    elif case == "refresh_typ":
        token = mint(private, typ="refresh")
    else:
        token = mint(private, aud="elsewhere")
    with pytest.raises(InvalidToken):
        await verifier.verify(token)


async def test_unknown_kid_refetches_keys_for_rotation(keypair):
    private, public = keypair
    new_private = generate_private_pem()
    served = {key_id(public): public}
    fetches = 0

    async def fetch():
        nonlocal fetches
        fetches += 1
        return dict(served)

    verifier = TokenVerifier(ISS, AUD, fetch_keys=fetch)
    await verifier.verify(mint(private))
    served[key_id(public_pem_of(new_private))] = public_pem_of(new_private)  # auth rotated its key
    verifier._last_fetch = float("-inf")
    assert (await verifier.verify(mint(new_private))).user_id == "u1"
    assert fetches == 2


class _RecordingHistory(history_pb2_grpc.HistoryServiceServicer):
    """A real servicer: fails the first `failures` ListAnalyses with UNAVAILABLE, records what it saw."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.seen: list[tuple[str, str, float | None]] = []

    async def ListAnalyses(self, request, context):
        self.calls += 1
        md = dict(context.invocation_metadata())
        self.seen.append((current_principal().user_id, md.get("x-request-id", ""), context.time_remaining()))
        if self.calls <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return history_pb2.ListAnalysesResponse()


@pytest.fixture
async def history_server(verifier):
    servicer = _RecordingHistory(failures=2)
    port = free_port()
    stop = asyncio.Event()

    def register(server):
        history_pb2_grpc.add_HistoryServiceServicer_to_server(servicer, server)
        return ["emotion.v1.HistoryService"]

    settings = ServiceSettings(port=port, metrics_port=-1, grace_seconds=1)
    task = asyncio.create_task(serve(GrpcService("test", settings, register, verifier=verifier), stop))
    for _ in range(50):
        await asyncio.sleep(0.05)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                await asyncio.wait_for(ch.channel_ready(), 0.5)
            break
        except (TimeoutError, grpc.RpcError):
            continue
    yield servicer, port
    stop.set()
    await task


async def test_auth_interceptor_retries_deadline_and_request_id(history_server, keypair):
    servicer, port = history_server
    async with connect(f"127.0.0.1:{port}", timeout_s=2.5) as channel:
        stub = history_pb2_grpc.HistoryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListAnalyses(history_pb2.ListAnalysesRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert servicer.calls == 0  # refused before the handler ran

        request_id_var.set("req-123")
        metadata = (("authorization", f"Bearer {mint(keypair[0])}"),)
        await stub.ListAnalyses(history_pb2.ListAnalysesRequest(), metadata=metadata)
    # Two UNAVAILABLE answers were retried by the channel's service config; the third attempt succeeded.
    assert servicer.calls == 3
    user, request_id, remaining = servicer.seen[-1]
    assert (user, request_id) == ("u1", "req-123")
    assert remaining is not None and 0 < remaining <= 2.5  # the default deadline was applied


def test_only_idempotent_methods_are_retried():
    config = json.loads(service_config())
    names = {(n["service"], n["method"]) for mc in config["methodConfig"] for n in mc["name"]}
    assert ("emotion.v1.HistoryService", "RecordAnalysis") in names  # idempotent by request_id
    for not_safe in ("Login", "Register", "Refresh", "ChangePassword", "DeleteAccount"):
        assert ("emotion.v1.AuthService", not_safe) not in names
    assert all(mc["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"] for mc in config["methodConfig"])


async def test_malformed_request_bytes_are_invalid_argument(history_server, keypair):
    """A string field that is not UTF-8 cannot be parsed: the caller hears INVALID_ARGUMENT, not UNKNOWN."""
    servicer, port = history_server
    bad_page_token = b"\x1a\x02\xff\xfe"  # field 3 (page_token, a string), two bytes that are not UTF-8
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/emotion.v1.HistoryService/ListAnalyses")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(bad_page_token, metadata=(("authorization", f"Bearer {mint(keypair[0])}"),), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in err.value.details()
    assert servicer.calls == 0
