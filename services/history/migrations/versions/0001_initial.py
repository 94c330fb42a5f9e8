"""History schema: analyses, grants, audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# UTC instants: TIMESTAMPTZ on PostgreSQL; MariaDB's DATETIME needs fsp=6 to keep microseconds.
UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# MariaDB's BLOB stops one byte short of the 64 KiB thumbnail cap.
THUMBNAIL = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")
MYSQL_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
SCORES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def upgrade() -> None:
    op.create_table(
        "history_analyses",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("captured_at", UTC_DATETIME, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("source", sa.SmallInteger(), nullable=False),
        sa.Column("dominant", sa.SmallInteger(), nullable=False),
        *(sa.Column(f"score_{name}", sa.Double(), nullable=False) for name in SCORES),
        sa.Column("face_count", sa.Integer(), nullable=False),
        sa.Column("faces_json", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("thumbnail_jpeg", THUMBNAIL, nullable=True),
        sa.UniqueConstraint("user_id", "request_id", name="uq_history_analyses_user_request"),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_history_analyses_user_captured", "history_analyses", ["user_id", "captured_at", "id"])

    op.create_table(
        "history_grants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("client_username", sa.String(64), nullable=False),
        sa.Column("counselor_id", sa.String(64), nullable=False),
        sa.Column("counselor_username", sa.String(64), nullable=False),
        sa.Column("organization", sa.String(200), nullable=False),
        sa.Column("granted_at", UTC_DATETIME, nullable=False),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.UniqueConstraint("client_id", "counselor_id", name="uq_history_grants_client_counselor"),
        **MYSQL_OPTIONS,
    )
    op.create_index("ix_history_grants_counselor", "history_grants", ["counselor_id"])

    op.create_table(
        "history_audit_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("counselor_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("analysis_id", sa.String(36), nullable=False),
        sa.Column("occurred_at", UTC_DATETIME, nullable=False),
        **MYSQL_OPTIONS,
    )
    op.create_index(
        "ix_history_audit_client_occurred", "history_audit_events", ["client_id", "occurred_at", "id"]
    )
    op.create_index("ix_history_audit_counselor", "history_audit_events", ["counselor_id"])


def downgrade() -> None:
    op.drop_table("history_audit_events")
    op.drop_table("history_grants")
    op.drop_table("history_analyses")
