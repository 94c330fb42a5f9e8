"""Acknowledged-write bookkeeping for fault scenarios.

Analysis writers post photos through the gateway with their own idempotency keys and note every answer.
Afterwards `verify` reads the history database directly: every acknowledged analysis (HTTP 200) must be
there exactly once (under its owner and key, with the id the gateway returned when it returned one), and
no key may appear twice. Unacknowledged attempts (errors, timeouts) may or may not have been stored (the
client cannot know, and would retry with the same key), so they are reported, not judged.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from dataclasses import dataclass, field

import httpx
from sqlalchemy import text

from services.common import db
from tests.pressure.api import Account


@dataclass
class Attempt:
    user_id: str
    request_id: str
    status: int | str  # HTTP status, or the exception name
    seconds: float
    started: float
    analysis_id: str = ""
    recorded: bool = True


@dataclass
class Ledger:
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acknowledged(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status == 200]

    def statuses(self) -> dict:
        return dict(collections.Counter(str(a.status) for a in self.attempts))

    def slowest_error_s(self) -> float:
        return max((a.seconds for a in self.attempts if a.status != 200), default=0.0)


async def write_analyses(
    client: httpx.AsyncClient,
    account: Account,
    photos: list[bytes],
    ledger: Ledger,
    stop: asyncio.Event,
    timeout_s: float = 20.0,
    pause_s: float = 0.0,
) -> None:
    """Post analyses for `account` until `stop` is set; every answer goes into `ledger`."""
    i = 0
    while not stop.is_set():
        request_id = f"ledger-{uuid.uuid4().hex}"
        photo = photos[i % len(photos)]
        i += 1
        started = time.monotonic()
        attempt = Attempt(account.user_id, request_id, "?", 0.0, started)
        try:
            reply = await client.post(
                "/api/v1/analyses",
                files={"image": ("photo.jpg", photo, "image/jpeg")},
                data={"request_id": request_id, "source": "SOURCE_CAMERA"},
                headers=account.headers,
                timeout=timeout_s,
            )
            attempt.status = reply.status_code
            if reply.status_code == 200:
                body = reply.json()
                attempt.analysis_id = body.get("analysis_id", "")
                attempt.recorded = bool(body.get("recorded", False))
        except httpx.HTTPError as exc:
            attempt.status = type(exc).__name__
        attempt.seconds = time.monotonic() - started
        ledger.attempts.append(attempt)
        if attempt.status != 200:
            await asyncio.sleep(0.2)  # a failing backend: do not spin
        elif pause_s:
            await asyncio.sleep(pause_s)


async def outbox_pending(outbox_url: str) -> tuple[int, int]:
    """(pending, dead) entries in the gateway's outbox."""
    engine = db.create_engine(outbox_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT dead, COUNT(*) FROM gateway_outbox GROUP BY dead"))).all()
    finally:
        await engine.dispose()
    counts = {bool(dead): n for dead, n in rows}
    return counts.get(False, 0), counts.get(True, 0)


async def wait_outbox_drained(outbox_url: str, timeout_s: float = 60.0) -> float:
    """Seconds until the outbox has no pending entries (raises TimeoutError)."""
    started = time.monotonic()
    while True:
        pending, _dead = await outbox_pending(outbox_url)
        if pending == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{pending} outbox entries still pending after {timeout_s:.0f}s")
        await asyncio.sleep(0.5)


async def stored_analyses(history_url: str, user_ids: set[str]) -> list[tuple[str, str, str]]:
    """(user_id, request_id, id) of every stored analysis of `user_ids`, read from history's database."""
    engine = db.create_engine(history_url)
    rows: list[tuple[str, str, str]] = []
    try:
        async with engine.connect() as conn:
            ids = sorted(user_ids)
            for start in range(0, len(ids), 200):
                chunk = ids[start : start + 200]
                params = {f"u{i}": uid for i, uid in enumerate(chunk)}
                placeholders = ", ".join(f":u{i}" for i in range(len(chunk)))
                result = await conn.execute(
                    text(
                        "SELECT user_id, request_id, id FROM history_analyses"
                        f" WHERE user_id IN ({placeholders})"
                    ),
                    params,
                )
                rows.extend((r[0], r[1], r[2]) for r in result.all())
    finally:
        await engine.dispose()
    return rows


@dataclass
class Verdict:
    acknowledged: int
    stored: int
    lost: list[str]
    duplicated: list[str]
    id_mismatch: list[str]
    unacknowledged_stored: int
    unacknowledged: int

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.id_mismatch)

    def line(self) -> str:
        return (
            f"acknowledged {self.acknowledged}, stored {self.stored}, lost {len(self.lost)}, "
            f"duplicated {len(self.duplicated)}, id mismatches {len(self.id_mismatch)}; "
            f"unacknowledged attempts {self.unacknowledged} (of which stored {self.unacknowledged_stored})"
        )


async def verify(ledger: Ledger, history_url: str) -> Verdict:
    user_ids = {a.user_id for a in ledger.attempts}
    rows = await stored_analyses(history_url, user_ids)
    keys = collections.Counter((user, request) for user, request, _ in rows)
    ids = {(user, request): analysis_id for user, request, analysis_id in rows}
    acked = ledger.acknowledged
    lost = [a.request_id for a in acked if (a.user_id, a.request_id) not in keys]
    duplicated = [f"{user}/{request}" for (user, request), n in keys.items() if n > 1]
    id_mismatch = [
        a.request_id
        for a in acked
        if a.analysis_id and ids.get((a.user_id, a.request_id), a.analysis_id) != a.analysis_id
    ]
    ledger_keys = {(a.user_id, a.request_id) for a in ledger.attempts if a.request_id.startswith("ledger-")}
    unacked = [a for a in ledger.attempts if a.status != 200]
    unacked_stored = sum(1 for a in unacked if (a.user_id, a.request_id) in keys)
    stored = sum(1 for key in keys if key in ledger_keys)
    return Verdict(len(acked), stored, lost, duplicated, id_mismatch, unacked_stored, len(unacked))
