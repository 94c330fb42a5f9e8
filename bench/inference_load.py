"""Load generator for InferenceService (called directly over gRPC, as the gateway does).

    # against a running service
    .venv/bin/python bench/inference_load.py --addr 127.0.0.1:50053 --concurrency 8 --duration 30
    # or start one (python -m services.inference, INFERENCE_* from the environment and --env)
    .venv/bin/python bench/inference_load.py --spawn --concurrency 1 --duration 30
    # detection rate and accuracy against ../shared/data/photos/labels.csv (one pass over every photo)
    .venv/bin/python bench/inference_load.py --spawn --accuracy --all-sizes

Each client sends Analyze calls back to back, cycling through the image set (by default the 350x350
photos of ../shared/data/photos). Prints throughput, client-side latency percentiles, error counts by
status code and the mean server-side stage times.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from emotion.v1 import common_pb2, inference_pb2, inference_pb2_grpc  # noqa: E402

DEFAULT_PHOTOS = REPO_ROOT.parent / "shared" / "data" / "photos"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def load_images(folder: Path, all_sizes: bool, limit: int) -> list[tuple[str, bytes]]:
    images = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}:
            continue
        if not all_sizes:
            with Image.open(path) as image:
                if image.size != (350, 350):
                    continue
        images.append((path.name, path.read_bytes()))
        if limit and len(images) >= limit:
            break
    if not images:
        raise SystemExit(f"no images in {folder}")
    return images


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of the service process (and its threads), when we started it."""
    if pid is None:
        return 0.0
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def run_load(
    stub, images, concurrency: int, duration: float, warmup: float, options, pid: int | None = None
) -> None:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    stages = {"decode": [], "detect": [], "classify": [], "total": []}
    measuring = False
    stop_at = time.perf_counter() + warmup + duration

    async def client(index: int) -> None:
        i = index
        while time.perf_counter() < stop_at:
            _, data = images[i % len(images)]
            i += concurrency
            request = inference_pb2.AnalyzeRequest(image=data, options=options)
            started = time.perf_counter()
            try:
                reply = await stub.Analyze(request, timeout=30)
                ok = True
            except grpc.aio.AioRpcError as exc:
                ok, code = False, exc.code().name
            elapsed = time.perf_counter() - started
            if not measuring:
                continue
            latencies.append(elapsed)
            if ok:
                t = reply.timings
                for name, value in (
                    ("decode", t.decode_ms),
                    ("detect", t.detect_ms),
                    ("classify", t.classify_ms),
                    ("total", t.total_ms),
                ):
                    stages[name].append(value)
            else:
                errors[code] += 1

    tasks = [asyncio.create_task(client(i)) for i in range(concurrency)]
    await asyncio.sleep(warmup)
    measuring, started, cpu_started = True, time.perf_counter(), cpu_seconds(pid)
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_started
    done = len(latencies)
    print(
        f"concurrency {concurrency}, {duration:.0f} s measured after {warmup:.0f} s warm-up, "
        f"{len(images)} images"
    )
    print(f"  requests {done}  ok {done - sum(errors.values())}  errors {dict(errors) or 0}")
    print(f"  throughput {done / wall:.1f} photos/s")
    if latencies:
        ms = [v * 1000 for v in latencies]
        print(
            f"  latency ms  p50 {percentile(ms, 50):.1f}  p90 {percentile(ms, 90):.1f}  "
            f"p99 {percentile(ms, 99):.1f}  max {max(ms):.1f}"
        )
    if pid is not None and latencies:
        per_photo = cpu / len(latencies) * 1000
        print(
            f"  service CPU {per_photo:.1f} ms per photo ({cpu / wall:.2f} cores busy); "
            f"on 2 otherwise idle cores that is at most {2000 / per_photo:.0f} photos/s"
        )
    if stages["total"]:
        print(
            "  server stage means ms  "
            + "  ".join(f"{k} {statistics.fmean(v):.1f}" for k, v in stages.items())
        )


