"""Signing keys and token minting. Only this module ever touches the private key.

Access tokens are EdDSA (Ed25519) JWTs carrying the key id in the header, so a
new key can be introduced while tokens signed by the previous one are still
verified (its public PEM goes to AUTH_VERIFY_KEY_FILES until they expire).
Refresh tokens are opaque random strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from services.common.keys import generate_private_pem, key_id, public_pem_of
from services.common.tokens import ALGORITHM, ROLE_SERVICE, TokenVerifier

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]  # returns an aware UTC datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class KeyRing:
    """The active signing key and every public key that verifies live tokens."""

    signing_pem: str
    extra_public_pems: tuple[str, ...] = ()

    @property
    def active_kid(self) -> str:
        return key_id(public_pem_of(self.signing_pem))

    def public_keys(self) -> dict[str, str]:
        """{kid: public PEM}: the active key first, then the rotated-out ones."""
        keys = {self.active_kid: public_pem_of(self.signing_pem)}
        for pem in self.extra_public_pems:
            keys.setdefault(key_id(pem), pem)
        return keys

    def verifier(self, issuer: str, audience: str) -> TokenVerifier:
        """Verifies tokens with our own public keys: no network hop to ourselves."""
        return TokenVerifier(issuer, audience, keys=self.public_keys())


def load_keyring(signing_key_file: str, verify_key_files: list[str], dev_key_file: str) -> KeyRing:
    """Keys from configuration; without a signing key file, a dev key generated once under var/."""
    if signing_key_file:
        signing_pem = Path(signing_key_file).read_text()
    else:
        signing_pem = _dev_signing_key(Path(dev_key_file))
    load_pem_private_key(signing_pem.encode(), password=None)  # fail at start on a bad key, not per login
    extra = tuple(Path(p).read_text() for p in verify_key_files)
    return KeyRing(signing_pem, extra)


def _dev_signing_key(path: Path) -> str:
    if path.exists():
        log.warning("using the development signing key %s (set AUTH_SIGNING_KEY_FILE in production)", path)
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = generate_private_pem()
    # O_EXCL + 0600: never readable by others, and two processes starting at once don't clobber each other.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text()
    with os.fdopen(fd, "w") as f:
        f.write(pem)
    log.warning("generated a development signing key at %s (set AUTH_SIGNING_KEY_FILE in production)", path)
    return pem


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_at: datetime


class TokenMinter:
    """Signs access and service tokens with the active key."""

    def __init__(
        self,
        keyring: KeyRing,
        issuer: str,
        audience: str,
        access_ttl: timedelta,
        service_ttl: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self._private_key = load_pem_private_key(keyring.signing_pem.encode(), password=None)
        self._kid = keyring.active_kid
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self.service_ttl = service_ttl
        self.clock = clock

    def _sign(self, subject: str, role: str, ttl: timedelta, **claims: str) -> MintedToken:
        now = self.clock()
        expires_at = now + ttl
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "role": role,
            "typ": "access",
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": uuid.uuid4().hex,
            **claims,
        }
        token = jwt.encode(payload, self._private_key, algorithm=ALGORITHM, headers={"kid": self._kid})
        return MintedToken(token, expires_at.replace(microsecond=0))

    def access_token(
        self, user_id: str, role: str, username: str, organization: str, session_id: str
    ) -> MintedToken:
        return self._sign(user_id, role, self.access_ttl, username=username, org=organization, sid=session_id)

    def service_token(self, service: str) -> MintedToken:
        return self._sign(f"service:{service}", ROLE_SERVICE, self.service_ttl, username=service)


def new_refresh_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """What is stored: a leaked table cannot be replayed. SHA-256 suffices for 256-bit random input."""
    return hashlib.sha256(token.encode()).hexdigest()
