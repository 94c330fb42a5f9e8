"""Gateway process: configuration and wiring."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from emotion.v1 import gateway_pb2, gateway_pb2_grpc
from services.common.config import ServiceSettings
from services.common.server import GrpcService, run


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    port: int = 50050
    http_port: int = 8000
    metrics_port: int = 9150


def build(settings: GatewaySettings) -> GrpcService:
    def register(server) -> list[str]:
        gateway_pb2_grpc.add_EmotionGatewayServicer_to_server(gateway_pb2_grpc.EmotionGatewayServicer(), server)
        return [gateway_pb2.DESCRIPTOR.services_by_name["EmotionGateway"].full_name]

    return GrpcService(name="gateway", settings=settings, register=register)


def main() -> None:
    run(build(GatewaySettings()))