async def run_accuracy(stub, images, labels: dict[str, str], concurrency: int, options) -> None:
    semaphore = asyncio.Semaphore(concurrency)
    detected = correct = labelled = assumed = 0
    per_class: dict[str, list[int]] = {label: [0, 0] for label in LABELS}
    failures = Counter()

    async def one(name: str, data: bytes):
        async with semaphore:
            try:
                return name, await stub.Analyze(
                    inference_pb2.AnalyzeRequest(image=data, options=options), timeout=60
                )
            except grpc.aio.AioRpcError as exc:
                failures[exc.code().name] += 1
                return name, None

    for name, reply in await asyncio.gather(*(one(n, d) for n, d in images)):
        if reply is None or not reply.faces:
            continue
        detected += 1
        face = reply.faces[0]
        assumed += face.detection_score == 0.0
        truth = labels.get(name)
        if truth:
            labelled += 1
            hit = LABELS[face.dominant - 1] == truth
            correct += hit
            per_class[truth][0] += hit
            per_class[truth][1] += 1
    print(
        f"photos {len(images)}  face found {detected} ({detected / len(images):.1%}; "
        f"{assumed} of them by the "
        f"whole-small-image fallback)  errors {dict(failures) or 0}"
    )
    if labelled:
        print(f"accuracy vs labels.csv (largest face): {correct}/{labelled} = {correct / labelled:.1%}")
        print("  per class " + "  ".join(f"{k} {c}/{n}" for k, (c, n) in per_class.items() if n))


def spawn_service(extra_env: list[str]) -> tuple[subprocess.Popen, str]:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.support import free_port, wait_serving

    port = free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "INFERENCE_PORT": str(port),
        "INFERENCE_METRICS_PORT": "-1",
        "INFERENCE_LOG_LEVEL": "WARNING",
    }
    env.update(item.split("=", 1) for item in extra_env)
    proc = subprocess.Popen([sys.executable, "-m", "services.inference"], cwd=REPO_ROOT, env=env)
    wait_serving(port, timeout_s=300, proc=proc)
    return proc, f"127.0.0.1:{port}"


async def main_async(args, labels_text: str, pid: int | None) -> None:
    images = load_images(args.photos / "images", args.all_sizes or args.accuracy, args.limit)
    options = common_pb2.AnalyzeOptions(whole_image_as_face=args.whole_image, test_time_augmentation=args.tta)
    async with grpc.aio.insecure_channel(args.addr) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        info = await stub.GetModelInfo(inference_pb2.GetModelInfoRequest(), timeout=30)
        print(f"model {info.name} {info.version or '(no version)'} via {info.backend}")  # names the record
        if args.accuracy:
            labels = {row["file"]: row["emotion"] for row in csv.DictReader(io.StringIO(labels_text))}
            await run_accuracy(stub, images, labels, args.concurrency, options)
        else:
            await run_load(stub, images, args.concurrency, args.duration, args.warmup, options, pid)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--addr", default="127.0.0.1:50053", help="InferenceService address")
    parser.add_argument(
        "--spawn", action="store_true", help="start python -m services.inference on a free port"
    )
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="env for --spawn")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--photos", type=Path, default=DEFAULT_PHOTOS, help="folder with images/ and labels.csv"
    )
    parser.add_argument("--all-sizes", action="store_true", help="use every photo, not only the 350x350 ones")
    parser.add_argument("--limit", type=int, default=0, help="use at most this many images")
    parser.add_argument("--whole-image", action="store_true", help="whole_image_as_face (pre-cropped input)")
    parser.add_argument("--tta", action="store_true", help="test_time_augmentation")
    parser.add_argument(
        "--accuracy", action="store_true", help="one pass: detection rate and accuracy vs labels"
    )
    args = parser.parse_args()
    proc = None
    if args.spawn:
        proc, args.addr = spawn_service(args.env)
    try:
        labels_text = (args.photos / "labels.csv").read_text() if args.accuracy else ""
        asyncio.run(main_async(args, labels_text, proc.pid if proc else None))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
