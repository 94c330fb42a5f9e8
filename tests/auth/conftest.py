"""Auth test fixtures: the real service (handlers, interceptors, migrations) served over real
gRPC inside the test's event loop against a real database, with an injectable clock, and a
small real HistoryService that records DeleteAllForUser calls."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emotion.v1 import auth_pb2, auth_pb2_grpc, history_pb2, history_pb2_grpc
from services.auth import agreements
from services.auth.server import AuthApp, AuthSettings
from services.common.server import serve
from services.common.tokens import InvalidToken, TokenVerifier, bearer_token
from tests.support import free_port

GATEWAY_SECRET = "gateway-secret-for-tests-0123456789"
PASSWORD = "correct horse battery"

# Argon2 parameters small enough for fast tests; production values are in AuthSettings.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}


class FakeClock:
    """An adjustable 'now' for the service (token expiry, lockout windows)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def settings_for(database_url: str, tmp_path: Path, **overrides) -> AuthSettings:
    values = {
        "database_url": database_url,
        "port": free_port(),
        "metrics_port": -1,
        "grace_seconds": 0.5,
        "dev_signing_key_file": str(tmp_path / "keys" / "auth_signing_key.pem"),
        "service_secrets": f"gateway={GATEWAY_SECRET}",
        "history_addr": "127.0.0.1:1",  # nothing listens: tests that need history pass one
        "history_retry_interval_s": 3600,  # tests drive retries with maintain_once()
        **FAST_ARGON2,
        **overrides,
    }
    return AuthSettings(**values)


@dataclass
class RunningAuth:
    app: AuthApp
    clock: FakeClock
    channel: grpc.aio.Channel
    stub: auth_pb2_grpc.AuthServiceStub
    address: str

    async def register(self, username: str = "alice", password: str = PASSWORD, **fields) -> auth_pb2.User:
        request = registration(username, password, **fields)
        return (await self.stub.Register(request)).user

    async def login(self, username: str = "alice", password: str = PASSWORD) -> auth_pb2.LoginResponse:
        return await self.stub.Login(auth_pb2.LoginRequest(username=username, password=password))


def registration(username: str = "alice", password: str = PASSWORD, **fields) -> auth_pb2.RegisterRequest:
    now = datetime.now(UTC)
    values = {
        "phone": "+44 20 7946 0958",
        "accepted_privacy_policy_version": agreements.current(agreements.PRIVACY_POLICY, now).version,
        "accepted_user_agreement_version": agreements.current(agreements.USER_AGREEMENT, now).version,
        **fields,
    }
    return auth_pb2.RegisterRequest(username=username, password=password, **values)


async def wait_serving(address: str, timeout_s: float = 60.0) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{address} not serving")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_auth(settings: AuthSettings, clock: FakeClock | None = None):
    clock = clock or FakeClock()
    app = AuthApp(settings, clock)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app.service(), stop))
    address = f"127.0.0.1:{settings.port}"
    try:
        await asyncio.wait_for(asyncio.shield(wait_serving(address)), 90)
        async with grpc.aio.insecure_channel(address) as channel:
            yield RunningAuth(app, clock, channel, auth_pb2_grpc.AuthServiceStub(channel), address)
    finally:
        stop.set()
        await server


@pytest_asyncio.fixture
async def auth(database_url, tmp_path):
    async with running_auth(settings_for(database_url, tmp_path)) as running:
        yield running


@dataclass
class HistoryCalls:
    deleted: list[tuple[str, str, str]] = field(default_factory=list)  # (user_id, caller subject, role)
    deleted_analyses: int = 3
    refusals: list[str] = field(default_factory=list)


class RecordingHistory(history_pb2_grpc.HistoryServiceServicer):
    """A real HistoryService endpoint that checks the caller's token like history does."""

    def __init__(self, verifier: TokenVerifier, calls: HistoryCalls) -> None:
        self.verifier = verifier
        self.calls = calls

    async def DeleteAllForUser(self, request, context):
        try:
            principal = await self.verifier.verify(bearer_token(dict(context.invocation_metadata())))
        except InvalidToken as exc:
            self.calls.refusals.append(str(exc))
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if not principal.is_service:
            self.calls.refusals.append(f"role {principal.role}")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "service callers only")
        self.calls.deleted.append((request.user_id, principal.subject, principal.role))
        return history_pb2.DeleteAllForUserResponse(deleted_analyses=self.calls.deleted_analyses)


@contextlib.asynccontextmanager
async def recording_history(auth_address: str, port: int | None = None):
    """History on `port`, verifying tokens with keys fetched from auth's GetPublicKeys."""

    async def fetch_keys() -> dict[str, str]:
        async with grpc.aio.insecure_channel(auth_address) as channel:
            reply = await auth_pb2_grpc.AuthServiceStub(channel).GetPublicKeys(
                auth_pb2.GetPublicKeysRequest()
            )
        return {k.kid: k.pem for k in reply.keys}

    calls = HistoryCalls()
    server = grpc.aio.server()
    # A day of leeway: tests move auth's clock ahead of this verifier's real one.
    verifier = TokenVerifier("emotion-auth", "emotion", fetch_keys=fetch_keys, leeway_s=24 * 3600)
    history_pb2_grpc.add_HistoryServiceServicer_to_server(RecordingHistory(verifier, calls), server)
    port = server.add_insecure_port(f"127.0.0.1:{port or 0}")
    await server.start()
    try:
        yield calls, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def bearer_md(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
