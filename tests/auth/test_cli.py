"""Operator commands, run in-process against each real database (the process test runs them for real)."""

from __future__ import annotations

import asyncio
import io

import pytest

from services.auth.cli import cli
from services.auth.storage import Storage, User
from services.common import db
from tests.auth.conftest import FAST_ARGON2, PASSWORD


@pytest.fixture
def env(database_url, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("AUTH_DATABASE_URL", database_url)
    monkeypatch.setenv("AUTH_DEV_SIGNING_KEY_FILE", str(tmp_path / "key.pem"))
    for name, value in FAST_ARGON2.items():
        monkeypatch.setenv(f"AUTH_{name.upper()}", str(value))
    return database_url


def users(database_url: str) -> list[User]:
    async def go() -> list[User]:
        storage = Storage(db.create_engine(database_url))
        try:
            async with storage.transaction() as session:
                from sqlalchemy import select

                return list((await session.execute(select(User))).scalars())
        finally:
            await storage.close()

    return asyncio.run(go())


def create(monkeypatch, *args: str, password: str = PASSWORD) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return cli(["create-counselor", *args, "--password-stdin"])


def test_migrate_then_create_counselor(env, monkeypatch, capsys):
    assert cli(["migrate"]) == 0
    assert cli(["migrate"]) == 0  # idempotent
    assert users(env) == []

    code = create(
        monkeypatch,
        "--username",
        "DrWu",
        "--organization",
        " Harbour Clinic ",
        "--phone",
        "+86 138 0013 8000",
        "--display-name",
        "Dr. Wu",
    )
    assert code == 0
    assert "created counsellor DrWu (Harbour Clinic)" in capsys.readouterr().out
    [counselor] = users(env)
    assert (counselor.role, counselor.organization, counselor.phone) == (
        "counselor",
        "Harbour Clinic",
        "+8613800138000",
    )
    assert counselor.password_hash.startswith("$argon2id$")


def test_create_counselor_refuses_bad_input(env, monkeypatch, capsys):
    base = ["--organization", "Clinic", "--phone", "+8613800138000"]
    assert create(monkeypatch, "--username", "drlee", *base, password="password") == 2
    assert "password:" in capsys.readouterr().err
    assert create(monkeypatch, "--username", "dr lee", *base) == 2
    assert "username:" in capsys.readouterr().err
    assert (
        create(monkeypatch, "--username", "drlee", "--organization", "  ", "--phone", "+8613800138000") == 2
    )
    assert "organization:" in capsys.readouterr().err
    assert create(monkeypatch, "--username", "drlee", "--organization", "Clinic", "--phone", "12345") == 2
    assert "phone:" in capsys.readouterr().err
    assert create(monkeypatch, "--username", "drlee", *base) == 0
    assert create(monkeypatch, "--username", "DRLEE", *base) == 3
    assert "already taken" in capsys.readouterr().err
    assert [u.username for u in users(env)] == ["drlee"]


def test_generate_key(tmp_path, capsys):
    from services.common.keys import key_id, public_pem_of

    path = tmp_path / "signing.pem"
    assert cli(["generate-key", str(path)]) == 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert key_id(public_pem_of(path.read_text())) in capsys.readouterr().out
    with pytest.raises(FileExistsError):  # never overwrites a key
        cli(["generate-key", str(path)])
