"""Faults under load, each checked against the history database afterwards.

    nice -n 10 .venv/bin/python bench/faults.py                 # every scenario (about 6 minutes)
    .venv/bin/python bench/faults.py --only kill-history,proxy-delay
    .venv/bin/python bench/faults.py --list

Writers (signed-in users posting photos through the gateway, each with its own idempotency key) and
readers (history list and login) run through every scenario. A scenario is: steady load, the fault for a
while, the fault removed, load again. Afterwards the gateway's outbox must drain and the ledger
(tests/pressure/ledger.py) is checked against history's table: every acknowledged analysis stored once,
none lost, none duplicated. Also reported: what clients saw during the fault (status codes and the
slowest error: errors must come quickly, within the deadlines) and the recovery time (from the end of the
fault until every call succeeds again).

Scenarios: kill -9 and restart auth, history, inference and the gateway in turn; restart PostgreSQL
(history on PostgreSQL) and MariaDB (history on MariaDB); delay (0.5 s and 3 s), black-hole and reset
the traffic between the gateway and history through a TCP proxy on loopback (bench/tcp_proxy.py).

Restarting the database servers disturbs everything else using them on this machine: never in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

from tests.pressure.api import Account, aregister_and_login, sample_photos  # noqa: E402
from tests.pressure.harness import PressureStack, pressure_stack  # noqa: E402
from tests.pressure.ledger import (  # noqa: E402
    Ledger,
    outbox_pending,
    verify,
    wait_outbox_drained,
    write_analyses,
)

WRITERS = 6
READERS = 2
STEADY_S = 5.0
FAULT_S = 8.0
AFTER_S = 10.0


@dataclass
class Reads:
    samples: list[tuple[float, float, str]] = field(default_factory=list)  # (started, seconds, status)


async def read_loop(client: httpx.AsyncClient, account: Account, reads: Reads, stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        started = time.monotonic()
        try:
            if i % 5 == 0:
                reply = await client.post(
                    "/api/v1/auth/login", json={"username": account.username, "password": account.password}
                )
            else:
                reply = await client.get(
                    "/api/v1/analyses", params={"page_size": 10}, headers=account.headers
                )
            status = str(reply.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        reads.samples.append((started, time.monotonic() - started, status))
        if status != "200":
            await asyncio.sleep(0.2)


# -- faults -------------------------------------------------------------------------------------------


def db_server(kind: str, action: str) -> None:
    if kind == "postgresql":
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True)
    elif kind == "mariadb":
        if action == "stop":
            subprocess.run(
                ["start-stop-daemon", "--stop", "--oknodo", "--retry", "30", "--exec", "/usr/sbin/mariadbd"],
                check=True,
            )
        else:
            subprocess.run(
                ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"],
                check=True,
            )
            wait_mariadb()
    else:
        raise ValueError(kind)


def wait_mariadb(timeout_s: float = 60) -> None:
    import pymysql

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pymysql.connect(host="127.0.0.1", user="root", password="", connect_timeout=2).close()
            return
        except pymysql.MySQLError:
            time.sleep(0.5)
    raise TimeoutError("MariaDB did not come back")


@dataclass
class Scenario:
    name: str
    database: str  # which history database the scenario needs
    start: object  # callable(stack) -> None, the fault begins
    end: object  # callable(stack) -> float | None, the fault ends; may return a restart time
    fault_s: float = FAULT_S


def kill(name):
    return Scenario(f"kill-{name}", "postgresql", lambda s: s.kill(name), lambda s: s.start(name))


def proxy(name, command):
    return Scenario(name, "postgresql", lambda s: s.proxy.set(command), lambda s: s.proxy.set("pass"))


def db_restart(kind):
    return Scenario(
        f"restart-{kind}",
        kind,
        lambda s: db_server(kind, "stop"),
        lambda s: db_server(kind, "start"),
        fault_s=6.0,
    )


SCENARIOS = [
    kill("auth"),
    kill("history"),
    kill("inference"),
    kill("gateway"),
    proxy("proxy-delay-0.5s", "delay 0.5"),
    proxy("proxy-delay-3s", "delay 3"),
    proxy("proxy-blackhole", "blackhole"),
    proxy("proxy-reset", "reset"),
    db_restart("postgresql"),
    db_restart("mariadb"),
]


# -- one scenario -------------------------------------------------------------------------------------


async def run_scenario(stack: PressureStack, scenario: Scenario, photos) -> dict:
    ledger, reads, stop = Ledger(), Reads(), asyncio.Event()
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=20) as client:
        body = (await client.get("/api/v1/agreements")).raise_for_status().json()
        versions = (body["privacy_policy"]["version"], body["user_agreement"]["version"])
        accounts = [
            await aregister_and_login(client, stack.http_url, "fault", versions)
            for _ in range(WRITERS + READERS)
        ]
        tasks = [
            asyncio.create_task(write_analyses(client, a, photos, ledger, stop, timeout_s=20))
            for a in accounts[:WRITERS]
        ]
        tasks += [asyncio.create_task(read_loop(client, a, reads, stop)) for a in accounts[WRITERS:]]
        await asyncio.sleep(STEADY_S)
        fault_start = time.monotonic()
        await asyncio.to_thread(scenario.start, stack)
        await asyncio.sleep(scenario.fault_s)
        restart_s = await asyncio.to_thread(scenario.end, stack)
        fault_end = time.monotonic()
        await asyncio.sleep(AFTER_S)
        stop.set()
        await asyncio.gather(*tasks)
    try:
        drain_s = await wait_outbox_drained(stack.outbox_url, timeout_s=90)
    except TimeoutError as exc:
        drain_s = f"not drained: {exc}"
    _pending, dead = await outbox_pending(stack.outbox_url)
    verdict = await verify(ledger, stack.history_database_url)

    def during(samples):
        return collections.Counter(
            status for started, _s, status in samples if fault_start <= started < fault_end
        )

    writes = [(a.started, a.seconds, str(a.status)) for a in ledger.attempts]
    everything = writes + reads.samples
    failed_after = [
        started + seconds
        for started, seconds, status in everything
        if status != "200" and started >= fault_end
    ]
    recovery_s = max(failed_after) - fault_end if failed_after else 0.0
    slowest_error = max((seconds for _st, seconds, status in everything if status != "200"), default=0.0)
    row = {
        "scenario": scenario.name,
        "database": scenario.database,
        "fault_s": round(fault_end - fault_start, 1),
        "restart_s": round(restart_s, 1) if isinstance(restart_s, float) else None,
        "writes": ledger.statuses(),
        "writes_during_fault": dict(during(writes)),
        "reads_during_fault": dict(during(reads.samples)),
        "queued_in_outbox": sum(1 for a in ledger.acknowledged if not a.recorded),
        "slowest_error_s": round(slowest_error, 2),
        "recovery_s": round(recovery_s, 1),
        "outbox_drain_s": round(drain_s, 1) if isinstance(drain_s, float) else drain_s,
        "outbox_dead": dead,
        "acknowledged": verdict.acknowledged,
        "lost": len(verdict.lost),
        "duplicated": len(verdict.duplicated),
        "id_mismatch": len(verdict.id_mismatch),
        "unacknowledged": verdict.unacknowledged,
        "unacknowledged_stored": verdict.unacknowledged_stored,
        "pass": verdict.ok and dead == 0 and isinstance(drain_s, float),
    }
    print(
        f"{row['scenario']:<20} {'PASS' if row['pass'] else 'FAIL'}  acked {row['acknowledged']:>4}"
        f" lost {row['lost']}"
        f" dup {row['duplicated']} (outbox {row['queued_in_outbox']}, drained {row['outbox_drain_s']}s)  "
        f"during fault: writes {row['writes_during_fault']} reads {row['reads_during_fault']}  "
        f"slowest error {row['slowest_error_s']}s  recovery {row['recovery_s']}s"
        + (f"  restart {row['restart_s']}s" if row["restart_s"] is not None else ""),
        flush=True,
    )
    if verdict.lost:
        print(f"   lost request ids: {verdict.lost[:10]}")
    return row


async def run_group(stack: PressureStack, group: list[Scenario], photos) -> list[dict]:
    return [await run_scenario(stack, scenario, photos) for scenario in group]


def run_all(args) -> int:
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    photos = sample_photos(16)
    rows = []
    for database in ("postgresql", "mariadb"):
        group = [s for s in chosen if s.database == database]
        if not group:
            continue
        directory = Path(tempfile.mkdtemp(prefix=f"bench-faults-{database}-"))
        print(f"\n== history on {database}; stack in {directory}", flush=True)
        # The stack is set up and torn down outside the event loop (database creation runs its own).
        with pressure_stack(directory, history_db=database, proxy_history=True, rate_limits=False) as stack:
            rows += asyncio.run(run_group(stack, group, photos))
    print("\nscenario             result  acked  lost  dup  outbox  slowest error  recovery")
    for r in rows:
        print(
            f"{r['scenario']:<20} {'PASS' if r['pass'] else 'FAIL':<6} {r['acknowledged']:>6} {r['lost']:>5} "
            f"{r['duplicated']:>4} {r['queued_in_outbox']:>7} {r['slowest_error_s']:>12}s"
            f" {r['recovery_s']:>8}s"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    if args.markdown:
        lines = [
            "| scenario | history DB | result | fault s | restart s | acknowledged | lost | duplicated |"
            " via outbox |"
            " outbox drained s | writes during fault | reads during fault | slowest error s | recovery s |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {r['scenario']} | {r['database']} | {'PASS' if r['pass'] else 'FAIL'} | "
                f"{r['fault_s']} | "
                f"{r['restart_s'] if r['restart_s'] is not None else '-'} | {r['acknowledged']} | "
                f"{r['lost']} | {r['duplicated']} | {r['queued_in_outbox']} | {r['outbox_drain_s']} | "
                f"{r['writes_during_fault']} | "
                f"{r['reads_during_fault']} | {r['slowest_error_s']} | {r['recovery_s']} |"
            )
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 0 if all(r["pass"] for r in rows) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    parser.add_argument("--markdown", default="", help="also write the figures as a Markdown table here")
    args = parser.parse_args()
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:<20} history on {s.database}")
        return
    args.only = {x.strip() for x in args.only.split(",") if x.strip()}
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(run_all(args))


if __name__ == "__main__":
    main()
