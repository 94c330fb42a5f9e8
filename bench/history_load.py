"""History service benchmark: 1,000,000 analyses for 1,000 users in PostgreSQL, then
p50/p99 latency of ListAnalyses (a page of 50) and of a one-year GetSummary, measured
at a gRPC client of the real service process.

    nice -n 10 .venv/bin/python bench/history_load.py            # the documented run
    .venv/bin/python bench/history_load.py --analyses 50000 --requests 200   # quick look

It creates a throwaway database on the PostgreSQL server (TEST_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/test), applies the service's migrations, bulk-loads
with COPY, starts `python -m services.history` against it, measures, and drops the database.
Targets: page under 20 ms, summary under 150 ms (p99 reported next to p50).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import asyncpg  # noqa: E402
import grpc  # noqa: E402
import jwt  # noqa: E402
import psutil  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from emotion.v1 import common_pb2, history_pb2, history_pb2_grpc  # noqa: E402
from services.common import db  # noqa: E402
from services.common.keys import generate_private_pem, key_id, public_pem_of  # noqa: E402
from services.history.server import MIGRATIONS, VERSION_TABLE  # noqa: E402
from services.history.storage import SCORE_NAMES, Face, encode_faces  # noqa: E402

COLUMNS = (
    "id",
    "user_id",
    "request_id",
    "captured_at",
    "created_at",
    "source",
    "dominant",
    *(f"score_{name}" for name in SCORE_NAMES),
    "face_count",
    "faces_json",
    "model_version",
)
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Kolkata", "UTC")


def user_ids(users: int) -> list[str]:
    return [f"bench-user-{i:05d}" for i in range(users)]


def random_scores(rng: random.Random) -> tuple[float, ...]:
    raw = [rng.gammavariate(0.6, 1.0) for _ in SCORE_NAMES]
    total = sum(raw) or 1.0
    return tuple(round(r / total, 6) for r in raw)


def make_rows(user_id: str, count: int, now: datetime, rng: random.Random) -> list[tuple]:
    """`count` analyses spread uniformly over the year before `now`, 1-3 faces each."""
    rows = []
    for _ in range(count):
        captured = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
        faces = []
        for i in range(rng.choice((1, 1, 1, 2, 3))):
            scores = random_scores(rng)
            dominant = max(range(7), key=scores.__getitem__) + 1
            faces.append(Face((40 * i, 30, 96, 96), scores, dominant, "", 0.97, 0))
        overall = tuple(sum(col) / len(faces) for col in zip(*(f.scores for f in faces), strict=True))
        rows.append(
            (
                str(uuid.uuid4()),
                user_id,
                uuid.uuid4().hex,
                captured,
                captured + timedelta(seconds=1),
                rng.choice((1, 2, 3)),
                max(range(7), key=overall.__getitem__) + 1,
                *overall,
                len(faces),
                encode_faces(faces),
                "bench-1",
            )
        )
    return rows


async def load(url: str, users: list[str], per_user: int, now: datetime) -> float:
    """COPY the analyses in; returns seconds taken (generation included)."""
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, database=parsed.database
    )
    rng = random.Random(42)
    started = time.perf_counter()
    try:
        batch: list[tuple] = []
        for index, user_id in enumerate(users):
            batch.extend(make_rows(user_id, per_user, now, rng))
            if len(batch) >= 50_000 or index == len(users) - 1:
                await conn.copy_records_to_table("history_analyses", records=batch, columns=COLUMNS)
                batch = []
                done = (index + 1) * per_user
                print(f"  loaded {done:,} analyses ({time.perf_counter() - started:.0f} s)", flush=True)
        await conn.execute("VACUUM ANALYZE history_analyses")
    finally:
        await conn.close()
    return time.perf_counter() - started


# The same data shape generated inside PostgreSQL (C speed, no client round trips): one face per
# analysis, skewed random scores normalised to sum to 1, users interleaved as real traffic would be.
GENERATE_SQL = """
INSERT INTO history_analyses (id, user_id, request_id, captured_at, created_at, source, dominant,
    score_angry, score_disgust, score_fear, score_happy, score_sad, score_surprise, score_neutral,
    face_count, faces_json, model_version)
