"""The outbox of history writes.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),  # base64 of a RecordAnalysisRequest
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Double(), nullable=False),
        sa.Column("dead", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
        sa.UniqueConstraint("user_id", "request_id", name="uq_gateway_outbox_user_request"),
    )
    op.create_index("ix_gateway_outbox_due", "gateway_outbox", ["dead", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_gateway_outbox_due", table_name="gateway_outbox")
    op.drop_table("gateway_outbox")
