"""The public EmotionGateway gRPC service: admission (rate limits), then the shared operations.

The access token was already verified by the server's AuthInterceptor (services.common.server), which
leaves the principal in `current_principal()`; the methods in PUBLIC_METHODS need none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from emotion.v1 import gateway_pb2, gateway_pb2_grpc
from services.common.tokens import bearer_token, current_principal
from services.gateway.core import Caller, Gateway
from services.gateway.errors import ApiError
from services.gateway.live import LiveSession

PUBLIC_METHODS = frozenset({"Register", "Login", "Refresh", "Logout", "GetAgreements"})
ANALYSIS_REQUEST_ID_HEADER = "analysis-request-id"

T = TypeVar("T")


def peer_address(peer: str) -> str:
    """'ipv4:1.2.3.4:5678' -> '1.2.3.4'; 'ipv6:[::1]:5678' -> '::1'; anything else as is."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


def _forward(backend: str, method: str):
    """A handler passing the request through to the same-named backend method."""

    async def handler(self: GatewayServicer, request, context):
        authenticated = method not in PUBLIC_METHODS
        call = self.gateway.auth_call if backend == "auth" else self.gateway.history_call
        return await self._run(context, lambda caller: call(caller, method, request), authenticated)

    handler.__name__ = method
    return handler


class GatewayServicer(gateway_pb2_grpc.EmotionGatewayServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def _caller(self, context: grpc.aio.ServicerContext, authenticated: bool) -> Caller:
        caller = Caller(address=peer_address(context.peer()), remaining_s=context.time_remaining())
        self.gateway.admit(caller.address)
        if authenticated:
            caller.principal = current_principal()
            caller.token = bearer_token(dict(context.invocation_metadata() or ()))
            self.gateway.admit_user(caller.principal)
        return caller

    async def _run(
        self,
        context: grpc.aio.ServicerContext,
        operation: Callable[[Caller], Awaitable[T]],
        authenticated: bool = True,
    ) -> T:
        try:
            return await operation(self._caller(context, authenticated))
        except ApiError as exc:
            await context.abort(exc.code, exc.message, exc.trailing_metadata())

    Register = _forward("auth", "Register")
    Login = _forward("auth", "Login")
    Refresh = _forward("auth", "Refresh")
    Logout = _forward("auth", "Logout")
    GetAgreements = _forward("auth", "GetAgreements")
    GetProfile = _forward("auth", "GetProfile")
    UpdateProfile = _forward("auth", "UpdateProfile")
    ChangePassword = _forward("auth", "ChangePassword")

    ListAnalyses = _forward("history", "ListAnalyses")
    GetAnalysis = _forward("history", "GetAnalysis")
    DeleteAnalysis = _forward("history", "DeleteAnalysis")
    GetSummary = _forward("history", "GetSummary")
    ExportHistory = _forward("history", "ExportHistory")
    RevokeAccess = _forward("history", "RevokeAccess")
    ListGrants = _forward("history", "ListGrants")
    ListAuditEvents = _forward("history", "ListAuditEvents")
    ListClients = _forward("history", "ListClients")

    async def DeleteAccount(self, request, context):
        return await self._run(context, lambda caller: self.gateway.delete_account(caller, request))

    async def DeleteAllAnalyses(self, request, context):
        return await self._run(context, self.gateway.delete_all_analyses)

    async def ShareWithCounselor(self, request, context):
        return await self._run(context, lambda caller: self.gateway.share_with_counselor(caller, request))

    async def AnalyzePhoto(self, request: gateway_pb2.AnalyzePhotoRequest, context):
        async def analyze(caller: Caller) -> gateway_pb2.AnalyzePhotoResponse:
            response, request_id = await self.gateway.analyze_photo(caller, request)
            # The id to find a queued analysis by (the client's own, or the one generated for it).
            await context.send_initial_metadata(((ANALYSIS_REQUEST_ID_HEADER, request_id),))
            return response

        return await self._run(context, analyze)

    async def Live(self, request_iterator, context):
        try:
            caller = self._caller(context, authenticated=True)
            caller.remaining_s = None  # a session outlives any unary deadline; live_max_seconds bounds it
            async for response in LiveSession(self.gateway, caller).run(request_iterator):
                yield response
        except ApiError as exc:
            await context.abort(exc.code, exc.message, exc.trailing_metadata())
