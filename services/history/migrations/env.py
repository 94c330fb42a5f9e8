"""Alembic environment of the history service (run by services.common.db.upgrade)."""

from services.common.db import run_migrations_from_env
from services.history.storage import Base

run_migrations_from_env(Base.metadata)
