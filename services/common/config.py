"""Configuration from environment variables, with documented defaults.

Each service subclasses `ServiceSettings` with its own env prefix (AUTH_,
HISTORY_, INFERENCE_, GATEWAY_), so `AUTH_PORT=6000` moves only auth. The
README's configuration table lists every variable.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = REPO_ROOT / "var"

# Default addresses of the backends, shared by every caller.
DEFAULT_AUTH_ADDR = "127.0.0.1:50051"
DEFAULT_HISTORY_ADDR = "127.0.0.1:50052"
DEFAULT_INFERENCE_ADDR = "127.0.0.1:50053"


def sqlite_url(name: str) -> str:
    """The embedded default database: one SQLite file per service under var/."""
    return f"sqlite+aiosqlite:///{VAR_DIR / f'{name}.db'}"


class ServiceSettings(BaseSettings):
    """Settings every gRPC service has. Subclasses set `env_prefix` and defaults."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="address the gRPC server binds (0.0.0.0 in containers)")
    port: int = Field(0, description="gRPC port")
    metrics_port: int = Field(0, description="Prometheus /metrics HTTP port; -1 disables")
    grace_seconds: float = Field(5.0, description="SIGTERM drain period for in-flight calls")
    max_concurrent_rpcs: int = Field(
        256, description="calls beyond this are refused with RESOURCE_EXHAUSTED (load shedding)"
    )
    max_message_bytes: int = Field(16 * 1024 * 1024, description="largest gRPC message accepted")
    log_level: str = Field("INFO", description="Python logging level")
    auth_addr: str = Field(DEFAULT_AUTH_ADDR, description="auth service, for public keys and calls")
    jwt_public_key_file: str = Field(
        "", description="PEM public key to verify tokens; empty = fetch keys from auth"
    )
    jwt_issuer: str = Field("emotion-auth", description="expected token issuer")
    jwt_audience: str = Field("emotion", description="expected token audience")
