"""Password hashing (Argon2id) and the password rules.

Hashing runs in worker threads (argon2-cffi releases the GIL), at most
`max_concurrent` at once, so a login burst can neither stall the event loop
nor allocate memory_kib per in-flight request without bound.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256  # Argon2 takes any length; this only bounds request size


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def password_problem(password: str, username: str) -> str | None:
    """Why `password` is not acceptable for `username`, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    if username and password.casefold() == username.casefold():
        return "must not be the username"
    if password.lower() in common_passwords():
        return "is too common; choose a less guessable password"
    return None


class Passwords:
    """Argon2id hashing and constant-time verification, off the event loop."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int, max_concurrent: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_concurrent), thread_name_prefix="argon2")
        # Verified when the username is unknown, so that answer costs as much as a wrong password.
        self._dummy_hash = self._hasher.hash("dummy password for unknown users")

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if `password` matches; with no hash (unknown user) burns the same time and says False."""
        if password_hash is None:
            await self._run(self._verify_sync, self._dummy_hash, password)
            return False
        return await self._run(self._verify_sync, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the stored hash used other parameters (they were raised since)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
