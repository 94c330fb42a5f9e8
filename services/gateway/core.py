"""The gateway's operations, independent of transport: the gRPC servicer (handlers.py) and the HTTP API
(http_api.py) both authenticate and rate-limit the caller, then call these.

User calls carry the caller's own bearer token to auth and history, which check it again and apply
their own rules (a counsellor reads only consenting clients, and so on); the gateway adds the
composition (AnalyzePhoto, sharing by username, delete-all) and the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

import grpc
from google.protobuf import timestamp_pb2
from prometheus_client import Counter

from emotion.v1 import (
    auth_pb2,
    common_pb2,
    gateway_pb2,
    history_pb2,
    inference_pb2,
)
from services.common.ids import analysis_id
from services.common.tokens import InvalidToken, Principal, TokenVerifier
from services.gateway import scores
from services.gateway.backends import Backends
from services.gateway.config import GatewaySettings
from services.gateway.errors import ApiError, invalid
from services.gateway.outbox import Outbox, OutboxReplayer
from services.gateway.ratelimit import RateLimiter

log = logging.getLogger(__name__)

ANALYSES_REFUSED = Counter(
    "gateway_analyses_refused_total", "Photo analyses refused because max_inflight_analyses were running."
)

MAX_REQUEST_ID_LENGTH = 128
MODEL_VERSION_TTL_S = 300.0
_DELETE_ALL_PAGE = 100
_DELETE_ALL_MAX_ROUNDS = 10_000  # 1M analyses: a bound, so a misbehaving backend cannot loop us forever

# History answers these about the record itself; anything else means "history can't take it now".
_RECORD_CLIENT_ERRORS = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.OUT_OF_RANGE}
)


@dataclass
class Caller:
    """Who is calling and from where; `token` and `principal` are set for authenticated calls."""

    address: str
    token: str = ""
    principal: Principal | None = None
    remaining_s: float | None = None  # what is left of the caller's own deadline

    @property
    def user_id(self) -> str:
        return self.principal.user_id if self.principal else ""


@dataclass
class Recorded:
    analysis_id: str  # the id history gives it, also when queued
    recorded: bool  # False: queued in the outbox


def new_request_id() -> str:
    return uuid.uuid4().hex


def check_request_id(request_id: str) -> str:
    """The client's idempotency key, or a fresh one when it sent none."""
    if not request_id:
        return new_request_id()
    if len(request_id) > MAX_REQUEST_ID_LENGTH or not request_id.isprintable():
        raise invalid("request_id", f"request_id must be 1-{MAX_REQUEST_ID_LENGTH} printable characters")
    return request_id


