"""The database layer: one async SQLAlchemy engine per service from one URL,
and Alembic migrations applied on start.

Accepted URLs (the sync spellings are upgraded to their async drivers):
  sqlite:///var/x.db            -> sqlite+aiosqlite   (embedded default)
  mysql://, mysql+pymysql://    -> mysql+aiomysql     (MariaDB / MySQL; aiomysql builds on PyMySQL)
  postgresql://, postgres://    -> postgresql+asyncpg
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "mysql": "mysql+aiomysql",
    "mysql+pymysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "mariadb+pymysql": "mysql+aiomysql",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}


def async_url(url: str | URL) -> URL:
    """Normalise a database URL to its async driver."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    parsed = parsed.set(drivername=driver)
    if driver == "mysql+aiomysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def create_engine(url: str | URL, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine tuned per dialect; creates the SQLite file's folder if needed."""
    parsed = async_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # pre_ping lets a pool survive a database restart; recycle beats MySQL's wait_timeout.
    return create_async_engine(
        parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | URL, script_location: Path, version_table: str) -> Config:
    """Alembic config built in code: no alembic.ini per service."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["url"] = async_url(url)
    cfg.attributes["version_table"] = version_table
    return cfg


async def upgrade(url: str | URL, script_location: Path, version_table: str) -> None:
    """Apply all migrations. Runs in a worker thread, since Alembic's env.py drives its own loop."""
    cfg = alembic_config(url, script_location, version_table)
    await asyncio.to_thread(command.upgrade, cfg, "head")


def run_migrations_from_env(target_metadata) -> None:
    """The body of every service's migrations/env.py (online mode, async engine)."""
    from alembic import context

    cfg = context.config
    url = cfg.attributes["url"]
    version_table = cfg.attributes["version_table"]

    def migrate(connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,  # one per service, so services may share a database
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER via table copy
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_engine(url, pool_size=1)
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
        await engine.dispose()

    asyncio.run(main())
