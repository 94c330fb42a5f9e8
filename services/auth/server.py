"""Auth service process: configuration and wiring."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path

from emotion.v1 import auth_pb2, auth_pb2_grpc
from services.auth.handlers import AuthHandlers
from services.auth.history_erasure import HistoryEraser
from services.auth.passwords import Passwords
from services.auth.settings import AuthSettings
from services.auth.storage import Storage
from services.auth.tokens import Clock, TokenMinter, load_keyring, utc_now
from services.common import db
from services.common.server import GrpcService, run

__all__ = ["AuthSettings", "AuthApp", "build", "create_app", "migrate", "main"]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version_auth"

# Methods callable without an access token; the rest (profile, password, deletion) need one.
PUBLIC_METHODS = frozenset(
    {
        "Register",
        "Login",
        "Refresh",
        "Logout",
        "GetAgreements",
        "GetPublicKeys",
        "LookupCounselor",
        "IssueServiceToken",
    }
)


async def migrate(settings: AuthSettings) -> None:
    await db.upgrade(settings.database_url, MIGRATIONS, VERSION_TABLE)


def make_passwords(settings: AuthSettings) -> Passwords:
    return Passwords(
        settings.argon2_time_cost,
        settings.argon2_memory_kib,
        settings.argon2_parallelism,
        settings.argon2_max_concurrent,
    )


class AuthApp:
    """The service's parts, built from settings; `service()` is what the bootstrap runs."""

    def __init__(self, settings: AuthSettings, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.keyring = load_keyring(
            settings.signing_key_file, settings.verify_key_paths(), settings.dev_signing_key_file
        )
        self.minter = TokenMinter(
            self.keyring,
            settings.jwt_issuer,
            settings.jwt_audience,
            access_ttl=timedelta(seconds=settings.access_token_ttl_s),
            service_ttl=timedelta(seconds=settings.service_token_ttl_s),
            clock=clock,
        )
        self.storage = Storage(db.create_engine(settings.database_url))
        self.passwords = make_passwords(settings)
        self.eraser = HistoryEraser(
            self.storage,
            self.minter,
            settings.history_addr,
            clock,
            retry_interval=timedelta(seconds=settings.history_retry_interval_s),
        )
        self.handlers = AuthHandlers(
            settings, self.storage, self.passwords, self.keyring, self.minter, self.eraser, clock
        )
        self._maintenance: asyncio.Task | None = None
        secrets = settings.service_secret_map()
        if not secrets:
            log.warning("AUTH_SERVICE_SECRETS is empty: IssueServiceToken will refuse every service")
        for name in (name for name, secret in secrets.items() if len(secret) < 16):
            log.warning("the service secret of %s is short; use 32 random bytes", name)

    async def startup(self) -> None:
        await migrate(self.settings)
        log.info("migrations applied; signing key id %s", self.keyring.active_kid)
        self._maintenance = asyncio.create_task(self._maintain(), name="auth-maintenance")

    async def shutdown(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        await self.storage.close()
        self.passwords.close()

    async def maintain_once(self) -> None:
        """Retries due history deletions and prunes expired refresh tokens and old failure records."""
        await self.eraser.run_due()
        now = self.clock()
        window = timedelta(seconds=max(self.settings.lockout_window_s, self.settings.address_window_s))
        async with self.storage.transaction() as session:
            await self.storage.prune_failures(session, now - window)
            await self.storage.prune_expired_tokens(session, now)

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.settings.history_retry_interval_s)
            try:
                await self.maintain_once()
            except Exception:  # a database blip must not end the loop
                log.exception("maintenance round failed")

    def service(self) -> GrpcService:
        def register(server) -> list[str]:
            auth_pb2_grpc.add_AuthServiceServicer_to_server(self.handlers, server)
            return [auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name]

        return GrpcService(
            name="auth",
            settings=self.settings,
            register=register,
            startup=self.startup,
            shutdown=self.shutdown,
            verifier=self.keyring.verifier(self.settings.jwt_issuer, self.settings.jwt_audience),
            public_methods=PUBLIC_METHODS,
        )


def create_app(settings: AuthSettings, clock: Clock = utc_now) -> AuthApp:
    return AuthApp(settings, clock)


def build(settings: AuthSettings, clock: Clock = utc_now) -> GrpcService:
    return AuthApp(settings, clock).service()


def main() -> None:
    run(build(AuthSettings()))
