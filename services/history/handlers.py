"""HistoryService RPC handlers: access rules, argument checks and proto conversion.

Who may do what is decided only from the verified token (`current_principal()`):
  - role "user" acts on its own records; a `user_id` naming someone else is refused
    (PERMISSION_DENIED), and another user's analysis ids simply do not exist (NOT_FOUND);
  - role "counselor" may only read (ListAnalyses, GetAnalysis, GetSummary) the history of a
    client who holds an active grant for them; each such read is written to the client's
    audit trail before the data is returned; anything else is PERMISSION_DENIED;
  - role "service" (internal callers) may RecordAnalysis and DeleteAllForUser for any user.
"""

from __future__ import annotations

import functools
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from emotion.v1 import common_pb2, history_pb2, history_pb2_grpc
from services.common.tokens import ROLE_USER, Principal, current_principal
from services.history import export, paging
from services.history.storage import (
    MODEL_VERSION_MAX,
    ORGANIZATION_MAX,
    REQUEST_ID_MAX,
    SCORE_NAMES,
    USER_ID_MAX,
    USERNAME_MAX,
    AnalysisFilter,
    AnalysisRow,
    AuditEventRow,
    Face,
    GrantRow,
    HistoryStore,
    NewAnalysis,
    Position,
    decode_faces,
    row_scores,
)
from services.history.summary import DAY, WEEK, Tally, summarise

log = logging.getLogger(__name__)

