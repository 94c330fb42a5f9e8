"""Ed25519 key helpers: key ids and PEM generation (used by auth and by `make run`)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def key_id(public_pem: str) -> str:
    """A stable key id: the first 16 characters of the base64url SHA-256 of the public key PEM."""
    digest = hashlib.sha256(public_pem.strip().encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:16]


def generate_private_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def public_pem_of(private_pem: str) -> str:
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
