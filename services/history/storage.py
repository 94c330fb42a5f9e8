"""History storage: SQLAlchemy 2 models and the queries the handlers need.

One schema for SQLite, MariaDB and PostgreSQL. Timestamps are UTC instants
everywhere: TIMESTAMPTZ on PostgreSQL, DATETIME(6) holding UTC on MariaDB
(whose DATETIME has no zone and, by default, no fractional seconds) and
fixed-width UTC text on SQLite, which therefore sorts and compares correctly.

An analysis is one row: the overall scores are real columns (summaries read
them without decoding anything) and the faces a compact JSON array, since
they are only ever read together with their analysis.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from services.common.db import create_engine, session_factory
from services.common.ids import analysis_id

SCORE_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # FER-2013 order
USER_ID_MAX = 64
REQUEST_ID_MAX = 128
MODEL_VERSION_MAX = 64
USERNAME_MAX = 64
ORGANIZATION_MAX = 200


_ZERO = timedelta(0)


class UtcDateTime(TypeDecorator):
    """An aware UTC datetime in, an aware UTC datetime out, on every dialect."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite and MariaDB hand back the stored UTC wall time
            return value.replace(tzinfo=UTC)
        return value if value.utcoffset() == _ZERO else value.astimezone(UTC)


# MariaDB's BLOB stops at 65,535 bytes, one short of the 64 KiB thumbnail cap.
Thumbnail = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")


class Base(DeclarativeBase):
    pass


class AnalysisRow(Base):
    __tablename__ = "history_analyses"
    __table_args__ = (
        UniqueConstraint("user_id", "request_id", name="uq_history_analyses_user_request"),
        # Every per-user read is a range of this index, newest first (backward scan).
        Index("ix_history_analyses_user_captured", "user_id", "captured_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(USER_ID_MAX))
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_MAX))
    captured_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    source: Mapped[int] = mapped_column(SmallInteger)
    dominant: Mapped[int] = mapped_column(SmallInteger)  # 0 when no face was found
    score_angry: Mapped[float] = mapped_column(Double)
    score_disgust: Mapped[float] = mapped_column(Double)
    score_fear: Mapped[float] = mapped_column(Double)
    score_happy: Mapped[float] = mapped_column(Double)
    score_sad: Mapped[float] = mapped_column(Double)
    score_surprise: Mapped[float] = mapped_column(Double)
    score_neutral: Mapped[float] = mapped_column(Double)
    face_count: Mapped[int] = mapped_column(Integer)
    faces_json: Mapped[str] = mapped_column(Text)  # see encode_faces
    model_version: Mapped[str] = mapped_column(String(MODEL_VERSION_MAX))
    thumbnail_jpeg: Mapped[bytes | None] = mapped_column(Thumbnail, nullable=True)


