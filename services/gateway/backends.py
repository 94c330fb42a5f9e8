"""Clients of the three backends: a channel per service, a deadline on every call, errors translated.

Each call names its deadline: the configured one, shortened to what is left of the caller's own
deadline. A backend that was down leaves its channel in gRPC's reconnect backoff (up to two minutes), so
after an UNAVAILABLE the channel is redialled (at most every `REDIAL_INTERVAL_S`) to notice a restarted
backend at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from emotion.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    history_pb2_grpc,
    inference_pb2_grpc,
)
from services.common.clients import bearer, connect
from services.gateway.config import GatewaySettings
from services.gateway.errors import ApiError, from_backend

log = logging.getLogger(__name__)

SERVICE_NAME = "gateway"  # our name towards AuthService.IssueServiceToken
REDIAL_INTERVAL_S = 1.0
_CLOSE_GRACE_S = 30.0


def _metadata(token: str, client_address: str) -> tuple[tuple[str, str], ...] | None:
    metadata: list[tuple[str, str]] = list(bearer(token)) if token else []
    if client_address:  # auth counts failed logins per client address (AUTH_TRUSTED_PROXIES)
        metadata.append(("x-forwarded-for", client_address))
    return tuple(metadata) or None


class Backend:
    """One backend: its channel and stub, redialled after the backend was unreachable."""

    def __init__(self, name: str, target: str, stub_class: Callable[[grpc.aio.Channel], Any], max_bytes: int):
        self.name, self.target, self._stub_class, self._max_bytes = name, target, stub_class, max_bytes
        self._channel = connect(target, max_message_bytes=max_bytes)
        self.stub = stub_class(self._channel)
        self._last_redial = time.monotonic()
        self._retired: set[asyncio.Task] = set()

    def note_unavailable(self) -> None:
        """The backend could not be reached: dial a fresh channel rather than wait out the backoff."""
        now = time.monotonic()
        if now - self._last_redial < REDIAL_INTERVAL_S:
            return
        self._last_redial = now
        old = self._channel
        self._channel = connect(self.target, max_message_bytes=self._max_bytes)
        self.stub = self._stub_class(self._channel)
        task = asyncio.get_running_loop().create_task(old.close(grace=_CLOSE_GRACE_S))  # let calls finish
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def call(
        self,
        method: str,
        request,
        *,
        deadline_s: float,
        token: str = "",
        remaining: float | None = None,
        client_address: str = "",
    ):
        """Unary call with a deadline; failures become ApiError."""
        if remaining is not None:
            deadline_s = max(0.05, min(deadline_s, remaining - 0.05))
        try:
            return await getattr(self.stub, method)(
                request, timeout=deadline_s, metadata=_metadata(token, client_address)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self.note_unavailable()
            raise from_backend(exc, self.name) from None

    async def close(self) -> None:
        await self._channel.close()
        for task in list(self._retired):
            task.cancel()


class Backends:
    """The gateway's view of auth, history and inference."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        size = settings.max_message_bytes + 64 * 1024  # an image plus the message around it
        self.auth = Backend("auth", settings.auth_addr, auth_pb2_grpc.AuthServiceStub, size)
        self.history = Backend("history", settings.history_addr, history_pb2_grpc.HistoryServiceStub, size)
        self.inference = Backend(
            "inference", settings.inference_addr, inference_pb2_grpc.InferenceServiceStub, size
        )
        self._service_token = ""
        self._service_token_expiry = 0.0
        self._token_lock = asyncio.Lock()

    async def service_token(self) -> str:
        """A cached service token (role "service") for writes on behalf of users, e.g. outbox replays."""
        if not self.settings.service_secret:
            raise ApiError(grpc.StatusCode.FAILED_PRECONDITION, "GATEWAY_SERVICE_SECRET is not configured")
        async with self._token_lock:
            if time.time() < self._service_token_expiry - 30:
                return self._service_token
            reply = await self.auth.call(
                "IssueServiceToken",
                auth_pb2.IssueServiceTokenRequest(service=SERVICE_NAME, secret=self.settings.service_secret),
                deadline_s=self.settings.backend_timeout_s,
            )
            self._service_token = reply.access_token
            expires = reply.expires_at.ToSeconds() if reply.HasField("expires_at") else time.time() + 60
            self._service_token_expiry = float(expires)
            return self._service_token

    def forget_service_token(self) -> None:
        self._service_token_expiry = 0.0

    async def close(self) -> None:
        for backend in (self.auth, self.history, self.inference):
            await backend.close()
