"""Accounts, sessions, refresh tokens, login failures and pending history deletions.

Portable across SQLite, MariaDB and PostgreSQL: bounded VARCHARs (MariaDB
indexes need them), utf8mb4 tables, timestamps stored as naive UTC with
microseconds (DATETIME(6) on MariaDB) and handed out as aware UTC datetimes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from services.common.db import session_factory

MYSQL_TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}

USERNAME_MAX = 32
DISPLAY_NAME_MAX = 64
PHONE_MAX = 20  # E.164 is at most 15 digits plus "+"
ORGANIZATION_MAX = 128
VERSION_MAX = 32


class UtcDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))  # default DATETIME drops fractions
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "auth_users"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX))  # as registered
    username_key: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)  # lowercased: uniqueness
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX))
    phone: Mapped[str] = mapped_column(String(PHONE_MAX))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    organization: Mapped[str] = mapped_column(String(ORGANIZATION_MAX), default="")
    store_thumbnails: Mapped[bool] = mapped_column(Boolean, default=False)
    privacy_policy_version: Mapped[str] = mapped_column(String(VERSION_MAX))
    privacy_policy_accepted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    user_agreement_version: Mapped[str] = mapped_column(String(VERSION_MAX))
    user_agreement_accepted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Session(Base):
    """A login: the family of refresh tokens rotated from one password authentication."""

    __tablename__ = "auth_sessions"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class RefreshToken(Base):
    __tablename__ = "auth_refresh_tokens"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 hex
    session_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # set when rotated


class LoginFailure(Base):
    """One failed password check, keyed by a hash of the username or of the client address."""

    __tablename__ = "auth_login_failures"
    __table_args__ = (
        Index("ix_auth_login_failures_lookup", "scope", "key_hash", "occurred_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    scope: Mapped[str] = mapped_column(String(16))  # "username" | "address"
    key_hash: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PendingHistoryDeletion(Base):
    """An account deleted here whose history must still be (or be again) deleted in history."""

    __tablename__ = "auth_pending_history_deletions"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    final_sweep_at: Mapped[datetime] = mapped_column(UtcDateTime)  # done only after a success past this
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(255), default="")


@dataclass(frozen=True)
class RefreshLookup:
    token: RefreshToken
    session: Session


class UsernameTaken(Exception):
    pass


class Storage:
    """Queries; callers group them in `transaction()`s."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as db, db.begin():
            yield db

    async def close(self) -> None:
        await self.engine.dispose()

    # Users

    @staticmethod
    async def user_by_id(db: AsyncSession, user_id: str) -> User | None:
        return await db.get(User, user_id)

    @staticmethod
    async def user_by_username(db: AsyncSession, username: str) -> User | None:
        if len(username) > USERNAME_MAX:
            return None
        return (
            await db.execute(select(User).where(User.username_key == username.lower()))
        ).scalar_one_or_none()

    @staticmethod
    async def add_user(db: AsyncSession, user: User) -> None:
        from sqlalchemy.exc import IntegrityError

        db.add(user)
        try:
            await db.flush()
        except IntegrityError as exc:  # the unique username_key, also under a concurrent registration
            raise UsernameTaken(user.username) from exc

    @staticmethod
    async def delete_user(db: AsyncSession, user_id: str) -> None:
        """Removes the user and their sessions and tokens (explicitly, not trusting FK cascades)."""
        session_ids = select(Session.id).where(Session.user_id == user_id)
        await db.execute(delete(RefreshToken).where(RefreshToken.session_id.in_(session_ids)))
        await db.execute(delete(Session).where(Session.user_id == user_id))
        await db.execute(delete(User).where(User.id == user_id))

    # Sessions and refresh tokens

    @staticmethod
    async def start_session(db: AsyncSession, user_id: str, now: datetime) -> Session:
        session = Session(id=str(uuid.uuid4()), user_id=user_id, created_at=now, last_used_at=now)
        db.add(session)
        await db.flush()
        return session

    @staticmethod
    async def add_refresh_token(
        db: AsyncSession, session_id: str, token_hash: str, now: datetime, expires_at: datetime
    ) -> None:
        db.add(
            RefreshToken(token_hash=token_hash, session_id=session_id, issued_at=now, expires_at=expires_at)
        )
        await db.flush()

    @staticmethod
    async def find_refresh_token(db: AsyncSession, token_hash: str) -> RefreshLookup | None:
        row = (
            await db.execute(
                select(RefreshToken, Session)
                .join(Session, Session.id == RefreshToken.session_id)
                .where(RefreshToken.token_hash == token_hash)
            )
        ).first()
        return None if row is None else RefreshLookup(row[0], row[1])

    @staticmethod
    async def spend_refresh_token(db: AsyncSession, token_hash: str, now: datetime) -> bool:
        """Marks the token used; False if it already was (a concurrent rotation won the race)."""
        result = await db.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        )
        return result.rowcount == 1

    @staticmethod
    async def touch_session(db: AsyncSession, session_id: str, now: datetime) -> None:
        await db.execute(update(Session).where(Session.id == session_id).values(last_used_at=now))

    @staticmethod
    async def session_active(db: AsyncSession, session_id: str) -> bool:
        session = await db.get(Session, session_id)
        return session is not None and session.revoked_at is None

    @staticmethod
    async def revoke_session(db: AsyncSession, session_id: str, reason: str, now: datetime) -> None:
        await db.execute(
            update(Session)
            .where(Session.id == session_id, Session.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )

    @staticmethod
    async def revoke_user_sessions(db: AsyncSession, user_id: str, reason: str, now: datetime) -> None:
        await db.execute(
            update(Session)
            .where(Session.user_id == user_id, Session.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )

    # Login failures

    @staticmethod
    async def failures_since(db: AsyncSession, scope: str, key_hash: str, since: datetime) -> list[datetime]:
        """Times of failures after `since`, oldest first."""
        rows = await db.execute(
            select(LoginFailure.occurred_at)
            .where(
                LoginFailure.scope == scope,
                LoginFailure.key_hash == key_hash,
                LoginFailure.occurred_at > since,
            )
            .order_by(LoginFailure.occurred_at)
        )
        return list(rows.scalars())

    @staticmethod
    async def record_failure(
        db: AsyncSession, scope: str, key_hash: str, now: datetime, prune_before: datetime
    ) -> None:
        await db.execute(
            delete(LoginFailure).where(
                LoginFailure.scope == scope,
                LoginFailure.key_hash == key_hash,
                LoginFailure.occurred_at <= prune_before,
            )
        )
        db.add(LoginFailure(scope=scope, key_hash=key_hash, occurred_at=now))
        await db.flush()

    @staticmethod
    async def clear_failures(db: AsyncSession, scope: str, key_hash: str) -> None:
        await db.execute(
            delete(LoginFailure).where(LoginFailure.scope == scope, LoginFailure.key_hash == key_hash)
        )

    @staticmethod
    async def prune_failures(db: AsyncSession, before: datetime) -> int:
        result = await db.execute(delete(LoginFailure).where(LoginFailure.occurred_at <= before))
        return result.rowcount or 0

    @staticmethod
    async def prune_expired_tokens(db: AsyncSession, before: datetime) -> int:
        """Refresh tokens past expiry are useless; sessions left without tokens go too."""
        result = await db.execute(delete(RefreshToken).where(RefreshToken.expires_at <= before))
        live = select(RefreshToken.session_id)
        await db.execute(delete(Session).where(Session.id.not_in(live), Session.last_used_at <= before))
        return result.rowcount or 0

    # Pending history deletions

    @staticmethod
    async def add_pending_deletion(
        db: AsyncSession, user_id: str, now: datetime, final_sweep_at: datetime
    ) -> None:
        db.add(
            PendingHistoryDeletion(
                user_id=user_id,
                requested_at=now,
                final_sweep_at=final_sweep_at,
                next_attempt_at=now,
                attempts=0,
            )
        )
        await db.flush()

    @staticmethod
    async def due_deletions(
        db: AsyncSession, now: datetime, limit: int = 100
    ) -> list[PendingHistoryDeletion]:
        rows = await db.execute(
            select(PendingHistoryDeletion)
            .where(PendingHistoryDeletion.next_attempt_at <= now)
            .order_by(PendingHistoryDeletion.next_attempt_at)
            .limit(limit)
        )
        return list(rows.scalars())

    @staticmethod
    async def pending_deletion(db: AsyncSession, user_id: str) -> PendingHistoryDeletion | None:
        return await db.get(PendingHistoryDeletion, user_id)

    @staticmethod
    async def reschedule_deletion(
        db: AsyncSession, user_id: str, next_attempt_at: datetime, attempts: int, error: str
    ) -> None:
        await db.execute(
            update(PendingHistoryDeletion)
            .where(PendingHistoryDeletion.user_id == user_id)
            .values(next_attempt_at=next_attempt_at, attempts=attempts, last_error=error[:255])
        )

    @staticmethod
    async def finish_deletion(db: AsyncSession, user_id: str) -> None:
        await db.execute(delete(PendingHistoryDeletion).where(PendingHistoryDeletion.user_id == user_id))

    @staticmethod
    async def count(db: AsyncSession, model) -> int:
        return (await db.execute(select(func.count()).select_from(model))).scalar_one()
