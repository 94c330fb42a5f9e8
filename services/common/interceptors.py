"""Server interceptors: request ids, access logs and Prometheus metrics for every
RPC, and bearer-token authentication.

Both wrap the method handler's behaviour, so per-call state (the request id and
the verified principal) is set in the contextvars of the task that runs it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from services.common.logs import REQUEST_ID_HEADER, new_request_id, request_id_var
from services.common.tokens import InvalidToken, TokenVerifier, bearer_token, principal_var

log = logging.getLogger("rpc")

RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its completion on the server.",
    ["grpc_service", "grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Infrastructure services never require a token (probes, grpcurl discovery).
UNAUTHENTICATED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")


def split_method(full_method: str) -> tuple[str, str]:
    """'/pkg.Service/Method' -> ('pkg.Service', 'Method')."""
    _, service, method = full_method.split("/", 2)
    return service, method


async def iterate_responses(behaviour, request, context) -> AsyncIterator[Any]:
    """Yield what a response-streaming behaviour produces, whichever style it uses:
    an async generator, or a coroutine that writes with `context.write` (as the health Watch does)."""
    if inspect.isasyncgenfunction(behaviour):
        async for response in behaviour(request, context):
            yield response
    else:
        await behaviour(request, context)


def wrap_handler(
    handler: grpc.RpcMethodHandler,
    around: Callable[..., Any],
    deserializer: Callable[[Callable], Callable] = lambda d: d,
) -> grpc.RpcMethodHandler:
    """Return `handler` with its behaviour replaced by `around(behaviour, streaming_response)`.

    `around` gets the original behaviour and whether it yields a response stream, and returns
    a new behaviour of the same shape; `deserializer` may replace the request deserializer.
    """
    if handler is None:
        return None
    request_deserializer = deserializer(handler.request_deserializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            around(handler.unary_unary, False), request_deserializer, handler.response_serializer
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            around(handler.unary_stream, True), request_deserializer, handler.response_serializer
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            around(handler.stream_unary, False), request_deserializer, handler.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        around(handler.stream_stream, True), request_deserializer, handler.response_serializer
    )


class MalformedRequest:
    """Stands in for a request message whose bytes did not parse (e.g. a string field that is
    not UTF-8). gRPC would answer such a call with UNKNOWN; we answer INVALID_ARGUMENT."""

    def __init__(self, error: Exception) -> None:
        self.message = f"malformed request message: {str(error)[:200]}"


def tolerant(deserializer: Callable | None) -> Callable | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError and friends
            return MalformedRequest(exc)

    return deserialize


async def _checked_stream(requests, context) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, MalformedRequest):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        yield request


async def _refuse_malformed(request, context):
    """The request (or, for client streams, a checking iterator over them); aborts on a malformed one."""
    if isinstance(request, MalformedRequest):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
    if hasattr(request, "__aiter__"):
        return _checked_stream(request, context)
    return request


def _code_of(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if code is not None:  # some grpc versions report the raw integer
        return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    if exc is None:
        return grpc.StatusCode.OK
    if isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Request id, Prometheus count and latency, and one access-log line per RPC."""

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        service, method = split_method(details.method)
        metadata = dict(details.invocation_metadata or ())
        request_id = str(metadata.get(REQUEST_ID_HEADER) or new_request_id())[:128]

        def finish(context, started: float, exc: BaseException | None) -> None:
            code = _code_of(context, exc)
            elapsed = time.perf_counter() - started
            RPC_HANDLED.labels(service, method, code.name).inc()
            RPC_LATENCY.labels(service, method).observe(elapsed)
            level = logging.DEBUG if code == grpc.StatusCode.OK else logging.INFO
            if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
                level = logging.ERROR
            log.log(
                level,
                "rpc",
                extra={"method": details.method, "code": code.name, "duration_ms": round(elapsed * 1000, 2)},
                exc_info=exc if level == logging.ERROR and exc is not None else None,
            )

        def around(behaviour, streaming: bool):
            if streaming:

                async def stream_behaviour(request, context) -> AsyncIterator[Any]:
                    request_id_var.set(request_id)
                    started, exc = time.perf_counter(), None
                    try:
                        request = await _refuse_malformed(request, context)
                        async for response in iterate_responses(behaviour, request, context):
                            yield response
                    except BaseException as e:
                        exc = e
                        raise
                    finally:
                        finish(context, started, exc)

                return stream_behaviour

            async def unary_behaviour(request, context):
                request_id_var.set(request_id)
                started, exc = time.perf_counter(), None
                try:
                    request = await _refuse_malformed(request, context)
                    return await behaviour(request, context)
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    finish(context, started, exc)

            return unary_behaviour

        return wrap_handler(handler, around, tolerant)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires a valid `authorization: Bearer <access token>` on every method except
    health, reflection and the service's own `public_methods` (e.g. Login)."""

    def __init__(self, verifier: TokenVerifier, public_methods: frozenset[str] = frozenset()) -> None:
        self.verifier = verifier
        self.public_methods = public_methods

    def _exempt(self, full_method: str) -> bool:
        service, method = split_method(full_method)
        return service.startswith(UNAUTHENTICATED_SERVICES) or method in self.public_methods

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or self._exempt(details.method):
            return handler
        metadata = dict(details.invocation_metadata or ())
        try:
            principal = await self.verifier.verify(bearer_token(metadata))
            error = None
        except InvalidToken as exc:
            principal, error = None, str(exc)

        def around(behaviour, streaming: bool):
            if streaming:

                async def stream_behaviour(request, context):
                    if principal is None:
                        await context.abort(grpc.StatusCode.UNAUTHENTICATED, error)
                    principal_var.set(principal)
                    async for response in iterate_responses(behaviour, request, context):
                        yield response

                return stream_behaviour

            async def unary_behaviour(request, context):
                if principal is None:
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, error)
                principal_var.set(principal)
                return await behaviour(request, context)

            return unary_behaviour

        return wrap_handler(handler, around)
