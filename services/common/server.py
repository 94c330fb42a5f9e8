"""One way to run a gRPC service: grpc.aio server with health, reflection,
metrics, request-id logging, optional token authentication, load shedding and
graceful shutdown.

A service's server.py calls `run(GrpcService(...))`; `register` adds its
servicers, `startup`/`shutdown` open and close its resources. Health reports
NOT_SERVING until startup has finished (migrations applied, model loaded) and
again as soon as SIGTERM arrives, so load balancers drain it before the
in-flight calls get their grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from services.common.config import ServiceSettings
from services.common.interceptors import AuthInterceptor, ObservabilityInterceptor
from services.common.logs import configure_logging
from services.common.tokens import TokenVerifier

log = logging.getLogger(__name__)


@dataclass
class GrpcService:
    """Everything the bootstrap needs to know about one service."""

    name: str  # short name for logs, e.g. "auth"
    settings: ServiceSettings
    register: Callable[[grpc.aio.Server], Iterable[str]]  # adds servicers, returns full service names
    startup: Callable[[], Awaitable[None]] | None = None
    shutdown: Callable[[], Awaitable[None]] | None = None
    verifier: TokenVerifier | None = None  # None: no token required by this service
    public_methods: frozenset[str] = field(default_factory=frozenset)  # methods needing no token


async def serve(service: GrpcService, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or SIGTERM/SIGINT), then drain and return."""
    settings = service.settings
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    interceptors: list[grpc.aio.ServerInterceptor] = [ObservabilityInterceptor()]
    if service.verifier is not None:
        interceptors.append(AuthInterceptor(service.verifier, service.public_methods))
    server = grpc.aio.server(
        interceptors=interceptors,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,
        options=[
            ("grpc.so_reuseport", 0),  # a second process on the same port must fail, not share it
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.max_metadata_size", 16 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )

    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = list(service.register(server))
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )

    async def set_health(status: int) -> None:
        for name in ("", *names):  # "" is the whole server, as grpc_health_probe asks by default
            await health.set(name, status)

    await set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if settings.metrics_port >= 0:
        start_http_server(settings.metrics_port, addr=settings.host)
    await server.start()
    log.info("listening", extra={"grpc_port": port, "metrics_port": settings.metrics_port})

    try:
        if service.startup is not None:
            await service.startup()
        await set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"services": names})
        await stop.wait()
    finally:
        log.info("shutting down", extra={"grace_seconds": settings.grace_seconds})
        await health.enter_graceful_shutdown()
        await server.stop(settings.grace_seconds)
        if service.shutdown is not None:
            await service.shutdown()
        log.info("stopped")


def run(service: GrpcService) -> None:
    """Process entry point: configure logging and serve until signalled."""
    configure_logging(service.name, service.settings.log_level)
    try:
        asyncio.run(serve(service))
    except KeyboardInterrupt:  # a second Ctrl-C while draining
        pass
