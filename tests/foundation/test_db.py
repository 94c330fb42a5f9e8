"""The shared database layer against real SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common.db import async_url, create_engine, upgrade
from tests.support import REPO_ROOT

SAMPLE = Path(__file__).parent / "sample_migrations"
SERVICE_MIGRATIONS = sorted(
    p for p in (REPO_ROOT / "services").glob("*/migrations") if (p / "env.py").exists()
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///var/x.db", "sqlite+aiosqlite"),
        ("mysql://root@h/db", "mysql+aiomysql"),
        ("mysql+pymysql://root@h/db", "mysql+aiomysql"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_are_upgraded_to_async_drivers(given, expected):
    url = async_url(given)
    assert url.drivername == expected
    if expected.startswith("mysql"):
        assert url.query["charset"] == "utf8mb4"  # emoji and every script fit


async def test_engine_round_trip_and_migrations(database_url):
    await upgrade(database_url, SAMPLE, "alembic_version_sample")
    await upgrade(database_url, SAMPLE, "alembic_version_sample")  # idempotent on restart
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO widgets (name) VALUES (:n)"), [{"n": "ä😀"}, {"n": "b"}])
        async with engine.connect() as conn:
            names = (await conn.execute(sa.text("SELECT name FROM widgets ORDER BY id"))).scalars().all()
            version = (
                await conn.execute(sa.text("SELECT version_num FROM alembic_version_sample"))
            ).scalar_one()
        assert names == ["ä😀", "b"]
        assert version == "0001"
    finally:
        await engine.dispose()


@pytest.mark.parametrize("migrations", SERVICE_MIGRATIONS, ids=lambda p: p.parent.name)
async def test_service_migrations_apply_on_every_database(database_url, migrations):
    service = migrations.parent.name
    await upgrade(database_url, migrations, f"alembic_version_{service}")
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    finally:
        await engine.dispose()
    assert f"alembic_version_{service}" in tables and len(tables) > 1
