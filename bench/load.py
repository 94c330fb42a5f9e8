"""Load on the whole stack: mixed user traffic through the gateway and direct inference, at several
concurrency levels; an overload phase; and a soak mode that watches memory and file descriptors.

    nice -n 10 .venv/bin/python bench/load.py                       # 1, 8, 32, 64 clients, 20 s each
    .venv/bin/python bench/load.py --levels 1,8 --duration 5        # quick look
    .venv/bin/python bench/load.py --overload                       # past capacity: shedding and recovery
    .venv/bin/python bench/load.py --soak 10                        # 16 clients for 10 minutes, RSS + fds
    .venv/bin/python bench/load.py --history-db postgresql          # history on the real PostgreSQL

It starts its own stack (tests/pressure/harness.py: four real service processes on free ports, SQLite
unless told otherwise, production Argon2 cost, the gateway's rate limits off so the figures measure the
services, not the limiter; --overload turns them back on for its gateway part). Each client is one
signed-in user. Mixed traffic per client: 30% analyze a real photo (POST /api/v1/analyses: inference +
history write), 30% list history, 25% summary, 15% login. The load generator runs on the same machine
(2 cores shared with the services), so the figures are a floor for a dedicated host.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import grpc  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from emotion.v1 import inference_pb2, inference_pb2_grpc  # noqa: E402
from tests.pressure.api import Account, aregister_and_login, sample_photos  # noqa: E402
from tests.pressure.harness import SERVICES, PressureStack, pressure_stack  # noqa: E402

MIX = (("analyze", 0.30), ("list", 0.30), ("summary", 0.25), ("login", 0.15))
HTTP_TIMEOUT_S = 30.0


@dataclass
class Sample:
    op: str
    status: str  # "200", "429", "DEADLINE_EXCEEDED", "ReadTimeout", ...
    seconds: float
    ok: bool


@dataclass
class Run:
    name: str
    clients: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)

    def summary(self, op: str | None = None) -> dict:
        chosen = [s for s in self.samples if op is None or s.op == op]
        latencies = np.array([s.seconds for s in chosen if s.ok]) * 1000
        errors = collections.Counter(s.status for s in chosen if not s.ok)
        pct = np.percentile(latencies, [50, 90, 99]) if len(latencies) else [float("nan")] * 3
        return {
            "scenario": self.name,
            "op": op or "all",
            "clients": self.clients,
            "requests": len(chosen),
            "ok": int(len(latencies)),
            "throughput_rps": round(len(latencies) / self.seconds, 1),
            "p50_ms": round(float(pct[0]), 1),
            "p90_ms": round(float(pct[1]), 1),
            "p99_ms": round(float(pct[2]), 1),
            "errors": sum(errors.values()),
            "error_codes": dict(errors),
        }


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'scenario':<18}{'op':<9}{'clients':>8}{'reqs':>7}{'ok/s':>8}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        "  errors"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        errors = f"{r['errors']} {r['error_codes']}" if r["errors"] else "0"
        print(
            f"{r['scenario']:<18}{r['op']:<9}{r['clients']:>8}{r['requests']:>7}{r['throughput_rps']:>8}"
            f"{r['p50_ms']:>9}{r['p90_ms']:>9}{r['p99_ms']:>9}  {errors}"
        )
    sys.stdout.flush()


def markdown(results: dict) -> str:
    """The figures as Markdown tables, for docs/BENCHMARKS.md."""
    out = [f"Machine: {results['machine']}. Started {results['started']}.", ""]

    def table(rows: list[dict], extra: tuple[str, ...] = ()) -> None:
        out.append(
            "| scenario | op | clients | requests | ok/s | p50 ms | p90 ms | p99 ms | errors |"
            + "".join(f" {e} |" for e in extra)
        )
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---|" + "---:|" * len(extra))
        for r in rows:
            errors = f"{r['errors']} {r['error_codes']}" if r["errors"] else "0"
            out.append(
                f"| {r['scenario']} | {r['op']} | {r['clients']} | {r['requests']} | {r['throughput_rps']} | "
                f"{r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {errors} |"
                + "".join(f" {r.get(e, '')} |" for e in extra)
            )
        out.append("")

    if "levels" in results:
        table(results["levels"])
    if "overload_no_rate_limit" in results:
        table(results["overload_no_rate_limit"], ("refusal_p50_ms", "refusal_p99_ms", "deadline_exceeded"))
    if "overload_rate_limited" in results:
        table(results["overload_rate_limited"], ("refusal_p50_ms", "refusal_p99_ms"))
    if "soak" in results:
        soak = results["soak"]
        table([soak["summary"]])
        out.append(
            "| service | RSS 2nd min MiB | RSS last min MiB | growth MiB | fds min | fds max | fds last |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for name, g in soak["growth"].items():
            out.append(
                f"| {name} | {g['rss_early_mib']} | {g['rss_late_mib']} | {g['rss_growth_mib']:+} | "
                f"{g['fds_min']} | {g['fds_max']} | {g['fds_last']} |"
            )
        out.append("")
        out.append("| t s | ok/s | errors | " + " | ".join(f"{n} MiB / fds" for n in SERVICES) + " |")
        out.append("|---:|---:|---:|" + "---|" * len(SERVICES))
        for sample in soak["samples"]:
            out.append(
                f"| {sample['t']} | {sample['ok_per_s']} | {sample['errors']} | "
                + " | ".join(f"{sample[n]['rss_mib']:.0f} / {sample[n]['fds']}" for n in SERVICES)
                + " |"
            )
        out.append("")
    return "\n".join(out)


# -- traffic ------------------------------------------------------------------------------------------


async def user_op(client: httpx.AsyncClient, account: Account, op: str, photo: bytes) -> tuple[str, bool]:
    if op == "analyze":
        reply = await client.post(
            "/api/v1/analyses",
            files={"image": ("photo.jpg", photo, "image/jpeg")},
            data={"source": "SOURCE_CAMERA"},
            headers=account.headers,
        )
    elif op == "list":
        reply = await client.get("/api/v1/analyses", params={"page_size": 20}, headers=account.headers)
    elif op == "summary":
        reply = await client.get(
            "/api/v1/summary",
            params={"time_zone": "Asia/Shanghai", "bucket_size": "BUCKET_SIZE_DAY"},
            headers=account.headers,
        )
    else:
        reply = await client.post(
            "/api/v1/auth/login", json={"username": account.username, "password": account.password}
        )
        if reply.status_code == 200:
            account.access = reply.json()["tokens"]["access_token"]
    return str(reply.status_code), reply.status_code == 200


async def mixed_client(client, account, photos, run: Run, stop: asyncio.Event, rng: random.Random) -> None:
    ops, weights = zip(*MIX, strict=True)
    while not stop.is_set():
        op = rng.choices(ops, weights)[0]
        started = time.perf_counter()
        try:
            status, ok = await user_op(client, account, op, rng.choice(photos))
        except httpx.HTTPError as exc:
            status, ok = type(exc).__name__, False
        run.samples.append(Sample(op, status, time.perf_counter() - started, ok))


async def inference_client(stub, photos, run: Run, stop: asyncio.Event, rng: random.Random, timeout_s: float):
    while not stop.is_set():
        started = time.perf_counter()
        try:
            await stub.Analyze(inference_pb2.AnalyzeRequest(image=rng.choice(photos)), timeout=timeout_s)
            status, ok = "OK", True
        except grpc.aio.AioRpcError as exc:
            status, ok = exc.code().name, False
        run.samples.append(Sample("analyze", status, time.perf_counter() - started, ok))


async def run_mixed(
    base_url: str, accounts: list[Account], photos, clients: int, seconds: float, name="gateway-mixed"
):
    run = Run(name, clients, seconds)
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S, limits=limits) as client:
        tasks = [
            asyncio.create_task(
                mixed_client(client, accounts[i % len(accounts)], photos, run, stop, random.Random(i))
            )
            for i in range(clients)
        ]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
    return run


async def run_inference(
    addr: str, photos, clients: int, seconds: float, timeout_s: float = 30.0, name="inference"
):
    run = Run(name, clients, seconds)
    stop = asyncio.Event()
    channels = [grpc.aio.insecure_channel(addr) for _ in range(max(1, min(4, clients // 16)))]
    stubs = [inference_pb2_grpc.InferenceServiceStub(c) for c in channels]
    tasks = [
        asyncio.create_task(
            inference_client(stubs[i % len(stubs)], photos, run, stop, random.Random(i), timeout_s)
        )
        for i in range(clients)
    ]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    for channel in channels:
        await channel.close()
    return run


async def make_accounts(base_url: str, n: int) -> list[Account]:
    """`n` signed-in users, two at a time (production Argon2 is deliberately slow; auth hashes two at
    once), retrying a registration that times out on a busy machine."""
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        body = (await client.get("/api/v1/agreements")).raise_for_status().json()
        versions = (body["privacy_policy"]["version"], body["user_agreement"]["version"])

        async def one() -> Account:
            for attempt in range(5):
                try:
                    return await aregister_and_login(client, base_url, "load", versions)
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code not in (429, 503, 504) or attempt == 4:
                        raise
                    await asyncio.sleep(1 + attempt)
            raise AssertionError("unreachable")

        accounts: list[Account] = []
        for start in range(0, n, 2):
            accounts += await asyncio.gather(*(one() for _ in range(min(2, n - start))))
        return accounts


# -- resources ----------------------------------------------------------------------------------------


def resources(stack: PressureStack) -> dict[str, tuple[float, int]]:
    return {name: (round(stack.rss_mib(name), 1), stack.open_fds(name)) for name in SERVICES}


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.node()}: {psutil.cpu_count()} CPU ({cpu}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, load avg "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


# -- phases -------------------------------------------------------------------------------------------


async def levels_phase(stack, accounts, photos, levels, seconds) -> list[dict]:
    rows = []
    for clients in levels:
        run = await run_mixed(stack.http_url, accounts, photos, clients, seconds)
        rows.append(run.summary())
        rows += [run.summary(op) for op, _ in MIX]
        run = await run_inference(stack.addr("inference"), photos, clients, seconds)
        rows.append(run.summary())
        print_table(rows[-(len(MIX) + 2) :])
    return rows


async def overload_phase(stack, accounts, photos, seconds) -> list[dict]:
    """Far past capacity, then back to one client: are refusals quick, and does latency recover?"""
    rows = []
    baseline = await run_inference(stack.addr("inference"), photos, 1, 5, name="infer-before")
    rows.append(baseline.summary())
    for clients in (256, 512):
        run = await run_inference(
            stack.addr("inference"), photos, clients, seconds, timeout_s=10.0, name="infer-overload"
        )
        row = run.summary()
        refusals = [s.seconds for s in run.samples if s.status in ("RESOURCE_EXHAUSTED", "UNAVAILABLE")]
        timeouts = sum(1 for s in run.samples if s.status == "DEADLINE_EXCEEDED")
        row["refusal_p50_ms"] = round(float(np.percentile(refusals, 50)) * 1000, 1) if refusals else None
        row["refusal_p99_ms"] = round(float(np.percentile(refusals, 99)) * 1000, 1) if refusals else None
        row["deadline_exceeded"] = timeouts
        rows.append(row)
    after = await run_inference(stack.addr("inference"), photos, 1, 5, name="infer-after")
    rows.append(after.summary())
    run = await run_mixed(stack.http_url, accounts, photos, 256, seconds, name="gateway-overload")
    row = run.summary()
    refusals = [s.seconds for s in run.samples if s.status in ("429", "503")]
    row["refusal_p50_ms"] = round(float(np.percentile(refusals, 50)) * 1000, 1) if refusals else None
    row["refusal_p99_ms"] = round(float(np.percentile(refusals, 99)) * 1000, 1) if refusals else None
    rows.append(row)
    after = await run_mixed(stack.http_url, accounts, photos, 1, 5, name="gateway-after")
    rows.append(after.summary())
    print_table(rows)
    for r in rows:
        if "refusal_p50_ms" in r:
            print(
                f"  {r['scenario']} x{r['clients']}: refusals p50 {r['refusal_p50_ms']} ms,"
                f" p99 {r['refusal_p99_ms']} ms;"
                f" deadline exceeded {r.get('deadline_exceeded', r['error_codes'].get('504', 0))}"
            )
    return rows


async def soak_phase(
    stack, accounts, photos, minutes: float, clients: int = 16, interval_s: float = 15.0
) -> dict:
    run = Run("soak", clients, minutes * 60)
    stop = asyncio.Event()
    samples = []
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=HTTP_TIMEOUT_S, limits=limits) as client:
        tasks = [
            asyncio.create_task(
                mixed_client(client, accounts[i % len(accounts)], photos, run, stop, random.Random(i))
            )
            for i in range(clients)
        ]
        print(
            f"{'t s':>6}  {'ok/s':>6} {'errors':>6}  " + "  ".join(f"{n + ' MiB/fds':>20}" for n in SERVICES)
        )
        last_count = 0
        while time.monotonic() - started < minutes * 60:
            await asyncio.sleep(interval_s)
            now = round(time.monotonic() - started)
            res = resources(stack)
            window = run.samples[last_count:]
            last_count = len(run.samples)
            errors = sum(not s.ok for s in window)
            samples.append(
                {
                    "t": now,
                    "ok_per_s": round(sum(s.ok for s in window) / interval_s, 1),
                    "errors": errors,
                    **{n: {"rss_mib": r[0], "fds": r[1]} for n, r in res.items()},
                }
            )
            print(
                f"{now:>6}  {samples[-1]['ok_per_s']:>6} {errors:>6}  "
                + "  ".join(f"{f'{r[0]:.0f} / {r[1]}':>20}" for r in res.values()),
                flush=True,
            )
        stop.set()
        await asyncio.gather(*tasks)
    summary = run.summary()
    # Growth: mean of the second minute (after warm-up) against the mean of the last minute.
    per_minute = max(1, int(60 / interval_s))
    early = samples[per_minute : 2 * per_minute] or samples[:1]
    late = samples[-per_minute:]
    growth = {}
    for name in SERVICES:
        e = np.mean([s[name]["rss_mib"] for s in early])
        lt = np.mean([s[name]["rss_mib"] for s in late])
        fds = [s[name]["fds"] for s in samples]
        growth[name] = {
            "rss_early_mib": round(float(e), 1),
            "rss_late_mib": round(float(lt), 1),
            "rss_growth_mib": round(float(lt - e), 1),
            "fds_min": min(fds),
            "fds_max": max(fds),
            "fds_last": fds[-1],
        }
    print_table([summary])
    for name, g in growth.items():
        print(
            f"  {name:<10} RSS {g['rss_early_mib']} -> {g['rss_late_mib']} MiB"
            f" ({g['rss_growth_mib']:+} MiB); "
            f"fds {g['fds_min']}..{g['fds_max']} (last {g['fds_last']})"
        )
    return {"summary": summary, "samples": samples, "growth": growth}


async def measure(stack: PressureStack, args, photos, results: dict) -> None:
    accounts = await make_accounts(stack.http_url, max(16, max(args.levels) if args.levels else 16))
    print(f"{len(accounts)} users signed in; resources at start: {resources(stack)}", flush=True)
    await run_mixed(stack.http_url, accounts, photos, 4, 5, name="warm-up")
    if args.soak:
        results["soak"] = await soak_phase(stack, accounts, photos, args.soak)
    else:
        if args.levels:
            results["levels"] = await levels_phase(stack, accounts, photos, args.levels, args.duration)
        if args.overload:
            results["overload_no_rate_limit"] = await overload_phase(stack, accounts, photos, args.duration)
    results["resources_end"] = resources(stack)
    print(f"resources at end: {results['resources_end']}")


async def measure_rate_limited(stack: PressureStack, args, photos, results: dict) -> None:
    accounts = await make_accounts(stack.http_url, 16)
    run = await run_mixed(stack.http_url, accounts, photos, 256, args.duration, name="gateway-limited")
    row = run.summary()
    refusals = [s.seconds for s in run.samples if s.status == "429"]
    row["refusal_p50_ms"] = round(float(np.percentile(refusals, 50)) * 1000, 1) if refusals else None
    row["refusal_p99_ms"] = round(float(np.percentile(refusals, 99)) * 1000, 1) if refusals else None
    await asyncio.sleep(3)
    after = await run_mixed(stack.http_url, accounts, photos, 1, 5, name="limited-after")
    print_table([row, after.summary()])
    print(f"  429 refusals p50 {row['refusal_p50_ms']} ms, p99 {row['refusal_p99_ms']} ms")
    results["overload_rate_limited"] = [row, after.summary()]


def run_all(args) -> int:
    """Stacks are set up and torn down outside the event loop (database creation runs its own)."""
    photos = sample_photos(32)
    directory = Path(tempfile.mkdtemp(prefix="bench-load-"))
    print(f"machine: {machine()}")
    print(f"stack folder: {directory}; history database: {args.history_db}")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results: dict = {"machine": machine(), "args": vars(args), "started": started}
    with pressure_stack(
        directory, history_db=args.history_db, rate_limits=False, fast_passwords=False
    ) as stack:
        asyncio.run(measure(stack, args, photos, results))
    if args.overload and not args.soak:
        print("\ngateway with its default rate limits (20/s per user, 50/s per address):")
        with pressure_stack(Path(tempfile.mkdtemp(prefix="bench-load-rl-")), rate_limits=True) as stack:
            asyncio.run(measure_rate_limited(stack, args, photos, results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        print(f"results written to {args.json}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(results))
        print(f"tables written to {args.markdown}")
    if args.soak:
        soak = results["soak"]
        ok = soak["summary"]["errors"] == 0 and all(
            g["rss_growth_mib"] < 100 and g["fds_last"] <= g["fds_min"] + 20 for g in soak["growth"].values()
        )
        print("SOAK PASS" if ok else "SOAK FAIL")
        return 0 if ok else 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", default="1,8,32,64", help="comma-separated client counts ('' to skip)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per level")
    parser.add_argument("--overload", action="store_true", help="also run the overload phase")
    parser.add_argument(
        "--soak", type=float, default=0.0, metavar="MINUTES", help="soak at 16 clients instead"
    )
    parser.add_argument("--history-db", default="sqlite", choices=("sqlite", "postgresql", "mariadb"))
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    parser.add_argument("--markdown", default="", help="also write the figures as Markdown tables here")
    args = parser.parse_args()
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(run_all(args))


if __name__ == "__main__":
    main()
