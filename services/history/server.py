"""History service process: configuration and wiring."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from emotion.v1 import history_pb2, history_pb2_grpc
from services.common import db
from services.common.config import ServiceSettings, sqlite_url
from services.common.server import GrpcService, run
from services.common.tokens import verifier_from_settings
from services.history.handlers import HistoryServicer
from services.history.storage import HistoryStore

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_history"
EXPORT_HEADROOM_BYTES = 64 * 1024  # room for the response's other fields and framing


class HistorySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HISTORY_", extra="ignore", frozen=True)

    port: int = 50052
    metrics_port: int = 9152
    database_url: str = Field(sqlite_url("history"), description="SQLAlchemy URL of the history database")
    db_pool_size: int = Field(5, description="database connections kept open (as many again may overflow)")


def build(settings: HistorySettings) -> GrpcService:
    servicer = HistoryServicer(export_max_bytes=settings.max_message_bytes - EXPORT_HEADROOM_BYTES)

    def register(server) -> list[str]:
        history_pb2_grpc.add_HistoryServiceServicer_to_server(servicer, server)
        return [history_pb2.DESCRIPTOR.services_by_name["HistoryService"].full_name]

    async def startup() -> None:
        await db.upgrade(settings.database_url, MIGRATIONS, VERSION_TABLE)
        servicer.store = HistoryStore.open(settings.database_url, pool_size=settings.db_pool_size)
        log.info("database ready", extra={"database": db.async_url(settings.database_url).get_backend_name()})

    async def shutdown() -> None:
        if servicer.store is not None:
            await servicer.store.close()

    return GrpcService(
        name="history",
        settings=settings,
        register=register,
        startup=startup,
        shutdown=shutdown,
        verifier=verifier_from_settings(settings),
    )


def main() -> None:
    run(build(HistorySettings()))
