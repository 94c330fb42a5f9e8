"""Access-token verification, shared by every service.

Only auth holds the private key and mints tokens (services/auth/tokens.py);
everyone else verifies them locally with auth's public keys, fetched once
from `AuthService.GetPublicKeys` (and again when an unknown key id appears,
which is how key rotation reaches them) or read from a PEM file.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"  # the only algorithm accepted: never "none", never HMAC
ROLE_USER = "user"
ROLE_COUNSELOR = "counselor"
ROLE_SERVICE = "service"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not signed by a known key."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, as proven by a verified access token."""

    subject: str  # user id, or "service:<name>"
    role: str
    username: str = ""
    organization: str = ""
    session_id: str = ""

    @property
    def user_id(self) -> str:
        return self.subject

    @property
    def is_service(self) -> bool:
        return self.role == ROLE_SERVICE

    @property
    def is_counselor(self) -> bool:
        return self.role == ROLE_COUNSELOR


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The verified caller of the RPC being handled (set by AuthInterceptor)."""
    principal = principal_var.get()
    if principal is None:
        raise RuntimeError("no authenticated principal: is the method exempt from authentication?")
    return principal


KeyFetcher = Callable[[], Awaitable[dict[str, str]]]  # returns {kid: public PEM}


class TokenVerifier:
    """Verifies EdDSA JWTs against a set of public keys indexed by key id."""

    REFETCH_INTERVAL_S = 10.0  # an unknown kid triggers at most one refetch per interval

    def __init__(
        self,
        issuer: str,
        audience: str,
        keys: dict[str, str] | None = None,
        fetch_keys: KeyFetcher | None = None,
        leeway_s: float = 5.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._keys: dict[str, object] = {}
        self._fetch_keys = fetch_keys
        self._last_fetch = float("-inf")
        self._lock = asyncio.Lock()
        if keys:
            self.set_keys(keys)

    def set_keys(self, keys: dict[str, str]) -> None:
        self._keys = {kid: load_pem_public_key(pem.encode()) for kid, pem in keys.items()}

    async def _key_for(self, kid: str) -> object:
        if kid not in self._keys and self._fetch_keys is not None:
            async with self._lock:
                stale = time.monotonic() - self._last_fetch > self.REFETCH_INTERVAL_S
                if kid not in self._keys and (stale or not self._keys):
                    self._last_fetch = time.monotonic()
                    try:
                        self.set_keys(await self._fetch_keys())
                    except Exception as exc:  # auth unreachable: fail this call, retry later
                        log.warning("fetching public keys failed: %s", exc)
                        raise InvalidToken("token keys unavailable") from exc
        try:
            return self._keys[kid]
        except KeyError:
            raise InvalidToken("token signed by an unknown key") from None

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unsupported token algorithm")
        key = await self._key_for(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid token") from exc
        if claims.get("typ") != "access":
            raise InvalidToken("not an access token")
        return Principal(
            subject=str(claims["sub"]),
            role=str(claims.get("role", "")),
            username=str(claims.get("username", "")),
            organization=str(claims.get("org", "")),
            session_id=str(claims.get("sid", "")),
        )


def bearer_token(metadata: dict[str, str]) -> str:
    """The token of an `authorization: Bearer <token>` header, or InvalidToken."""
    value = metadata.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("missing bearer token")
    return token.strip()


def verifier_from_settings(settings) -> TokenVerifier:
    """A verifier with keys from a PEM file, or fetched from the auth service."""
    if settings.jwt_public_key_file:
        with open(settings.jwt_public_key_file) as f:
            pem = f.read()
        from services.common.keys import key_id

        return TokenVerifier(settings.jwt_issuer, settings.jwt_audience, keys={key_id(pem): pem})

    async def fetch() -> dict[str, str]:
        from emotion.v1 import auth_pb2, auth_pb2_grpc
        from services.common.clients import connect

        async with connect(settings.auth_addr) as channel:
            reply = await auth_pb2_grpc.AuthServiceStub(channel).GetPublicKeys(
                auth_pb2.GetPublicKeysRequest(), timeout=3.0
            )
        return {k.kid: k.pem for k in reply.keys}

    return TokenVerifier(settings.jwt_issuer, settings.jwt_audience, fetch_keys=fetch)
