"""Gateway settings (env prefix GATEWAY_); docs/GATEWAY.md lists every variable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import (
    DEFAULT_HISTORY_ADDR,
    DEFAULT_INFERENCE_ADDR,
    VAR_DIR,
    ServiceSettings,
)

DEFAULT_WEB_DIR = Path(__file__).resolve().parent / "web"
MIB = 1024 * 1024


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    port: int = Field(50050, description="public gRPC port (EmotionGateway)")
    http_port: int = Field(8000, description="HTTP port: /api/v1, WebSocket live, OpenAPI and the web app")
    metrics_port: int = Field(9150, description="Prometheus /metrics HTTP port; -1 disables")
    max_message_bytes: int = Field(10 * MIB, description="largest gRPC message accepted (photos, frames)")

    history_addr: str = Field(DEFAULT_HISTORY_ADDR, description="history service address")
    inference_addr: str = Field(DEFAULT_INFERENCE_ADDR, description="inference service address")
    service_secret: str = Field(
        "", description="secret for AuthService.IssueServiceToken('gateway'); needed to replay the outbox"
    )

    backend_timeout_s: float = Field(5.0, description="deadline of auth and history calls")
    record_timeout_s: float = Field(
        2.0, description="deadline of the history write of AnalyzePhoto before it falls back to the outbox"
    )
    inference_timeout_s: float = Field(15.0, description="deadline of one inference Analyze call")
    max_inflight_analyses: int = Field(
        48,
        description="photo analyses this process runs at once; past it, RESOURCE_EXHAUSTED (429) at once "
        "with Retry-After instead of a slow queue; 0 = no cap",
    )

    outbox_url: str = Field(
        f"sqlite:///{VAR_DIR / 'gateway_outbox.db'}",
        description="database of the durable outbox of history writes (SQLite file, or a shared DB)",
    )
    outbox_poll_s: float = Field(2.0, description="how often the outbox is checked for due entries")
    outbox_max_backoff_s: float = Field(30.0, description="longest wait between replays while history fails")

    max_body_bytes: int = Field(10 * MIB, description="largest HTTP request body (413 beyond)")
    max_frame_bytes: int = Field(2 * MIB, description="largest live camera frame")
    live_max_seconds: float = Field(1800.0, description="longest live session")

    rate_limit_user_per_s: float = Field(20.0, description="sustained requests per second per user; 0 = off")
    rate_limit_user_burst: int = Field(60, description="burst allowance per user")
    rate_limit_address_per_s: float = Field(
        50.0, description="sustained requests per second per client address; 0 = off"
    )
    rate_limit_address_burst: int = Field(150, description="burst allowance per client address")

    cors_origins: str = Field("", description="comma-separated origins allowed by CORS; empty = CORS off")
    web_dir: str = Field(str(DEFAULT_WEB_DIR), description="folder of the single-page web app served at /")

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]