class Gateway:
    """Composition of the backends behind the public API."""

    def __init__(
        self,
        settings: GatewaySettings,
        backends: Backends,
        outbox: Outbox,
        verifier: TokenVerifier,
    ) -> None:
        self.settings = settings
        self.backends = backends
        self.outbox = outbox
        self.verifier = verifier
        self.replayer = OutboxReplayer(
            outbox, backends, poll_s=settings.outbox_poll_s, max_backoff_s=settings.outbox_max_backoff_s
        )
        self.user_limits = RateLimiter("user", settings.rate_limit_user_per_s, settings.rate_limit_user_burst)
        self.address_limits = RateLimiter(
            "address", settings.rate_limit_address_per_s, settings.rate_limit_address_burst
        )
        self.ready = False
        self._analyses_in_flight = 0
        self._replay_task: asyncio.Task | None = None
        self._model_version = ""
        self._model_version_at = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.outbox.start()
        self._replay_task = asyncio.get_running_loop().create_task(self.replayer.run(), name="outbox-replay")
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._replay_task is not None:
            self._replay_task.cancel()
            try:
                await self._replay_task
            except asyncio.CancelledError:
                pass
        await self.backends.close()
        await self.outbox.close()

    # -- admission ------------------------------------------------------------------------------

    def admit(self, address: str) -> None:
        """Per-address rate limit, for every call."""
        wait = self.address_limits.acquire(address)
        if wait is not None:
            raise ApiError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "too many requests from this address", retry_after_s=wait
            )

    def admit_user(self, principal: Principal) -> None:
        """Per-user rate limit, for authenticated calls."""
        wait = self.user_limits.acquire(principal.user_id)
        if wait is not None:
            raise ApiError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "too many requests for this user", retry_after_s=wait
            )

    @contextlib.contextmanager
    def analysis_slot(self):
        """Bound the photo analyses in flight. Past capacity a queue only makes every caller slow (and
        then time out); refusing at once, with a hint when to retry, keeps the admitted ones fast."""
        cap = self.settings.max_inflight_analyses
        if cap and self._analyses_in_flight >= cap:
            ANALYSES_REFUSED.inc()
            raise ApiError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "too many analyses in progress; please retry shortly",
                retry_after_s=1,
            )
        self._analyses_in_flight += 1
        try:
            yield
        finally:
            self._analyses_in_flight -= 1

    async def authenticate(self, token: str) -> Principal:
        """Verify an access token locally (auth's public keys); UNAUTHENTICATED otherwise."""
        if not token:
            raise ApiError(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        try:
            return await self.verifier.verify(token)
        except InvalidToken as exc:
            raise ApiError(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None

    # -- pass-throughs --------------------------------------------------------------------------

    async def auth_call(self, caller: Caller, method: str, request):
        return await self.backends.auth.call(
            method,
            request,
            token=caller.token,
            deadline_s=self.settings.backend_timeout_s,
            remaining=caller.remaining_s,
            client_address=caller.address,
        )

    async def history_call(self, caller: Caller, method: str, request):
        return await self.backends.history.call(
            method,
            request,
            token=caller.token,
            deadline_s=self.settings.backend_timeout_s,
            remaining=caller.remaining_s,
        )

    async def delete_account(
        self, caller: Caller, request: auth_pb2.DeleteAccountRequest
    ) -> auth_pb2.DeleteAccountResponse:
        reply = await self.auth_call(caller, "DeleteAccount", request)
        # Queued writes must not bring back the history of an account that no longer exists.
        await self.outbox.purge_user(caller.user_id)
        return reply

    async def delete_all_analyses(self, caller: Caller) -> gateway_pb2.DeleteAllAnalysesResponse:
        """Delete every analysis of the caller but keep their grants (history's DeleteAllForUser would
        also revoke them: it is meant for account deletion)."""
        deleted = await self.outbox.purge_user(caller.user_id)
        for _ in range(_DELETE_ALL_MAX_ROUNDS):
            page = await self.history_call(
                caller, "ListAnalyses", history_pb2.ListAnalysesRequest(page_size=_DELETE_ALL_PAGE)
            )
            if not page.analyses:
                break
            await asyncio.gather(
                *(
                    self.history_call(
                        caller, "DeleteAnalysis", history_pb2.DeleteAnalysisRequest(analysis_id=a.id)
                    )
                    for a in page.analyses
                )
            )
            deleted += len(page.analyses)
        return gateway_pb2.DeleteAllAnalysesResponse(deleted_analyses=deleted)

    async def share_with_counselor(
        self, caller: Caller, request: gateway_pb2.ShareWithCounselorRequest
    ) -> gateway_pb2.ShareWithCounselorResponse:
        username = request.counselor_username.strip()
        if not username:
            raise invalid("counselor_username", "counselor_username is required")
        counselor = await self.auth_call(
            caller, "LookupCounselor", auth_pb2.LookupCounselorRequest(username=username)
        )
        reply = await self.history_call(
            caller,
            "GrantAccess",
            history_pb2.GrantAccessRequest(
                counselor_id=counselor.counselor_id,
                counselor_username=counselor.username,
                organization=counselor.organization,
                client_username=caller.principal.username if caller.principal else "",
            ),
        )
        return gateway_pb2.ShareWithCounselorResponse(grant=reply.grant)

    # -- analysis -------------------------------------------------------------------------------

    def require_user(self, caller: Caller) -> None:
        """Analyses belong to user accounts; counsellors only read their clients'."""
        if caller.principal is None or caller.principal.role != "user":
            raise ApiError(grpc.StatusCode.PERMISSION_DENIED, "only user accounts can record analyses")

    async def analyze_photo(
        self, caller: Caller, request: gateway_pb2.AnalyzePhotoRequest
    ) -> tuple[gateway_pb2.AnalyzePhotoResponse, str]:
        """Inference, then a history record (or the outbox); returns the response and the request id used."""
        self.require_user(caller)
        if not request.image:
            raise invalid("image", "image is empty")
        if request.source == common_pb2.SOURCE_LIVE:
            raise invalid("source", "SOURCE_LIVE is for live sessions; use SOURCE_CAMERA or SOURCE_ALBUM")
        if request.source not in (
            common_pb2.SOURCE_UNSPECIFIED,
            common_pb2.SOURCE_CAMERA,
            common_pb2.SOURCE_ALBUM,
        ):
            raise invalid("source", "unknown source")
        request_id = check_request_id(request.request_id)
        captured_at = timestamp_pb2.Timestamp()
        if request.HasField("captured_at"):
            captured_at.CopyFrom(request.captured_at)
        else:
            captured_at.GetCurrentTime()

        with self.analysis_slot():
            analysis = await self.backends.inference.call(
                "Analyze",
                inference_pb2.AnalyzeRequest(image=request.image, options=request.options),
                deadline_s=self.settings.inference_timeout_s,
                remaining=caller.remaining_s,
            )
        overall = scores.mean([scores.as_vector(face.scores) for face in analysis.faces])
        dominant = scores.dominant(overall) if analysis.faces else common_pb2.EXPRESSION_UNSPECIFIED
        record = history_pb2.RecordAnalysisRequest(
            request_id=request_id,
            user_id=caller.user_id,
            captured_at=captured_at,
            source=request.source or common_pb2.SOURCE_ALBUM,
            faces=analysis.faces,
            overall=scores.from_vector(overall),
            model_version=analysis.model_version,
        )
        outcome = await self.record(caller, record)
        response = gateway_pb2.AnalyzePhotoResponse(
            analysis_id=outcome.analysis_id,
            faces=analysis.faces,
            overall=scores.from_vector(overall),
            dominant=dominant,
            emoji=scores.emoji(dominant),
            image_width=analysis.image_width,
            image_height=analysis.image_height,
            recorded=outcome.recorded,
            timings=analysis.timings,
            model_version=analysis.model_version,
        )
        return response, request_id

    async def record(self, caller: Caller, record: history_pb2.RecordAnalysisRequest) -> Recorded:
        """Write to history now, or queue in the outbox (durably, before the caller is answered)."""
        try:
            reply = await self.backends.history.call(
                "RecordAnalysis", record, token=caller.token, deadline_s=self.settings.record_timeout_s
            )
            return Recorded(reply.analysis.id, True)
        except ApiError as exc:
            if exc.code in _RECORD_CLIENT_ERRORS:
                raise
            log.warning(
                "history write failed; queueing in the outbox",
                extra={"code": exc.code.name, "error": exc.message, "analysis_request_id": record.request_id},
            )
        try:
            await self.outbox.add(record)
        except Exception:
            log.exception("outbox write failed")
            raise ApiError(
                grpc.StatusCode.UNAVAILABLE, "the analysis could not be recorded; please try again"
            ) from None
        return Recorded(analysis_id(record.user_id, record.request_id), False)

    async def model_version(self) -> str:
        """The served model's version (for live summaries, whose stream replies do not carry it), asked
        again every few minutes so a redeployed model is noticed."""
        if not self._model_version or time.monotonic() - self._model_version_at > MODEL_VERSION_TTL_S:
            try:
                info = await self.backends.inference.call(
                    "GetModelInfo",
                    inference_pb2.GetModelInfoRequest(),
                    deadline_s=self.settings.backend_timeout_s,
                )
                self._model_version, self._model_version_at = info.version, time.monotonic()
            except ApiError as exc:
                log.warning("model info unavailable: %s", exc.message)
        return self._model_version