class GrantRow(Base):
    """A client's consent for one counsellor; re-granting reactivates the same row."""

    __tablename__ = "history_grants"
    __table_args__ = (
        UniqueConstraint("client_id", "counselor_id", name="uq_history_grants_client_counselor"),
        Index("ix_history_grants_counselor", "counselor_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(USER_ID_MAX))
    client_username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    counselor_id: Mapped[str] = mapped_column(String(USER_ID_MAX))
    counselor_username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    organization: Mapped[str] = mapped_column(String(ORGANIZATION_MAX))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AuditEventRow(Base):
    """One counsellor read of a client's history."""

    __tablename__ = "history_audit_events"
    __table_args__ = (
        Index("ix_history_audit_client_occurred", "client_id", "occurred_at", "id"),
        Index("ix_history_audit_counselor", "counselor_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(USER_ID_MAX))
    counselor_id: Mapped[str] = mapped_column(String(USER_ID_MAX))
    action: Mapped[str] = mapped_column(String(32))
    analysis_id: Mapped[str] = mapped_column(String(36))  # "" unless the read was one analysis
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())


def row_scores(row) -> tuple[float, ...]:
    """The seven overall scores of an analysis (ORM object or Core row), FER-2013 order."""
    return (
        row.score_angry,
        row.score_disgust,
        row.score_fear,
        row.score_happy,
        row.score_sad,
        row.score_surprise,
        row.score_neutral,
    )


# --- value objects --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height
    scores: tuple[float, ...]  # seven, FER-2013 order
    dominant: int  # Expression enum value
    emoji: str = ""
    detection_score: float = 0.0
    track_id: int = 0


def encode_faces(faces: Sequence[Face]) -> str:
    """Compact JSON: one flat array per face, scores rounded to float32's useful precision."""
    return json.dumps(
        [
            [
                *f.box,
                [round(s, 7) for s in f.scores],
                f.dominant,
                f.emoji,
                round(f.detection_score, 7),
                f.track_id,
            ]
            for f in faces
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def decode_faces(text: str) -> list[Face]:
    return [
        Face((x, y, w, h), tuple(scores), dominant, emoji, detection, track)
        for x, y, w, h, scores, dominant, emoji, detection, track in json.loads(text)
    ]


@dataclass(frozen=True)
class NewAnalysis:
    user_id: str
    request_id: str
    captured_at: datetime
    source: int
    faces: Sequence[Face]
    scores: tuple[float, ...]
    dominant: int
    model_version: str
    thumbnail_jpeg: bytes | None


@dataclass(frozen=True)
class AnalysisFilter:
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    source: int = 0  # 0 = any
    dominant: int = 0  # 0 = any


@dataclass(frozen=True)
class Position:
    """A keyset cursor: the (time, id) of the last item of the previous page."""

    at: datetime
    id: str


@dataclass
class ClientInfo:
    grant: GrantRow
    analyses: int = 0
    last_analysis_at: datetime | None = None


@dataclass
class DeletedCounts:
    analyses: int = 0
    grants: int = 0
    audit_events: int = 0


ANALYSES = AnalysisRow.__table__
SUMMARY_COLUMNS = (
    AnalysisRow.captured_at,
    AnalysisRow.dominant,
    AnalysisRow.face_count,
    *(getattr(AnalysisRow, f"score_{name}") for name in SCORE_NAMES),
)


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


def _before(time_column, id_column, position: Position):
    """Rows strictly after `position` in newest-first order. The redundant `<=` keeps the
    condition an index range on every database's planner."""
    return and_(
        time_column <= position.at,
        or_(time_column < position.at, and_(time_column == position.at, id_column < position.id)),
    )


@dataclass
class HistoryStore:
    engine: AsyncEngine
    sessions: async_sessionmaker = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = session_factory(self.engine)

    @classmethod
    def open(cls, url: str, pool_size: int = 5) -> HistoryStore:
        return cls(create_engine(url, pool_size=pool_size))

    async def close(self) -> None:
        await self.engine.dispose()

    # --- analyses ---------------------------------------------------------------------------------

    async def record(self, new: NewAnalysis) -> tuple[AnalysisRow, bool]:
        """Store `new` once per (user_id, request_id); a duplicate returns the stored row and False.

        The insert goes first (retries are the exception): a duplicate, concurrent or not, fails on
        the unique constraint and then reads the row that won.
        """
        row = AnalysisRow(
            id=analysis_id(new.user_id, new.request_id),  # the gateway can name it before we have it
            user_id=new.user_id,
            request_id=new.request_id,
            captured_at=new.captured_at,
            created_at=_now(),
            source=new.source,
            dominant=new.dominant,
            face_count=len(new.faces),
            faces_json=encode_faces(new.faces),
            model_version=new.model_version,
            thumbnail_jpeg=new.thumbnail_jpeg or None,
            **{f"score_{name}": float(s) for name, s in zip(SCORE_NAMES, new.scores, strict=True)},
        )
        try:
            async with self.sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            existing = await self._by_request_id(new.user_id, new.request_id)
            if existing is None:  # not the duplicate we expected: a real integrity problem
                raise
            return existing, False
        return row, True  # microsecond datetimes round-trip exactly on all three databases

    async def _by_request_id(self, user_id: str, request_id: str) -> AnalysisRow | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(AnalysisRow).where(
                    AnalysisRow.user_id == user_id, AnalysisRow.request_id == request_id
                )
            )

    async def get_analysis(self, user_id: str, analysis_id: str) -> AnalysisRow | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(AnalysisRow).where(AnalysisRow.id == analysis_id, AnalysisRow.user_id == user_id)
            )

    async def list_analyses(
        self, user_id: str, where: AnalysisFilter, after: Position | None, limit: int
    ) -> list[Row]:
        """A page of analyses as Core rows (same attribute names as AnalysisRow; no ORM overhead)."""
        query = select(ANALYSES).where(AnalysisRow.user_id == user_id, *self._conditions(where))
        if after is not None:
            query = query.where(_before(AnalysisRow.captured_at, AnalysisRow.id, after))
        query = query.order_by(AnalysisRow.captured_at.desc(), AnalysisRow.id.desc()).limit(limit)
        async with self.engine.connect() as connection:
            return list(await connection.execute(query))

    @staticmethod
    def _conditions(where: AnalysisFilter) -> list:
        conditions = []
        if where.start is not None:
            conditions.append(AnalysisRow.captured_at >= where.start)
        if where.end is not None:
            conditions.append(AnalysisRow.captured_at < where.end)
        if where.source:
            conditions.append(AnalysisRow.source == where.source)
        if where.dominant:
            conditions.append(AnalysisRow.dominant == where.dominant)
        return conditions

    async def summary_rows(self, user_id: str, where: AnalysisFilter) -> Sequence[tuple]:
        """(captured_at, dominant, face_count, seven scores) of every analysis in range."""
        query = select(*SUMMARY_COLUMNS).where(AnalysisRow.user_id == user_id, *self._conditions(where))
        async with self.engine.connect() as connection:  # Core, not ORM: thousands of plain tuples
            return (await connection.execute(query)).all()

    async def iter_analyses(self, user_id: str, batch_size: int = 500) -> AsyncIterator[list[Row]]:
        """All of a user's analyses, newest first, in batches (keyset paged, short transactions)."""
        after = None
        while True:
            batch = await self.list_analyses(user_id, AnalysisFilter(), after, batch_size)
            if not batch:
                return
            yield batch
            after = Position(batch[-1].captured_at, batch[-1].id)

    async def delete_analysis(self, user_id: str, analysis_id: str) -> bool:
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(AnalysisRow).where(AnalysisRow.id == analysis_id, AnalysisRow.user_id == user_id)
            )
            return result.rowcount > 0

    async def delete_all_for_user(self, user_id: str) -> DeletedCounts:
        """The user's analyses, and their grants and audit events both as client and as counsellor."""
        async with self.sessions.begin() as session:
            analyses = await session.execute(delete(AnalysisRow).where(AnalysisRow.user_id == user_id))
            grants = await session.execute(
                delete(GrantRow).where(or_(GrantRow.client_id == user_id, GrantRow.counselor_id == user_id))
            )
            events = await session.execute(
                delete(AuditEventRow).where(
                    or_(AuditEventRow.client_id == user_id, AuditEventRow.counselor_id == user_id)
                )
            )
            return DeletedCounts(analyses.rowcount, grants.rowcount, events.rowcount)

    # --- sharing ----------------------------------------------------------------------------------

    async def grant(
        self,
        client_id: str,
        client_username: str,
        counselor_id: str,
        counselor_username: str,
        organization: str,
    ) -> GrantRow:
        """Activate (or re-activate) the client's grant for the counsellor; idempotent."""
        names = dict(
            client_username=client_username, counselor_username=counselor_username, organization=organization
        )
        for _ in range(2):  # a concurrent first grant may win the insert; then update theirs
            async with self.sessions.begin() as session:
                row = await self._grant_row(session, client_id, counselor_id)
                if row is not None:
                    if row.revoked_at is not None:
                        row.granted_at, row.revoked_at = _now(), None
                    for name, value in names.items():
                        setattr(row, name, value)
                    return row
            try:
                row = GrantRow(
                    id=_new_id(), client_id=client_id, counselor_id=counselor_id, granted_at=_now(), **names
                )
                async with self.sessions.begin() as session:
                    session.add(row)
                return row
            except IntegrityError:
                continue
        raise RuntimeError("grant kept conflicting")

    @staticmethod
    async def _grant_row(session, client_id: str, counselor_id: str) -> GrantRow | None:
        return await session.scalar(
            select(GrantRow).where(GrantRow.client_id == client_id, GrantRow.counselor_id == counselor_id)
        )

    async def revoke(self, client_id: str, counselor_id: str) -> bool:
        """Revoke at once; False when the client never granted this counsellor anything."""
        async with self.sessions.begin() as session:
            row = await self._grant_row(session, client_id, counselor_id)
            if row is None:
                return False
            if row.revoked_at is None:
                row.revoked_at = _now()
            return True

    async def list_grants(self, client_id: str) -> list[GrantRow]:
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(GrantRow)
                    .where(GrantRow.client_id == client_id)
                    .order_by(GrantRow.granted_at.desc(), GrantRow.id.desc())
                )
            )

    async def has_active_grant(self, client_id: str, counselor_id: str) -> bool:
        async with self.sessions() as session:
            row = await self._grant_row(session, client_id, counselor_id)
            return row is not None and row.revoked_at is None

    async def list_clients(self, counselor_id: str) -> list[ClientInfo]:
        async with self.sessions() as session:
            grants = list(
                await session.scalars(
                    select(GrantRow)
                    .where(GrantRow.counselor_id == counselor_id, GrantRow.revoked_at.is_(None))
                    .order_by(GrantRow.granted_at.desc(), GrantRow.id.desc())
                )
            )
            clients = {g.client_id: ClientInfo(g) for g in grants}
            if clients:
                stats = await session.execute(
                    select(AnalysisRow.user_id, func.count(), func.max(AnalysisRow.captured_at))
                    .where(AnalysisRow.user_id.in_(list(clients)))
                    .group_by(AnalysisRow.user_id)
                )
                for user_id, count, last in stats:
                    clients[user_id].analyses, clients[user_id].last_analysis_at = count, last
            return list(clients.values())

    # --- audit trail ------------------------------------------------------------------------------

    async def add_audit_event(
        self, client_id: str, counselor_id: str, action: str, analysis_id: str = ""
    ) -> None:
        async with self.sessions.begin() as session:
            session.add(
                AuditEventRow(
                    id=_new_id(),
                    client_id=client_id,
                    counselor_id=counselor_id,
                    action=action,
                    analysis_id=analysis_id,
                    occurred_at=_now(),
                )
            )

    async def list_audit_events(
        self, client_id: str, after: Position | None, limit: int
    ) -> list[AuditEventRow]:
        query = select(AuditEventRow).where(AuditEventRow.client_id == client_id)
        if after is not None:
            query = query.where(_before(AuditEventRow.occurred_at, AuditEventRow.id, after))
        query = query.order_by(AuditEventRow.occurred_at.desc(), AuditEventRow.id.desc()).limit(limit)
        async with self.sessions() as session:
            return list(await session.scalars(query))


__all__ = [
    "AnalysisFilter",
    "AnalysisRow",
    "AuditEventRow",
    "Base",
    "ClientInfo",
    "DeletedCounts",
    "Face",
    "GrantRow",
    "HistoryStore",
    "NewAnalysis",
    "Position",
    "SCORE_NAMES",
    "row_scores",
]