SELECT gen_random_uuid()::text,
       'bench-user-' || lpad(((g - 1) % $2)::text, 5, '0'),
       md5(g::text),
       t, t + interval '1 second',
       1 + g % 3,
       d,
       a / total, b / total, c / total, e / total, f / total, h / total, k / total,
       1,
       json_build_array(json_build_array(40, 30, 96, 96, json_build_array(
           round((a / total)::numeric, 6), round((b / total)::numeric, 6), round((c / total)::numeric, 6),
           round((e / total)::numeric, 6), round((f / total)::numeric, 6), round((h / total)::numeric, 6),
           round((k / total)::numeric, 6)), d, '', 0.97, 0))::text,
       'bench-1'
FROM (
    SELECT g, random() ^ 3 AS a, random() ^ 3 AS b, random() ^ 3 AS c, random() ^ 3 AS e,
           random() ^ 3 AS f, random() ^ 3 AS h, random() ^ 3 AS k,
           $3::timestamptz - random() * interval '365 days' AS t
    FROM generate_series($1::int, $4::int) AS g
) AS r,
LATERAL (
    SELECT a + b + c + e + f + h + k AS total,
           CASE greatest(a, b, c, e, f, h, k)
               WHEN a THEN 1 WHEN b THEN 2 WHEN c THEN 3 WHEN e THEN 4 WHEN f THEN 5 WHEN h THEN 6 ELSE 7
           END AS d
) AS m
"""


async def load_in_database(url: str, analyses: int, users: int, now: datetime) -> float:
    """Generate the analyses with INSERT ... SELECT in chunks; returns seconds taken."""
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, database=parsed.database
    )
    started = time.perf_counter()
    try:
        chunk = 100_000
        for first in range(1, analyses + 1, chunk):
            last = min(analyses, first + chunk - 1)
            await conn.execute(GENERATE_SQL, first, users, now, last)
            print(f"  loaded {last:,} analyses ({time.perf_counter() - started:.0f} s)", flush=True)
        await conn.execute("VACUUM ANALYZE history_analyses")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def admin_sql(admin_url: str, statement: str) -> None:
    parsed = make_url(admin_url)
    conn = await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, database=parsed.database
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def latest_capture(url: str) -> datetime:
    """The `now` a kept database was loaded with (its newest capture, rounded up to the second)."""
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, database=parsed.database
    )
    try:
        latest = await conn.fetchval("SELECT max(captured_at) FROM history_analyses")
    finally:
        await conn.close()
    return latest.replace(microsecond=0) + timedelta(seconds=1)


def mint(private_pem: str, public_pem: str, sub: str) -> str:
    now = int(time.time())
    claims = {
        "iss": "emotion-auth",
        "aud": "emotion",
        "sub": sub,
        "role": "user",
        "username": sub,
        "typ": "access",
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode(claims, private_pem, algorithm="EdDSA", headers={"kid": key_id(public_pem)})


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(url: str, port: int, tmp: Path) -> subprocess.Popen:
    """`python -m services.history` against the benchmark database, logging to tmp/history.log."""
    env = {
        **os.environ,
        "HISTORY_PORT": str(port),
        "HISTORY_METRICS_PORT": "-1",
        "HISTORY_DATABASE_URL": url,
        "HISTORY_JWT_PUBLIC_KEY_FILE": str(tmp / "public.pem"),
        "HISTORY_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }
    with open(tmp / "history.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.history"], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
        )


def stop_service(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


async def wait_serving(port: int, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("history process exited before serving")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("history service not serving")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def measure(name: str, call, requests: int, concurrency: int, server: psutil.Process) -> dict:
    """Run `call(i)` `requests` times with `concurrency` callers; latency in ms per call, and the
    CPU time the service process spent per call (independent of how busy the machine is)."""
    latencies: list[float] = []
    cpu_before = sum(server.cpu_times()[:2])
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            latencies.append((time.perf_counter() - started) * 1000)

    wall = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - wall
    cpu_ms = (sum(server.cpu_times()[:2]) - cpu_before) * 1000 / max(1, len(latencies))
    result = {
        "cpu_ms": cpu_ms,
        "name": name,
        "n": len(latencies),
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "rps": len(latencies) / wall,
    }
    print(
        f"  {name:<44} n={result['n']:<5} p50={result['p50']:7.2f} ms  p99={result['p99']:7.2f} ms  "
        f"max={result['max']:7.2f} ms  {result['rps']:5.0f} req/s  service CPU {cpu_ms:5.2f} ms/req",
        flush=True,
    )
    return result


async def run_queries(
    port: int, users: list[str], tokens: dict[str, str], args, now: datetime, server: psutil.Process
) -> None:
    rng = random.Random(7)
    year = common_pb2.TimeRange()
    year.start_time.FromDatetime(now - timedelta(days=365))
    year.end_time.FromDatetime(now)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = history_pb2_grpc.HistoryServiceStub(channel)

        def meta(user: str):
            return (("authorization", f"Bearer {tokens[user]}"),)

        async def first_page(_: int) -> None:
            user = rng.choice(users)
            reply = await stub.ListAnalyses(
                history_pb2.ListAnalysesRequest(page_size=50), metadata=meta(user)
            )
            assert len(reply.analyses) == 50

        # Page tokens from the middle of each user's history, to measure deep pages too.
        deep_tokens: dict[str, str] = {}
        for user in users[: min(len(users), 50)]:
            token = ""
            for _ in range(rng.randint(1, max(1, args.analyses // len(users) // 50 - 1))):
                reply = await stub.ListAnalyses(
                    history_pb2.ListAnalysesRequest(page_size=50, page_token=token), metadata=meta(user)
                )
                token = reply.next_page_token
            deep_tokens[user] = token

        async def deep_page(_: int) -> None:
            user = rng.choice(list(deep_tokens))
            await stub.ListAnalyses(
                history_pb2.ListAnalysesRequest(page_size=50, page_token=deep_tokens[user]),
                metadata=meta(user),
            )

        def summary_call(bucket: int):
            async def call(_: int) -> None:
                user = rng.choice(users)
                reply = await stub.GetSummary(
                    history_pb2.GetSummaryRequest(
                        time_range=year, time_zone=rng.choice(ZONES), bucket_size=bucket
                    ),
                    metadata=meta(user),
                )
                assert reply.total_analyses > 0

            return call

        print("warming up", flush=True)
        await measure("warm-up (ListAnalyses)", first_page, 100, 1, server)
        await measure("warm-up (GetSummary)", summary_call(history_pb2.BUCKET_SIZE_DAY), 50, 1, server)
        print(f"measuring ({args.requests} requests each, concurrency {args.concurrency})", flush=True)
        await measure("ListAnalyses, first page of 50", first_page, args.requests, args.concurrency, server)
        await measure(
            "ListAnalyses, deep page of 50 (page token)", deep_page, args.requests, args.concurrency, server
        )
        await measure(
            "GetSummary, one year, daily buckets",
            summary_call(history_pb2.BUCKET_SIZE_DAY),
            args.requests,
            args.concurrency,
            server,
        )
        await measure(
            "GetSummary, one year, weekly buckets",
            summary_call(history_pb2.BUCKET_SIZE_WEEK),
            args.requests,
            args.concurrency,
            server,
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--analyses", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=1_000, help="measured calls per query kind")
    parser.add_argument("--concurrency", type=int, default=1, help="concurrent callers")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--loader",
        choices=("sql", "copy"),
        default="sql",
        help="sql: generate rows inside PostgreSQL (fast); copy: generate in Python and COPY them in",
    )
    parser.add_argument(
        "--reuse", default="", help="measure an already loaded (kept) database; implies --keep"
    )
    args = parser.parse_args()

    users = user_ids(args.users)
    now = datetime.now(UTC).replace(microsecond=0)
    name = args.reuse or f"bench_history_{uuid.uuid4().hex[:8]}"
    args.keep = args.keep or bool(args.reuse)
    url = make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    if args.reuse:
        now = await latest_capture(url)
    else:
        await admin_sql(args.admin_url, f"CREATE DATABASE {name}")
    proc = None
    try:
        if not args.reuse:
            print(f"database {name}: applying migrations", flush=True)
            await db.upgrade(url, MIGRATIONS, VERSION_TABLE)
            print(f"loading {args.analyses:,} analyses for {args.users:,} users ({args.loader})", flush=True)
            if args.loader == "sql":
                seconds = await load_in_database(url, args.analyses, args.users, now)
            else:
                seconds = await load(url, users, args.analyses // args.users, now)
            print(f"loaded in {seconds:.0f} s ({args.analyses / seconds:,.0f} rows/s)", flush=True)

        private_pem = generate_private_pem()
        public_pem = public_pem_of(private_pem)
        tmp = Path(tempfile.mkdtemp(prefix="history-bench-"))
        (tmp / "public.pem").write_text(public_pem)
        port = free_port()
        proc = start_service(url, port, tmp)
        await wait_serving(port, proc)
        tokens = {user: mint(private_pem, public_pem, user) for user in users}
        await run_queries(port, users, tokens, args, now, psutil.Process(proc.pid))
    finally:
        if proc is not None:
            stop_service(proc)
        if args.keep:
            print(f"kept database {name}")
        else:
            await admin_sql(args.admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main())
