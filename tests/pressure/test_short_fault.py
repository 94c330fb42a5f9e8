"""The short fault scenario that runs in CI (bench/faults.py runs the full set): history is killed with
SIGKILL while users are analysing photos, then restarted. Every analysis the gateway acknowledged must
end up in history's database exactly once, errors during the outage must be clean and quick, and writing
must work again within seconds of the restart."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.pressure.api import aregister_and_login, sample_photos
from tests.pressure.ledger import Ledger, verify, wait_outbox_drained, write_analyses

WRITERS = 4
CLEAN_FAILURES = {503, 504}


async def test_history_killed_under_load_loses_and_duplicates_nothing(stack, versions):
    photos = sample_photos(8)
    ledger = Ledger()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=30) as client:
        accounts = [
            await aregister_and_login(client, stack.http_url, "fault", versions) for _ in range(WRITERS)
        ]
        writers = [asyncio.create_task(write_analyses(client, a, photos, ledger, stop)) for a in accounts]
        await asyncio.sleep(2)
        stack.kill("history")  # SIGKILL: no drain, connections cut mid-call
        killed_at = time.monotonic()
        await asyncio.sleep(3)
        restart_s = await asyncio.to_thread(stack.start, "history")
        restarted_at = time.monotonic()
        await asyncio.sleep(4)
        stop.set()
        await asyncio.gather(*writers)
    drain_s = await wait_outbox_drained(stack.outbox_url, timeout_s=60)
    verdict = await verify(ledger, stack.history_database_url)

    during = [a for a in ledger.attempts if killed_at <= a.started < restarted_at]
    after = [a for a in ledger.attempts if a.started >= restarted_at + 2]
    print(
        f"\nkill -9 history: {ledger.statuses()}; restart {restart_s:.1f}s; "
        f"outbox drained {drain_s:.1f}s later; "
        f"{verdict.line()}; during the outage {len(during)} attempts, "
        f"{sum(a.status == 200 for a in during)} acknowledged (queued in the outbox)"
    )
    assert verdict.ok, verdict
    assert verdict.acknowledged > 0
    unclean = [
        (a.status, round(a.seconds, 1)) for a in ledger.attempts if a.status not in (200, *CLEAN_FAILURES)
    ]
    assert not unclean, unclean
    assert ledger.slowest_error_s() < 10, f"an error took {ledger.slowest_error_s():.1f}s"
    assert after and all(a.status == 200 for a in after), [a.status for a in after]
