"""Command line: serve (default) or analyse image files without a server.

    python -m services.inference                      # serve (same as `serve`)
    python -m services.inference analyze [--json] [--tta] [--whole-image] PATH...

`analyze` takes files or folders (searched recursively for images), runs the same pipeline and settings
(INFERENCE_* variables) as the service in this process, and prints one result per image; with --json one
JSON line per image: {"file", "faces": [{"box": [x, y, w, h], "scores": {...}, "emotion",
"detection_score"}]} or {"file", "error"} for an image it rejects. A progress bar goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


def image_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    return files


def _progress(total: int):
    try:
        from tqdm import tqdm

        return tqdm(total=total, unit="img", file=sys.stderr, disable=not sys.stderr.isatty())
    except ImportError:  # tqdm is optional: no bar, same output

        class _Quiet:
            def update(self, n=1): ...
            def close(self): ...

        return _Quiet()


async def analyze_files(args: argparse.Namespace) -> int:
    from services.inference.classify import LABELS, Overloaded
    from services.inference.decode import InvalidImage
    from services.inference.server import InferenceSettings, close_engine, open_engine

    settings = InferenceSettings(backend=args.backend) if args.backend else InferenceSettings()
    engine = await open_engine(settings)
    files = image_files(args.paths)
    bar = _progress(len(files))
    failures = 0
    semaphore = asyncio.Semaphore(max(1, settings.worker_threads * 2))

    async def one(path: Path):
        async with semaphore:
            try:
                data = await asyncio.to_thread(path.read_bytes)
                analysis = await engine.analyzer.analyze(
                    data, whole_image_as_face=args.whole_image, tta=args.tta
                )
                faces = [
                    {
                        "box": [f.x, f.y, f.width, f.height],
                        "scores": {label: round(float(p), 6) for label, p in zip(LABELS, s, strict=True)},
                        "emotion": LABELS[int(s.argmax())],
                        "detection_score": round(f.score, 4),
                    }
                    for f, s in zip(analysis.faces, analysis.scores, strict=True)
                ]
                return {"file": str(path), "faces": faces}
            except (OSError, InvalidImage, Overloaded) as exc:
                return {"file": str(path), "error": str(exc)}

    try:
        tasks = [asyncio.ensure_future(one(p)) for p in files]
        for task in tasks:  # in input order, so output lines follow the command line
            result = await task
            bar.update(1)
            failures += "error" in result
            if args.json:
                print(json.dumps(result, ensure_ascii=False), flush=True)
            elif "error" in result:
                print(f"{result['file']}: error: {result['error']}", flush=True)
            elif not result["faces"]:
                print(f"{result['file']}: no face found", flush=True)
            else:
                summary = "; ".join(
                    f"{f['emotion']} {f['scores'][f['emotion']]:.0%} at {tuple(f['box'])}"
                    for f in result["faces"]
                )
                print(f"{result['file']}: {summary}", flush=True)
    finally:
        bar.close()
        await close_engine(engine)
    return 1 if failures and failures == len(files) else 0


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] == "serve":
        from services.inference.server import main as serve

        serve()
        return
    parser = argparse.ArgumentParser(
        prog="python -m services.inference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the gRPC service (the default)")
    analyze = sub.add_parser("analyze", help="analyse image files or folders and print the results")
    analyze.add_argument("paths", nargs="+", metavar="PATH")
    analyze.add_argument("--json", action="store_true", help="one JSON line per image")
    analyze.add_argument("--tta", action="store_true", help="test-time augmentation")
    analyze.add_argument("--whole-image", action="store_true", help="treat each image as one face crop")
    analyze.add_argument(
        "--backend", choices=["inprocess", "onnx", "torchserve"], help="override INFERENCE_BACKEND"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from services.common.logs import configure_logging

    configure_logging("inference-cli", os.environ.get("INFERENCE_LOG_LEVEL", "WARNING"))
    sys.exit(asyncio.run(analyze_files(args)))
