"""End-to-end AnalyzePhoto latency and throughput through the gateway, hop by hop.

    OMP_NUM_THREADS=1 .venv/bin/python bench/gateway_load.py [--clients 1,8,32] [--seconds 15]
        [--photos DIR] [--json results.json] [--gateway HOST:PORT --inference HOST:PORT --history HOST:PORT]

Without addresses it starts the whole stack (tests/stack.py: real auth, history, inference and gateway
processes, SQLite databases in a temporary folder, rate limits off). With addresses it uses a running
stack (its gateway's rate limits must allow the load). For each concurrency level it runs, one after
the other, for --seconds each:

  gateway     AnalyzePhoto through the gateway: token check, inference, history write, response
  inference   inference Analyze called directly: the same work without the gateway and history hops
  history     history RecordAnalysis called directly with the same faces: the cost of the write alone

Each client is its own registered user; photos cycle through ../shared/data/photos. Latency is per call,
wall clock, client side; throughput is completed calls per second over the run. Errors are counted.
When it started the stack, it also reports each service's CPU milliseconds per call (user + system), which
separates work from waiting on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from emotion.v1 import (  # noqa: E402
    auth_pb2,
    common_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    history_pb2,
    history_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
)

DEFAULT_PHOTOS = REPO_ROOT.parent / "shared" / "data" / "photos" / "images"
PASSWORD = "benchmark password 1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class OutboxUsed(Exception):
    """The gateway acknowledged the analysis but queued it: history failed, so count it as an error."""


class User:
    def __init__(self, token: str, user_id: str) -> None:
        self.token, self.user_id = token, user_id

    @property
    def metadata(self) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.token}"),)


async def sign_up(stub: gateway_pb2_grpc.EmotionGatewayStub) -> User:
    agreements = await stub.GetAgreements(auth_pb2.GetAgreementsRequest(), timeout=10)
    username = f"bench{uuid.uuid4().hex[:10]}"
    await stub.Register(
        auth_pb2.RegisterRequest(
            username=username,
            password=PASSWORD,
            phone="+44 20 7946 0958",
            accepted_privacy_policy_version=agreements.privacy_policy.version,
            accepted_user_agreement_version=agreements.user_agreement.version,
        ),
        timeout=30,
    )
    reply = await stub.Login(auth_pb2.LoginRequest(username=username, password=PASSWORD), timeout=30)
    return User(reply.tokens.access_token, reply.user.id)


async def run_level(name: str, clients: int, seconds: float, call) -> dict:
    """`clients` loops calling `call(client_index, sequence)` for `seconds`; latency stats."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        sequence = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call(index, sequence)
                latencies.append((time.perf_counter() - started) * 1000)
            except (grpc.aio.AioRpcError, OutboxUsed) as exc:
                kind = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "QUEUED_IN_OUTBOX"
                errors[kind] = errors.get(kind, 0) + 1
            sequence += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "path": name,
        "clients": clients,
        "calls": len(latencies),
        "errors": errors,
        "throughput_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else float("nan"),
    }


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) used so far by each service process we started."""
    import psutil

    times = {}
    for service, pid in pids.items():
        try:
            cpu = psutil.Process(pid).cpu_times()
            times[service] = cpu.user + cpu.system
        except psutil.Error:
            times[service] = 0.0
    return times


def load_photos(folder: str, limit: int) -> list[bytes]:
    photos = [p.read_bytes() for p in sorted(Path(folder).glob("*.jpg"))[:limit]]
    if not photos:
        raise SystemExit(f"no photos in {folder}")
    return photos


async def benchmark(args, gateway_addr: str, inference_addr: str, history_addr: str) -> list[dict]:
    photos = args.photo_bytes
    options = [("grpc.max_send_message_length", 32 << 20), ("grpc.max_receive_message_length", 32 << 20)]
    async with (
        grpc.aio.insecure_channel(gateway_addr, options=options) as gateway_channel,
        grpc.aio.insecure_channel(inference_addr, options=options) as inference_channel,
        grpc.aio.insecure_channel(history_addr, options=options) as history_channel,
    ):
        gateway = gateway_pb2_grpc.EmotionGatewayStub(gateway_channel)
        inference = inference_pb2_grpc.InferenceServiceStub(inference_channel)
        history = history_pb2_grpc.HistoryServiceStub(history_channel)
        users = [await sign_up(gateway) for _ in range(max(args.clients))]
        sample = await inference.Analyze(inference_pb2.AnalyzeRequest(image=photos[0]), timeout=60)
        run_id = uuid.uuid4().hex[:8]

        async def via_gateway(index: int, sequence: int) -> None:
            request = gateway_pb2.AnalyzePhotoRequest(
                image=photos[(index * 7919 + sequence) % len(photos)],
                source=common_pb2.SOURCE_ALBUM,
                request_id=f"bench-{run_id}-gw-{index}-{sequence}",
            )
            reply = await gateway.AnalyzePhoto(request, metadata=users[index].metadata, timeout=30)
            if not reply.recorded:
                raise OutboxUsed()

        async def direct_inference(index: int, sequence: int) -> None:
            image = photos[(index * 7919 + sequence) % len(photos)]
            await inference.Analyze(inference_pb2.AnalyzeRequest(image=image), timeout=30)

        async def direct_history(index: int, sequence: int) -> None:
            request = history_pb2.RecordAnalysisRequest(
                request_id=f"bench-{run_id}-h-{index}-{sequence}",
                source=common_pb2.SOURCE_ALBUM,
                faces=sample.faces,
                model_version=sample.model_version,
            )
            await history.RecordAnalysis(request, metadata=users[index].metadata, timeout=30)

        # Warm up every path (model, connections, token keys) before measuring.
        for path in (via_gateway, direct_inference, direct_history):
            await run_level("warmup", min(4, max(args.clients)), 2.0, path)

        results = []
        for clients in args.clients:
            for name, path in (
                ("gateway", via_gateway),
                ("inference", direct_inference),
                ("history", direct_history),
            ):
                cpu_before = cpu_seconds(args.pids)
                result = await run_level(name, clients, args.seconds, path)
                cpu_after = cpu_seconds(args.pids)
                calls = max(1, result["calls"])
                result["cpu_ms_per_call"] = {
                    service: round((cpu_after[service] - cpu_before[service]) * 1000 / calls, 1)
                    for service in cpu_after
                }
                results.append(result)
                cpu = "  ".join(f"{k} {v:.1f}" for k, v in result["cpu_ms_per_call"].items())
                print(
                    f"{name:>9} clients={clients:>2}  {result['throughput_per_s']:>7.1f}/s  "
                    f"p50 {result['p50_ms']:>7.1f} ms  p99 {result['p99_ms']:>7.1f} ms  "
                    f"calls {result['calls']:>5}  errors {result['errors'] or 0}"
                    + (f"  CPU ms/call: {cpu}" if cpu else ""),
                    flush=True,
                )
        return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each run")
    parser.add_argument("--photos", default=str(DEFAULT_PHOTOS))
    parser.add_argument("--max-photos", type=int, default=64, help="photos loaded into memory and cycled")
    parser.add_argument("--gateway", default="", help="gateway gRPC address of a running stack")
    parser.add_argument("--inference", default="", help="inference address of that stack")
    parser.add_argument("--history", default="", help="history address of that stack")
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    args.photo_bytes = load_photos(args.photos, args.max_photos)
    args.pids = {}

    if args.gateway:
        if not (args.inference and args.history):
            raise SystemExit("--gateway needs --inference and --history too")
        results = asyncio.run(benchmark(args, args.gateway, args.inference, args.history))
    else:
        from tests.stack import running_stack

        gateway_env = {"GATEWAY_RATE_LIMIT_USER_PER_S": "0", "GATEWAY_RATE_LIMIT_ADDRESS_PER_S": "0"}
        with running_stack(Path(tempfile.mkdtemp(prefix="gateway-bench-")), gateway_env=gateway_env) as stack:
            print(f"stack started in {stack.directory}", flush=True)
            args.pids = {name: process.proc.pid for name, process in stack.processes.items()}
            results = asyncio.run(
                benchmark(args, stack.gateway_addr, stack.inference_addr, stack.history_addr)
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
