"""The durable outbox of history writes.

When history cannot take an analysis, the gateway stores the RecordAnalysisRequest here (with the
owner's user id, the request id and the capture time already filled in) *before* it answers, so an
acknowledged analysis is never lost. A background replayer sends each entry to history with a service
token and deletes it once history has it. History is idempotent on (user_id, request_id), so a replay
that races a direct write, or a crash between "history stored it" and "entry deleted", stores nothing
twice. Entries history rejects for good (INVALID_ARGUMENT and the like) are kept, marked dead, for an
operator.

Timestamps are epoch seconds (floats): the same on SQLite, MariaDB and PostgreSQL, with no time zones.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from pathlib import Path

import grpc
from prometheus_client import Counter, Gauge
from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    Integer,
    String,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from emotion.v1 import history_pb2
from services.common.db import create_engine, session_factory, upgrade
from services.gateway.backends import Backends
from services.gateway.errors import ApiError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_gateway"

OUTBOX_PENDING = Gauge("gateway_outbox_pending", "History writes waiting in the outbox.")
OUTBOX_QUEUED = Counter("gateway_outbox_queued_total", "History writes queued because history failed.")
OUTBOX_REPLAYED = Counter("gateway_outbox_replayed_total", "Outbox entries written to history.")
OUTBOX_DEAD = Counter("gateway_outbox_dead_total", "Outbox entries history rejected for good.")

# History answers these about the entry itself: retrying cannot help.
_PERMANENT = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


class Base(DeclarativeBase):
    pass


class OutboxEntry(Base):
    __tablename__ = "gateway_outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(128))
    # A serialized RecordAnalysisRequest, base64: text is stored alike by every driver (aiomysql
    # mis-escapes bytes parameters with PyMySQL 1.2).
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Double())
    dead: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str] = mapped_column(Text, default="")

    def request(self) -> history_pb2.RecordAnalysisRequest:
        return history_pb2.RecordAnalysisRequest.FromString(base64.b64decode(self.payload))


class Outbox:
    """Storage of queued history writes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=2)
        self.sessions = session_factory(self.engine)

    async def start(self) -> None:
        await upgrade(self.url, MIGRATIONS, VERSION_TABLE)
        OUTBOX_PENDING.set(await self.pending_count())

    async def close(self) -> None:
        await self.engine.dispose()

    async def add(self, request: history_pb2.RecordAnalysisRequest) -> bool:
        """Queue a write; False when this (user_id, request_id) is already queued."""
        now = time.time()
        entry = OutboxEntry(
            user_id=request.user_id,
            request_id=request.request_id,
            payload=base64.b64encode(request.SerializeToString()).decode("ascii"),
            created_at=now,
            attempts=0,
            next_attempt_at=now,
            dead=False,
            last_error="",
        )
        try:
            async with self.sessions.begin() as session:
                session.add(entry)
        except IntegrityError:
            return False
        OUTBOX_QUEUED.inc()
        OUTBOX_PENDING.inc()
        return True

    async def due(self, limit: int = 50) -> list[OutboxEntry]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(OutboxEntry)
                .where(OutboxEntry.dead.is_(False), OutboxEntry.next_attempt_at <= time.time())
                .order_by(OutboxEntry.id)
                .limit(limit)
            )
            return list(rows)

    async def remove(self, entry_id: int) -> None:
        async with self.sessions.begin() as session:
            await session.execute(delete(OutboxEntry).where(OutboxEntry.id == entry_id))
        OUTBOX_PENDING.dec()

    async def postpone(self, entry_id: int, error: str, delay_s: float, dead: bool = False) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id == entry_id)
                .values(
                    attempts=OutboxEntry.attempts + 1,
                    next_attempt_at=time.time() + delay_s,
                    last_error=error[:2000],
                    dead=dead,
                )
            )
        if dead:
            OUTBOX_PENDING.dec()

    async def purge_user(self, user_id: str) -> int:
        """Drop a user's queued writes (they deleted their history or account)."""
        async with self.sessions.begin() as session:
            result = await session.execute(delete(OutboxEntry).where(OutboxEntry.user_id == user_id))
        OUTBOX_PENDING.set(await self.pending_count())
        return result.rowcount or 0

    async def find(self, user_id: str, request_id: str) -> OutboxEntry | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(OutboxEntry).where(
                    OutboxEntry.user_id == user_id, OutboxEntry.request_id == request_id
                )
            )

    async def pending_count(self) -> int:
        async with self.sessions() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(OutboxEntry).where(OutboxEntry.dead.is_(False))
                )
                or 0
            )


class OutboxReplayer:
    """Background task writing queued entries to history, backing off while history fails."""

    def __init__(self, outbox: Outbox, backends: Backends, poll_s: float, max_backoff_s: float) -> None:
        self.outbox, self.backends = outbox, backends
        self.poll_s, self.max_backoff_s = poll_s, max_backoff_s
        self._failures = 0  # consecutive rounds in which history (or auth) could not be reached
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def _backoff(self) -> float:
        return min(self.max_backoff_s, 0.5 * 2 ** min(self._failures, 16))

    async def run(self) -> None:
        while True:
            try:
                progressed = await self.replay_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the loop
                log.exception("outbox replay round failed")
                progressed = False
                self._failures += 1
            if progressed:
                continue  # more may be due right away
            delay = self._backoff() if self._failures else self.poll_s
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def replay_due(self) -> bool:
        """Replay what is due; True when at least one entry was written (so check again at once)."""
        entries = await self.outbox.due()
        if not entries:
            return False
        try:
            token = await self.backends.service_token()
        except ApiError as exc:
            self._failures += 1
            log.warning("outbox: no service token: %s", exc.message)
            return False
        written = 0
        for entry in entries:
            request = entry.request()
            try:
                reply = await self.backends.history.call(
                    "RecordAnalysis",
                    request,
                    token=token,
                    deadline_s=self.backends.settings.backend_timeout_s,
                )
            except ApiError as exc:
                if exc.code == grpc.StatusCode.UNAUTHENTICATED:
                    self.backends.forget_service_token()
                if exc.code in _PERMANENT:
                    OUTBOX_DEAD.inc()
                    log.error(
                        "outbox: history rejected an entry for good; kept as dead",
                        extra={"entry_id": entry.id, "code": exc.code.name, "error": exc.message},
                    )
                    await self.outbox.postpone(entry.id, f"{exc.code.name}: {exc.message}", 0, dead=True)
                    continue
                self._failures += 1
                await self.outbox.postpone(entry.id, f"{exc.code.name}: {exc.message}", self._backoff())
                log.info("outbox: history not reachable, will retry", extra={"code": exc.code.name})
                return written > 0
            await self.outbox.remove(entry.id)
            OUTBOX_REPLAYED.inc()
            written += 1
            self._failures = 0
            log.info(
                "outbox: recorded",
                extra={
                    "entry_id": entry.id,
                    "analysis_id": reply.analysis.id,
                    "newly_created": reply.created,
                },
            )
        return written > 0
