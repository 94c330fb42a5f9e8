"""History service process: configuration and wiring."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from emotion.v1 import history_pb2, history_pb2_grpc
from services.common.config import ServiceSettings, sqlite_url
from services.common.server import GrpcService, run
from services.common.tokens import verifier_from_settings


class HistorySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HISTORY_", extra="ignore", frozen=True)

    port: int = 50052
    metrics_port: int = 9152
    database_url: str = Field(sqlite_url("history"), description="SQLAlchemy URL of the history database")


def build(settings: HistorySettings) -> GrpcService:
    def register(server) -> list[str]:
        history_pb2_grpc.add_HistoryServiceServicer_to_server(history_pb2_grpc.HistoryServiceServicer(), server)
        return [history_pb2.DESCRIPTOR.services_by_name["HistoryService"].full_name]

    return GrpcService(name="history", settings=settings, register=register, verifier=verifier_from_settings(settings))


def main() -> None:
    run(build(HistorySettings()))
