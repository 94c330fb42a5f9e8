"""One error type for both transports, and how backend failures become it.

Backend statuses that describe the caller's request (INVALID_ARGUMENT, NOT_FOUND, ...) pass through with
their message; failures of the backend itself never reach clients as internal errors: they become
UNAVAILABLE (503) or DEADLINE_EXCEEDED (504) with a message naming the service.
"""

from __future__ import annotations

import re

import grpc
from grpc_status import rpc_status

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
}

# Codes a backend returns about the request itself: the caller can act on them.
_PASS_THROUGH = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

_FIELD_PREFIX = re.compile(r"^([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*):\s")


class ApiError(Exception):
    """A failed call, with the gRPC code, a message safe to show, and the offending field if known."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def body(self) -> dict:
        error = {"code": self.code.name, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        metadata: list[tuple[str, str]] = []
        if self.retry_after_s is not None:
            metadata.append(("retry-after", str(max(1, round(self.retry_after_s)))))
        if self.field:
            metadata.append(("error-field", self.field))
        return tuple(metadata)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message, field=field)


def _field_of(error: grpc.aio.AioRpcError) -> str:
    """The offending field: from google.rpc.BadRequest details, an `error-field` trailer, or a
    `field: message` prefix of the message."""
    try:
        status = rpc_status.from_call(error)
    except Exception:  # malformed details: fall back to the message
        status = None
    if status is not None:
        from google.rpc import error_details_pb2

        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                if bad_request.field_violations:
                    return bad_request.field_violations[0].field
    for key, value in error.trailing_metadata() or ():
        if key == "error-field" and isinstance(value, str):
            return value
    match = _FIELD_PREFIX.match(error.details() or "")
    return match.group(1) if match else ""


def _retry_after(error: grpc.aio.AioRpcError) -> float | None:
    for key, value in error.trailing_metadata() or ():
        if key == "retry-after":
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def from_backend(error: grpc.aio.AioRpcError, service: str) -> ApiError:
    """Translate a backend call's failure into what the gateway's caller should see."""
    code = error.code()
    if code in _PASS_THROUGH:
        retry_after = _retry_after(error)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after is None:
            retry_after = 1.0
        return ApiError(code, error.details() or code.name.lower(), _field_of(error), retry_after)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ApiError(code, f"the {service} service did not answer in time; please try again")
    if code == grpc.StatusCode.UNAVAILABLE:
        return ApiError(
            code, f"the {service} service is unavailable; please try again shortly", retry_after_s=1
        )
    # INTERNAL, UNKNOWN, UNIMPLEMENTED, CANCELLED, DATA_LOSS: the backend failed, not the request.
    return ApiError(
        grpc.StatusCode.UNAVAILABLE, f"the {service} service failed ({code.name}); please try again later"
    )
