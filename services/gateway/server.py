"""Gateway process: the public gRPC server (services.common.server) and the HTTP server (uvicorn) in one
event loop, sharing one Gateway (backend channels, outbox, rate limits). SIGTERM stops both: health turns
NOT_SERVING, in-flight calls get the grace period, then the outbox replayer and channels close."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from emotion.v1 import gateway_pb2, gateway_pb2_grpc
from services.common.logs import configure_logging
from services.common.server import GrpcService, serve
from services.common.tokens import verifier_from_settings
from services.gateway.backends import Backends
from services.gateway.config import GatewaySettings
from services.gateway.core import Gateway
from services.gateway.handlers import PUBLIC_METHODS, GatewayServicer
from services.gateway.http_api import create_app
from services.gateway.outbox import Outbox

__all__ = ["GatewaySettings", "build", "main", "run_gateway"]

log = logging.getLogger(__name__)


def build(settings: GatewaySettings) -> tuple[GrpcService, Gateway]:
    verifier = verifier_from_settings(settings)
    gateway = Gateway(settings, Backends(settings), Outbox(settings.outbox_url), verifier)

    def register(server) -> list[str]:
        gateway_pb2_grpc.add_EmotionGatewayServicer_to_server(GatewayServicer(gateway), server)
        return [gateway_pb2.DESCRIPTOR.services_by_name["EmotionGateway"].full_name]

    service = GrpcService(
        name="gateway",
        settings=settings,
        register=register,
        startup=gateway.start,
        verifier=verifier,
        public_methods=PUBLIC_METHODS,
    )
    return service, gateway


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the gRPC bootstrap owns SIGTERM/SIGINT."""

    def install_signal_handlers(self) -> None:  # older uvicorn
        pass

    async def serve(self, sockets=None) -> None:
        await self._serve(sockets)


async def run_gateway(settings: GatewaySettings, stop: asyncio.Event | None = None) -> None:
    """Serve gRPC and HTTP until `stop` is set (or SIGTERM/SIGINT)."""
    stop = stop or asyncio.Event()
    service, gateway = build(settings)
    http = _HttpServer(
        uvicorn.Config(
            create_app(gateway, settings),
            host=settings.host,
            port=settings.http_port,
            log_config=None,  # keep the JSON logging configured for the process
            access_log=False,  # AccessLogMiddleware logs requests without query strings (tokens)
            ws_max_size=settings.max_body_bytes,
            timeout_graceful_shutdown=settings.grace_seconds,
            server_header=False,
            lifespan="off",
        )
    )
    grpc_task = asyncio.create_task(serve(service, stop), name="grpc")
    http_task = asyncio.create_task(http.serve(), name="http")
    stopped = asyncio.create_task(stop.wait(), name="stop")
    try:
        # Either server failing (a port in use, a startup error) stops the whole process.
        await asyncio.wait({grpc_task, http_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            log.error("a server stopped unexpectedly; stopping the gateway")
        stop.set()
        http.should_exit = True
        await asyncio.gather(grpc_task, http_task)
    finally:
        stopped.cancel()
        # Backends and outbox close only after both servers have drained their calls.
        await gateway.stop()


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    try:
        asyncio.run(run_gateway(settings))
    except KeyboardInterrupt:
        pass
