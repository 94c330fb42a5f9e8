"""Inference service process: configuration and wiring."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from emotion.v1 import inference_pb2, inference_pb2_grpc
from services.common.config import ServiceSettings
from services.common.server import GrpcService, run


class InferenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INFERENCE_", extra="ignore", frozen=True)

    port: int = 50053
    metrics_port: int = 9153


def build(settings: InferenceSettings) -> GrpcService:
    def register(server) -> list[str]:
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(inference_pb2_grpc.InferenceServiceServicer(), server)
        return [inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name]

    return GrpcService(name="inference", settings=settings, register=register)


def main() -> None:
    run(build(InferenceSettings()))
