"""Logins per second of the auth service, with its real Argon2id cost.

Starts `python -m services.auth` on a throwaway SQLite database (or uses --target), registers
one user, then runs concurrent Login calls for --duration seconds and prints logins/s and
latency percentiles. --sweep first prints the single-hash cost of candidate Argon2id parameters
on this machine (the trade-off recorded in docs/AUTH.md).

  .venv/bin/python bench/auth_login.py                     # production parameters
  .venv/bin/python bench/auth_login.py --sweep --duration 20 --concurrency 4
  .venv/bin/python bench/auth_login.py --target 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotion.v1 import auth_pb2, auth_pb2_grpc  # noqa: E402
from services.auth import agreements  # noqa: E402
from services.auth.settings import AuthSettings  # noqa: E402
from tests.support import ServiceProcess, free_port  # noqa: E402

PASSWORD = "benchmark passphrase 42"
CANDIDATES = [  # (time_cost, memory_kib, parallelism)
    (1, 47104, 1),  # OWASP alternative: 46 MiB, t=1
    (2, 19456, 1),  # OWASP minimum: 19 MiB, t=2 (chosen default)
    (3, 65536, 1),
    (3, 65536, 4),  # RFC 9106 "second recommended" / argon2-cffi default
]


def sweep(rounds: int) -> None:
    from argon2 import PasswordHasher

    print("Argon2id verify cost on this machine (one thread):")
    print(f"  {'t':>2} {'memory':>8} {'p':>2} {'ms/hash':>8} {'hash/s/core':>12}")
    for t, m, p in CANDIDATES:
        hasher = PasswordHasher(time_cost=t, memory_cost=m, parallelism=p)
        stored = hasher.hash(PASSWORD)
        started = time.perf_counter()
        for _ in range(rounds):
            hasher.verify(stored, PASSWORD)
        ms = (time.perf_counter() - started) / rounds * 1000
        print(f"  {t:>2} {m // 1024:>5}MiB {p:>2} {ms:>8.1f} {1000 / ms:>12.1f}")


async def run_logins(target: str, duration: float, concurrency: int) -> None:
    username = f"bench{uuid.uuid4().hex[:8]}"
    now_versions = {
        "accepted_privacy_policy_version": agreements.current(agreements.PRIVACY_POLICY, _now()).version,
        "accepted_user_agreement_version": agreements.current(agreements.USER_AGREEMENT, _now()).version,
    }
    async with grpc.aio.insecure_channel(target) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        await stub.Register(
            auth_pb2.RegisterRequest(
                username=username, password=PASSWORD, phone="+442079460958", **now_versions
            )
        )
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    await stub.Login(auth_pb2.LoginRequest(username=username, password=PASSWORD), timeout=30)
                    latencies.append(time.perf_counter() - started)
                except grpc.aio.AioRpcError:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    qs = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(
        f"logins: {len(latencies)} in {elapsed:.1f}s = {len(latencies) / elapsed:.1f} logins/s "
        f"(concurrency {concurrency}, errors {errors}); latency p50 {qs[49] * 1000:.0f} ms, "
        f"p95 {qs[94] * 1000:.0f} ms"
    )


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main() -> None:
    defaults = AuthSettings.model_fields
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", help="an already running auth service; default: start one")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--time-cost", type=int, default=defaults["argon2_time_cost"].default)
    parser.add_argument("--memory-kib", type=int, default=defaults["argon2_memory_kib"].default)
    parser.add_argument("--parallelism", type=int, default=defaults["argon2_parallelism"].default)
    parser.add_argument("--sweep", action="store_true", help="time single hashes of candidates")
    parser.add_argument("--sweep-rounds", type=int, default=10)
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if args.sweep:
        sweep(args.sweep_rounds)
    if args.target:
        asyncio.run(run_logins(args.target, args.duration, args.concurrency))
        return

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            "AUTH_DATABASE_URL": f"sqlite:///{tmp}/auth.db",
            "AUTH_PORT": str(port),
            "AUTH_METRICS_PORT": "-1",
            "AUTH_DEV_SIGNING_KEY_FILE": f"{tmp}/key.pem",
            "AUTH_LOG_LEVEL": "WARNING",
            "AUTH_ARGON2_TIME_COST": str(args.time_cost),
            "AUTH_ARGON2_MEMORY_KIB": str(args.memory_kib),
            "AUTH_ARGON2_PARALLELISM": str(args.parallelism),
        }
        print(
            f"auth service: Argon2id t={args.time_cost} m={args.memory_kib // 1024}MiB p={args.parallelism}, "
            "SQLite"
        )
        service = ServiceProcess("services.auth", env, Path(tmp) / "auth.log", port).wait_serving()
        try:
            asyncio.run(run_logins(f"127.0.0.1:{port}", args.duration, args.concurrency))
        finally:
            service.stop()


if __name__ == "__main__":
    main()
