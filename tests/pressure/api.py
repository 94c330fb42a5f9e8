"""Helpers for the gateway's HTTP API (/api/v1, see docs/GATEWAY.md) shared by the pressure tests and the
bench scripts: accounts, sample photos and response checks."""

from __future__ import annotations

import io
import random
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import SHARED_DATA

# Errors the API documents (http_api contract): anything else from hostile input is a finding.
DOCUMENTED_CLIENT_ERRORS = frozenset({400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 429})


@dataclass
class Account:
    username: str
    password: str
    user_id: str = ""
    access: str = ""
    refresh: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def new_username(prefix: str = "p") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def new_password() -> str:
    return f"Pw-{secrets.token_hex(8)}-x"


def new_phone(rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    return f"+86138{rng.randrange(10**8):08d}"


def agreement_versions(client: httpx.Client, base: str) -> tuple[str, str]:
    body = client.get(f"{base}/api/v1/agreements", timeout=10).raise_for_status().json()
    return body["privacy_policy"]["version"], body["user_agreement"]["version"]


def registration(username: str, password: str, versions: tuple[str, str], **overrides) -> dict:
    return {
        "username": username,
        "password": password,
        "phone": new_phone(),
        "display_name": username,
        "accepted_privacy_policy_version": versions[0],
        "accepted_user_agreement_version": versions[1],
        **overrides,
    }


def register_and_login(client: httpx.Client, base: str, prefix: str = "p", versions=None) -> Account:
    versions = versions or agreement_versions(client, base)
    account = Account(new_username(prefix), new_password())
    reply = client.post(
        f"{base}/api/v1/auth/register",
        json=registration(account.username, account.password, versions),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    account.user_id = reply.json()["user"]["id"]
    return login(client, base, account)


def login(client: httpx.Client, base: str, account: Account) -> Account:
    reply = client.post(
        f"{base}/api/v1/auth/login",
        json={"username": account.username, "password": account.password},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    account.access = body["tokens"]["access_token"]
    account.refresh = body["tokens"]["refresh_token"]
    account.user_id = body["user"]["id"]
    return account


async def aregister_and_login(client: httpx.AsyncClient, base: str, prefix: str, versions) -> Account:
    account = Account(new_username(prefix), new_password())
    reply = await client.post(
        f"{base}/api/v1/auth/register",
        json=registration(account.username, account.password, versions),
        timeout=60,
    )
    reply.raise_for_status()
    reply = await client.post(
        f"{base}/api/v1/auth/login",
        json={"username": account.username, "password": account.password},
        timeout=60,
    )
    reply.raise_for_status()
    body = reply.json()
    account.access, account.refresh = body["tokens"]["access_token"], body["tokens"]["refresh_token"]
    account.user_id = body["user"]["id"]
    return account


def sample_photos(limit: int = 16) -> list[bytes]:
    """Real photos from the shared data set; synthetic faces when it is not there (CI without data)."""
    folder = SHARED_DATA / "photos" / "images"
    paths = sorted(Path(folder).glob("*.jpg"))[:limit] if folder.is_dir() else []
    if paths:
        return [p.read_bytes() for p in paths]
    from tests.pressure.hostile_corpus import encode, face_like

    return [encode(face_like(256, seed=i), "JPEG", quality=90) for i in range(limit)]


def upload(image: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg") -> dict:
    return {"image": (filename, io.BytesIO(image), content_type)}


def error_code(reply: httpx.Response) -> str:
    try:
        return str(reply.json().get("error", {}).get("code", ""))
    except ValueError:
        return ""