Code = grpc.StatusCode
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
MAX_THUMBNAIL_BYTES = 64 * 1024  # the contract's cap
MAX_FACES = 100
MAX_CLOCK_SKEW = timedelta(days=1)  # captured_at further in the future is a broken client clock
VALID_SOURCES = frozenset(common_pb2.Source.values()) - {common_pb2.SOURCE_UNSPECIFIED}
VALID_EXPRESSIONS = frozenset(common_pb2.Expression.values()) - {common_pb2.EXPRESSION_UNSPECIFIED}
# Timestamp's documented range, 0001-01-01 to 9999-12-31.
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799
JPEG_MAGIC = b"\xff\xd8\xff"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Refused(Exception):
    """Ends the RPC with `code` and a message naming what is wrong."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def invalid(message: str) -> Refused:
    # Messages may quote the caller's input: keep them well inside gRPC's 8 KiB metadata limit.
    return Refused(Code.INVALID_ARGUMENT, message if len(message) <= 300 else message[:297] + "...")


def rpc(method):
    """Turn Refused and lost database connections into proper statuses."""

    @functools.wraps(method)
    async def handler(self: HistoryServicer, request, context: grpc.aio.ServicerContext):
        try:
            if self.store is None:
                raise Refused(Code.UNAVAILABLE, "history service is starting")
            return await method(self, request, context)
        except Refused as exc:
            await context.abort(exc.code, exc.message)
        except (OperationalError, InterfaceError) as exc:
            log.warning("database unavailable: %s", exc)
            await context.abort(Code.UNAVAILABLE, "history database unavailable")
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            log.warning("database connection lost: %s", exc)
            await context.abort(Code.UNAVAILABLE, "history database unavailable")

    return handler


# --- access rules -----------------------------------------------------------------------------------


def _checked_user_id(user_id: str, field: str = "user_id") -> str:
    if len(user_id) > USER_ID_MAX:
        raise invalid(f"{field}: at most {USER_ID_MAX} characters")
    return user_id


def owner_for_write(principal: Principal, requested: str) -> str:
    """Whose records a write (RecordAnalysis, DeleteAllForUser) touches."""
    requested = _checked_user_id(requested)
    if principal.is_service:
        if not requested:
            raise invalid("user_id: required for service callers")
        return requested
    return own_user(principal, requested)


def own_user(principal: Principal, requested: str = "") -> str:
    """The caller as a user acting on their own data; counsellors and services are refused."""
    if principal.is_counselor:
        raise Refused(Code.PERMISSION_DENIED, "counsellors have read-only access to their clients' history")
    if principal.role != ROLE_USER:
        raise Refused(Code.PERMISSION_DENIED, f"role {principal.role!r} may not call this method")
    if requested and requested != principal.user_id:
        raise Refused(Code.PERMISSION_DENIED, "user_id: you may only access your own history")
    return principal.user_id


@dataclass(frozen=True)
class ReadAccess:
    user_id: str  # whose history is read
    counselor_id: str = ""  # set when a counsellor reads: the read must be audited


async def read_access(store: HistoryStore, principal: Principal, requested: str) -> ReadAccess:
    requested = _checked_user_id(requested)
    if principal.is_counselor:
        if not requested:
            raise invalid("user_id: required for counsellors (the client whose history to read)")
        if not await store.has_active_grant(requested, principal.user_id):
            raise Refused(Code.PERMISSION_DENIED, "this client has not granted you access")
        return ReadAccess(requested, principal.user_id)
    return ReadAccess(own_user(principal, requested))


async def audit(store: HistoryStore, access: ReadAccess, action: str, analysis_id: str = "") -> None:
    if access.counselor_id:
        await store.add_audit_event(access.user_id, access.counselor_id, action, analysis_id)


# --- argument conversion ----------------------------------------------------------------------------


def to_datetime(ts: Timestamp, field: str, *, round_up: bool = False) -> datetime:
    if not (MIN_SECONDS <= ts.seconds <= MAX_SECONDS) or not (0 <= ts.nanos < 1_000_000_000):
        raise invalid(f"{field}: not a valid timestamp")
    micros = -(-ts.nanos // 1000) if round_up else ts.nanos // 1000  # storage keeps microseconds
    return EPOCH + timedelta(seconds=ts.seconds, microseconds=micros)


def to_timestamp(at: datetime) -> Timestamp:
    delta = at - EPOCH  # plain arithmetic: FromDatetime costs several times more, per field of a page
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def time_range(request, field: str = "time_range") -> tuple[datetime | None, datetime | None]:
    """[start, end) of an optional TimeRange; bounds round up to the stored microsecond precision,
    which keeps both the inclusive start and the exclusive end exact."""
    if not request.HasField(field):
        return None, None
    value = getattr(request, field)
    start = (
        to_datetime(value.start_time, f"{field}.start_time", round_up=True)
        if value.HasField("start_time")
        else None
    )
    end = (
        to_datetime(value.end_time, f"{field}.end_time", round_up=True)
        if value.HasField("end_time")
        else None
    )
    if start is not None and end is not None and start >= end:
        raise invalid(f"{field}: start_time must be before end_time")
    return start, end


def page_size(value: int) -> int:
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise invalid(f"page_size: must be between 1 and {MAX_PAGE_SIZE} (0 = {DEFAULT_PAGE_SIZE})")
    return value


def decode_page_token(token: str, fingerprint: str) -> Position | None:
    try:
        return paging.decode(token, fingerprint)
    except paging.BadPageToken as exc:
        raise invalid(str(exc)) from None


def scores_of(message: common_pb2.ExpressionScores, field: str) -> tuple[float, ...]:
    scores = tuple(float(getattr(message, name)) for name in SCORE_NAMES)
    if not all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in scores):
        raise invalid(f"{field}: every score must be a probability in [0, 1]")
    return scores


def dominant_of(scores: tuple[float, ...]) -> int:
    """Expression enum value of the highest score; UNSPECIFIED when there are no scores."""
    if not any(scores):
        return common_pb2.EXPRESSION_UNSPECIFIED
    return max(range(len(scores)), key=lambda i: (scores[i], -i)) + 1


def face_of(message: common_pb2.FaceResult, index: int) -> Face:
    field = f"faces[{index}]"
    box = message.box
    if box.width < 0 or box.height < 0:
        raise invalid(f"{field}.box: width and height must not be negative")
    scores = scores_of(message.scores, f"{field}.scores")
    dominant = message.dominant or dominant_of(scores)
    if dominant not in VALID_EXPRESSIONS:
        raise invalid(f"{field}.dominant: not a known expression")
    detection = float(message.detection_score)
    if not (math.isfinite(detection) and 0.0 <= detection <= 1.0):
        raise invalid(f"{field}.detection_score: must be in [0, 1]")
    if len(message.emoji) > 16:
        raise invalid(f"{field}.emoji: at most 16 characters")
    return Face(
        (box.x, box.y, box.width, box.height), scores, dominant, message.emoji, detection, message.track_id
    )


def new_analysis(request: history_pb2.RecordAnalysisRequest, owner: str, now: datetime) -> NewAnalysis:
    if not 1 <= len(request.request_id) <= REQUEST_ID_MAX:
        raise invalid(f"request_id: required, 1-{REQUEST_ID_MAX} characters")
    if request.source not in VALID_SOURCES:
        raise invalid("source: required (camera, album or live)")
    if len(request.faces) > MAX_FACES:
        raise invalid(f"faces: at most {MAX_FACES}")
    if len(request.model_version) > MODEL_VERSION_MAX:
        raise invalid(f"model_version: at most {MODEL_VERSION_MAX} characters")
    if len(request.thumbnail_jpeg) > MAX_THUMBNAIL_BYTES:
        raise invalid(f"thumbnail_jpeg: at most {MAX_THUMBNAIL_BYTES} bytes")
    if request.thumbnail_jpeg and not request.thumbnail_jpeg.startswith(JPEG_MAGIC):
        raise invalid("thumbnail_jpeg: not a JPEG image")
    captured_at = to_datetime(request.captured_at, "captured_at") if request.HasField("captured_at") else now
    if captured_at > now + MAX_CLOCK_SKEW:
        raise invalid("captured_at: more than a day in the future")
    faces = [face_of(face, i) for i, face in enumerate(request.faces)]
    if request.HasField("overall"):
        overall = scores_of(request.overall, "overall")
    elif faces:
        overall = tuple(sum(column) / len(faces) for column in zip(*(f.scores for f in faces), strict=True))
    else:
        overall = (0.0,) * len(SCORE_NAMES)
    return NewAnalysis(
        user_id=owner,
        request_id=request.request_id,
        captured_at=captured_at,
        source=request.source,
        faces=faces,
        scores=overall,
        dominant=dominant_of(overall),
        model_version=request.model_version,
        thumbnail_jpeg=bytes(request.thumbnail_jpeg) or None,
    )


def analysis_id_of(value: str) -> str:
    if not value:
        raise invalid("analysis_id: required")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid("analysis_id: not a valid id") from None


# --- proto builders ---------------------------------------------------------------------------------


# Spelled out rather than built from SCORE_NAMES: a summary builds hundreds of these per call.
def scores_message(s) -> common_pb2.ExpressionScores:
    return common_pb2.ExpressionScores(
        angry=s[0], disgust=s[1], fear=s[2], happy=s[3], sad=s[4], surprise=s[5], neutral=s[6]
    )


def counts_message(c) -> common_pb2.ExpressionCounts:
    return common_pb2.ExpressionCounts(
        angry=c[0], disgust=c[1], fear=c[2], happy=c[3], sad=c[4], surprise=c[5], neutral=c[6]
    )


def analysis_message(row: AnalysisRow | Row) -> history_pb2.Analysis:
    return history_pb2.Analysis(
        id=row.id,
        user_id=row.user_id,
        request_id=row.request_id,
        captured_at=to_timestamp(row.captured_at),
        created_at=to_timestamp(row.created_at),
        source=row.source,
        faces=[
            common_pb2.FaceResult(
                box=common_pb2.Box(x=f.box[0], y=f.box[1], width=f.box[2], height=f.box[3]),
                scores=scores_message(f.scores),
                dominant=f.dominant,
                emoji=f.emoji,
                detection_score=f.detection_score,
                track_id=f.track_id,
            )
            for f in decode_faces(row.faces_json)
        ],
        overall=scores_message(row_scores(row)),
        dominant=row.dominant,
        model_version=row.model_version,
        thumbnail_jpeg=row.thumbnail_jpeg or b"",
    )


def grant_message(row: GrantRow) -> history_pb2.Grant:
    grant = history_pb2.Grant(
        counselor_id=row.counselor_id,
        counselor_username=row.counselor_username,
        organization=row.organization,
        granted_at=to_timestamp(row.granted_at),
    )
    if row.revoked_at is not None:
        grant.revoked_at.CopyFrom(to_timestamp(row.revoked_at))
    return grant


def audit_message(row: AuditEventRow) -> history_pb2.AuditEvent:
    return history_pb2.AuditEvent(
        id=row.id,
        counselor_id=row.counselor_id,
        action=row.action,
        analysis_id=row.analysis_id,
        occurred_at=to_timestamp(row.occurred_at),
    )


def tally_fields(tally: Tally) -> dict:
    return dict(counts=counts_message(tally.counts), mean_scores=scores_message(tally.mean_scores))


def _micros(at: datetime | None) -> int | None:
    return None if at is None else (at - EPOCH) // timedelta(microseconds=1)


# --- the service ------------------------------------------------------------------------------------


class HistoryServicer(history_pb2_grpc.HistoryServiceServicer):
    def __init__(self, export_max_bytes: int) -> None:
        self.store: HistoryStore | None = None  # set once migrations have run
        self.export_max_bytes = export_max_bytes

    @rpc
    async def RecordAnalysis(self, request, context):
        owner = owner_for_write(current_principal(), request.user_id)
        row, created = await self.store.record(new_analysis(request, owner, datetime.now(UTC)))
        return history_pb2.RecordAnalysisResponse(analysis=analysis_message(row), created=created)

    @rpc
    async def ListAnalyses(self, request, context):
        access = await read_access(self.store, current_principal(), request.user_id)
        limit = page_size(request.page_size)
        start, end = time_range(request)
        if request.source and request.source not in VALID_SOURCES:
            raise invalid("source: not a known source")
        if request.dominant and request.dominant not in VALID_EXPRESSIONS:
            raise invalid("dominant: not a known expression")
        where = AnalysisFilter(start, end, request.source, request.dominant)
        fingerprint = paging.fingerprint(
            access.user_id, _micros(start), _micros(end), where.source, where.dominant
        )
        after = decode_page_token(request.page_token, fingerprint)
        rows = await self.store.list_analyses(access.user_id, where, after, limit + 1)
        await audit(self.store, access, "ListAnalyses")
        response = history_pb2.ListAnalysesResponse(analyses=[analysis_message(r) for r in rows[:limit]])
        if len(rows) > limit:
            last = rows[limit - 1]
            response.next_page_token = paging.encode(Position(last.captured_at, last.id), fingerprint)
        return response

    @rpc
    async def GetAnalysis(self, request, context):
        access = await read_access(self.store, current_principal(), request.user_id)
        analysis_id = analysis_id_of(request.analysis_id)
        row = await self.store.get_analysis(access.user_id, analysis_id)
        if row is None:
            raise Refused(Code.NOT_FOUND, "analysis not found")
        await audit(self.store, access, "GetAnalysis", analysis_id)
        return history_pb2.GetAnalysisResponse(analysis=analysis_message(row))

    @rpc
    async def DeleteAnalysis(self, request, context):
        user_id = own_user(current_principal())
        if not await self.store.delete_analysis(user_id, analysis_id_of(request.analysis_id)):
            raise Refused(Code.NOT_FOUND, "analysis not found")
        return history_pb2.DeleteAnalysisResponse()

    @rpc
    async def DeleteAllForUser(self, request, context):
        user_id = owner_for_write(current_principal(), request.user_id)
        deleted = await self.store.delete_all_for_user(user_id)
        log.info(
            "deleted all history of a user",
            extra={
                "user_id": user_id,
                "analyses": deleted.analyses,
                "grants": deleted.grants,
                "audit_events": deleted.audit_events,
            },
        )
        return history_pb2.DeleteAllForUserResponse(deleted_analyses=deleted.analyses)

    @rpc
    async def GetSummary(self, request, context):
        access = await read_access(self.store, current_principal(), request.user_id)
        start, end = time_range(request)
        zone_name = request.time_zone or "UTC"
        try:
            if len(zone_name) > 64:  # IANA names are short; longer ones fail in the file system instead
                raise ValueError(zone_name)
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise invalid(f"time_zone: {zone_name[:64]!r} is not an IANA time zone") from None
        bucket = {
            history_pb2.BUCKET_SIZE_UNSPECIFIED: DAY,
            history_pb2.BUCKET_SIZE_DAY: DAY,
            history_pb2.BUCKET_SIZE_WEEK: WEEK,
        }.get(request.bucket_size)
        if bucket is None:
            raise invalid("bucket_size: not a known bucket size")
        rows = await self.store.summary_rows(access.user_id, AnalysisFilter(start, end))
        summary = summarise(rows, zone, bucket)
        await audit(self.store, access, "GetSummary")
        return history_pb2.GetSummaryResponse(
            total_analyses=summary.total.analyses,
            total_faces=summary.total.faces,
            most_frequent=summary.total.most_frequent,
            time_zone=zone_name,
            trend=[
                history_pb2.TrendBucket(
                    start_date=day.isoformat(), analyses=tally.analyses, **tally_fields(tally)
                )
                for day, tally in summary.buckets
            ],
            **tally_fields(summary.total),
        )

    @rpc
    async def ExportHistory(self, request, context):
        user_id = own_user(current_principal())
        batches = self.store.iter_analyses(user_id)
        try:
            if request.format == history_pb2.EXPORT_FORMAT_CSV:
                content = await export.export_csv(batches, self.export_max_bytes)
                content_type, extension = "text/csv", "csv"
            elif request.format == history_pb2.EXPORT_FORMAT_JSON:
                now = datetime.now(UTC)
                content = await export.export_json(user_id, now, batches, self.export_max_bytes)
                content_type, extension = "application/json", "json"
            else:
                raise invalid("format: choose CSV or JSON")
        except export.ExportTooLarge as exc:
            raise Refused(Code.RESOURCE_EXHAUSTED, f"{exc}; delete older analyses or ask for help") from None
        finally:
            await batches.aclose()
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        return history_pb2.ExportHistoryResponse(
            content=content, content_type=content_type, filename=f"emotion-history-{day}.{extension}"
        )

    @rpc
    async def GrantAccess(self, request, context):
        principal = current_principal()
        client_id = own_user(principal)
        counselor_id = _checked_user_id(request.counselor_id, "counselor_id")
        if not counselor_id:
            raise invalid("counselor_id: required")
        if counselor_id == client_id:
            raise invalid("counselor_id: you cannot grant access to yourself")
        for field, limit in (
            ("counselor_username", USERNAME_MAX),
            ("organization", ORGANIZATION_MAX),
            ("client_username", USERNAME_MAX),
        ):
            if len(getattr(request, field)) > limit:
                raise invalid(f"{field}: at most {limit} characters")
        row = await self.store.grant(
            client_id,
            principal.username or request.client_username,  # the token's name is the verified one
            counselor_id,
            request.counselor_username,
            request.organization,
        )
        return history_pb2.GrantAccessResponse(grant=grant_message(row))

    @rpc
    async def RevokeAccess(self, request, context):
        client_id = own_user(current_principal())
        counselor_id = _checked_user_id(request.counselor_id, "counselor_id")
        if not counselor_id:
            raise invalid("counselor_id: required")
        if not await self.store.revoke(client_id, counselor_id):
            raise Refused(Code.NOT_FOUND, "no grant for this counsellor")
        return history_pb2.RevokeAccessResponse()

    @rpc
    async def ListGrants(self, request, context):
        client_id = own_user(current_principal())
        return history_pb2.ListGrantsResponse(
            grants=[grant_message(g) for g in await self.store.list_grants(client_id)]
        )

    @rpc
    async def ListClients(self, request, context):
        principal = current_principal()
        if not principal.is_counselor:
            raise Refused(Code.PERMISSION_DENIED, "only counsellors have clients")
        clients = []
        for info in await self.store.list_clients(principal.user_id):
            client = history_pb2.Client(
                user_id=info.grant.client_id,
                username=info.grant.client_username,
                granted_at=to_timestamp(info.grant.granted_at),
                analyses=info.analyses,
            )
            if info.last_analysis_at is not None:
                client.last_analysis_at.CopyFrom(to_timestamp(info.last_analysis_at))
            clients.append(client)
        return history_pb2.ListClientsResponse(clients=clients)

    @rpc
    async def ListAuditEvents(self, request, context):
        client_id = own_user(current_principal())
        limit = page_size(request.page_size)
        fingerprint = paging.fingerprint("audit", client_id)
        after = decode_page_token(request.page_token, fingerprint)
        rows = await self.store.list_audit_events(client_id, after, limit + 1)
        response = history_pb2.ListAuditEventsResponse(events=[audit_message(r) for r in rows[:limit]])
        if len(rows) > limit:
            last = rows[limit - 1]
            response.next_page_token = paging.encode(Position(last.occurred_at, last.id), fingerprint)
        return response
