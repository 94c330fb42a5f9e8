"""Client channels to the backends: every call gets a deadline, carries the
current request id, and only idempotent methods are retried, only on
UNAVAILABLE, by gRPC itself through the channel's service config."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import grpc

from services.common.logs import REQUEST_ID_HEADER, request_id_var

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_STREAM_TIMEOUT_S = 3600.0  # a live camera session may run long, but never forever

# Methods safe to repeat: reads, deletes, and writes that are idempotent by key
# (RecordAnalysis dedupes on request_id). Login, Register, Refresh and the other
# state-changing auth calls are never retried: a retry could rotate a token twice.
IDEMPOTENT_METHODS: dict[str, tuple[str, ...]] = {
    "emotion.v1.AuthService": (
        "GetProfile",
        "GetAgreements",
        "GetPublicKeys",
        "LookupCounselor",
        "IssueServiceToken",
    ),
    "emotion.v1.HistoryService": (
        "RecordAnalysis",
        "ListAnalyses",
        "GetAnalysis",
        "DeleteAnalysis",
        "DeleteAllForUser",
        "GetSummary",
        "ExportHistory",
        "GrantAccess",
        "RevokeAccess",
        "ListGrants",
        "ListClients",
        "ListAuditEvents",
    ),
    "emotion.v1.InferenceService": ("Analyze", "AnalyzeBatch", "GetModelInfo"),
}


def service_config(idempotent: Mapping[str, Iterable[str]] = IDEMPOTENT_METHODS) -> str:
    """gRPC service config JSON: retry idempotent methods on UNAVAILABLE, up to 3 attempts."""
    names = [{"service": svc, "method": m} for svc, methods in idempotent.items() for m in methods]
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": names,
                    "retryPolicy": {
                        "maxAttempts": 3,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "0.5s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


class _DefaultsInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Fills in a deadline when the caller set none and forwards the request id."""

    def __init__(self, timeout_s: float, stream_timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.stream_timeout_s = stream_timeout_s

    def _details(self, details: grpc.aio.ClientCallDetails, default_timeout: float):
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        request_id = request_id_var.get()
        if request_id and REQUEST_ID_HEADER not in metadata:
            metadata.add(REQUEST_ID_HEADER, request_id)
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout if details.timeout is not None else default_timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details, self.timeout_s), request)

    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._details(details, self.stream_timeout_s), request)

    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(self._details(details, self.stream_timeout_s), request_iterator)

    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(self._details(details, self.stream_timeout_s), request_iterator)


def connect(
    target: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    stream_timeout_s: float = DEFAULT_STREAM_TIMEOUT_S,
    max_message_bytes: int = 16 * 1024 * 1024,
) -> grpc.aio.Channel:
    """An insecure (in-cluster) channel with deadlines, request ids and retries configured."""
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.enable_retries", 1),
            ("grpc.service_config", service_config()),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),
        ],
        interceptors=[_DefaultsInterceptor(timeout_s, stream_timeout_s)],
    )


def bearer(token: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying an access token."""
    return (("authorization", f"Bearer {token}"),)
