"""Auth service configuration (env prefix AUTH_)."""

from __future__ import annotations

import os
from ipaddress import IPv4Network, IPv6Network, ip_network

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.config import DEFAULT_HISTORY_ADDR, VAR_DIR, ServiceSettings, sqlite_url


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", frozen=True)

    port: int = 50051
    metrics_port: int = 9151
    database_url: str = Field(sqlite_url("auth"), description="SQLAlchemy URL of the accounts database")

    # Keys. Only auth holds the private key; the public halves are served by GetPublicKeys.
    signing_key_file: str = Field(
        "", description="Ed25519 private key (PKCS#8 PEM) that signs tokens; empty = dev key under var/"
    )
    verify_key_files: str = Field(
        "",
        description="comma-separated public PEMs still accepted (rotated-out keys, until tokens expire)",
    )
    dev_signing_key_file: str = Field(
        str(VAR_DIR / "keys" / "auth_signing_key.pem"),
        description="where a development signing key is generated when signing_key_file is empty",
    )

    # Token lifetimes.
    access_token_ttl_s: int = Field(15 * 60, description="access token lifetime")
    refresh_token_ttl_s: int = Field(
        30 * 24 * 3600, description="refresh token lifetime (each rotation renews it)"
    )
    service_token_ttl_s: int = Field(5 * 60, description="lifetime of tokens from IssueServiceToken")

    # Internal callers: "gateway=<secret>,other=<secret>".
    service_secrets: str = Field("", description="service=secret pairs accepted by IssueServiceToken")

    # Argon2id: OWASP's m=19 MiB, t=2, p=1 (see docs/AUTH.md for the measured trade-off).
    argon2_time_cost: int = Field(2, description="Argon2id iterations")
    argon2_memory_kib: int = Field(19 * 1024, description="Argon2id memory per hash, KiB")
    argon2_parallelism: int = Field(1, description="Argon2id lanes")
    argon2_max_concurrent: int = Field(
        max(1, os.cpu_count() or 1), description="hashes computed at once (bounds CPU and memory)"
    )

    # Brute-force protection (sliding windows over recorded failures).
    lockout_max_failures: int = Field(5, description="failed logins per username before a cool-down")
    lockout_window_s: int = Field(15 * 60, description="window in which failures count, per username")
    address_max_failures: int = Field(30, description="failed logins per client address before a cool-down")
    address_window_s: int = Field(15 * 60, description="window in which failures count, per address")
    trusted_proxies: str = Field(
        "",
        description="IPs or CIDRs of proxies (the gateway) whose x-forwarded-for names the client",
    )

    # Account deletion reaching the history service.
    history_addr: str = Field(DEFAULT_HISTORY_ADDR, description="history service, for DeleteAllForUser")
    history_retry_interval_s: float = Field(
        30.0, description="how often pending history deletions are retried"
    )
    history_final_sweep_s: int = Field(
        16 * 60,
        description="delay of a second history deletion, for writes made with tokens still live",
    )

    def service_secret_map(self) -> dict[str, str]:
        """{"gateway": "secret", ...} from `service_secrets`."""
        pairs = {}
        for item in self.service_secrets.split(","):
            name, sep, secret = item.strip().partition("=")
            if sep and name.strip() and secret.strip():
                pairs[name.strip()] = secret.strip()
        return pairs

    def verify_key_paths(self) -> list[str]:
        return [p.strip() for p in self.verify_key_files.split(",") if p.strip()]

    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """Addresses or CIDR ranges, e.g. "127.0.0.1,10.0.0.0/8" (pod IPs change: trust the range)."""
        return tuple(
            ip_network(p.strip(), strict=False) for p in self.trusted_proxies.split(",") if p.strip()
        )
