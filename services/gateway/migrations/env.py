"""Alembic environment of the gateway's outbox database."""

from services.common.db import run_migrations_from_env
from services.gateway.outbox import Base

run_migrations_from_env(Base.metadata)
