"""Auth service process: configuration and wiring."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from emotion.v1 import auth_pb2, auth_pb2_grpc
from services.common.config import ServiceSettings, sqlite_url
from services.common.server import GrpcService, run


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", frozen=True)

    port: int = 50051
    metrics_port: int = 9151
    database_url: str = Field(sqlite_url("auth"), description="SQLAlchemy URL of the accounts database")


def build(settings: AuthSettings) -> GrpcService:
    def register(server) -> list[str]:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(auth_pb2_grpc.AuthServiceServicer(), server)
        return [auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name]

    return GrpcService(name="auth", settings=settings, register=register)


def main() -> None:
    run(build(AuthSettings()))
