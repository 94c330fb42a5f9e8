"""Accounts, sessions, refresh tokens, login failures, pending history deletions.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def utc() -> sa.types.TypeEngine:
    """Naive UTC timestamps with microseconds (MariaDB's plain DATETIME drops them)."""
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    op.create_table(
        "auth_users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("username_key", sa.String(32), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("organization", sa.String(128), nullable=False),
        sa.Column("store_thumbnails", sa.Boolean(), nullable=False),
        sa.Column("privacy_policy_version", sa.String(32), nullable=False),
        sa.Column("privacy_policy_accepted_at", utc(), nullable=False),
        sa.Column("user_agreement_version", sa.String(32), nullable=False),
        sa.Column("user_agreement_accepted_at", utc(), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("updated_at", utc(), nullable=False),
        sa.Column("password_changed_at", utc(), nullable=False),
        sa.UniqueConstraint("username_key", name="uq_auth_users_username_key"),
        **MYSQL,
    )
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("last_used_at", utc(), nullable=False),
        sa.Column("revoked_at", utc(), nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
        **MYSQL,
    )
    op.create_index("ix_auth_sessions_user_id", "auth_sessions", ["user_id"])
    op.create_table(
        "auth_refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "session_id", sa.String(36), sa.ForeignKey("auth_sessions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("issued_at", utc(), nullable=False),
        sa.Column("expires_at", utc(), nullable=False),
        sa.Column("used_at", utc(), nullable=True),
        **MYSQL,
    )
    op.create_index("ix_auth_refresh_tokens_session_id", "auth_refresh_tokens", ["session_id"])
    op.create_table(
        "auth_login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("occurred_at", utc(), nullable=False),
        **MYSQL,
    )
    op.create_index("ix_auth_login_failures_lookup", "auth_login_failures", ["scope", "key_hash", "occurred_at"])
    op.create_table(
        "auth_pending_history_deletions",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("requested_at", utc(), nullable=False),
        sa.Column("final_sweep_at", utc(), nullable=False),
        sa.Column("next_attempt_at", utc(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(255), nullable=False),
        **MYSQL,
    )
    op.create_index(
        "ix_auth_pending_history_deletions_next_attempt_at", "auth_pending_history_deletions", ["next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_table("auth_pending_history_deletions")
    op.drop_table("auth_login_failures")
    op.drop_table("auth_refresh_tokens")
    op.drop_table("auth_sessions")
    op.drop_table("auth_users")
