"""Detection rate and speed of candidate face detectors on ../shared/data/photos.

    OMP_NUM_THREADS=1 .venv/bin/python bench/detectors.py [--photos DIR] [--repeat 2]

A photo counts as detected when the detector returns at least one face. Every photo in that set holds
exactly one labelled face, so "rate" here is recall; the two-face and no-face behaviour is covered by
tests/inference. Times are wall-clock per photo on one thread (decode excluded).
Candidates that cannot run here (missing files or imports) are reported with the reason.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from services.inference.decode import decode_image  # noqa: E402
from services.inference.detect import HaarFaceDetector  # noqa: E402

DEFAULT_PHOTOS = REPO_ROOT.parent / "shared" / "data" / "photos" / "images"


def candidates():
    """(name, detect(grey) -> number of faces) for each detector configuration worth comparing."""

    def haar(**kw):
        det = HaarFaceDetector(**kw)
        return lambda grey: len(det.detect(grey))

    no_fallback = dict(fallback_max_side=0)
    fine = dict(scale_factor=1.1, **no_fallback)  # scale step 1.1: finer, slower
    yield (
        "haar, 350 px (native size of most photos), one pass",
        haar(detect_size=350, pad_fraction=0.0, min_face_fraction=0.0, **fine),
    )
    yield "haar, 192 px, min face 12%, one pass", haar(pad_fraction=0.0, min_face_fraction=0.12, **fine)
    yield "haar, 192 px, min face 12%, + padded pass", haar(min_face_fraction=0.12, **fine)
    yield "haar, 192 px, min face 20%, + padded pass", haar(**fine)
    yield "haar, 192 px, min face 20%, scale 1.2, + padded pass", haar(**no_fallback)
    yield (
        "haar alt2, 192 px, min face 20%, + padded pass",
        haar(cascade="haarcascade_frontalface_alt2.xml", **fine),
    )
    yield "shipped: haar, 192 px, min face 20%, scale 1.2, padded pass, fallback", haar()

    if hasattr(cv2, "FaceDetectorYN"):
        yield (
            "opencv YuNet",
            _unavailable(
                "cv2.FaceDetectorYN needs face_detection_yunet_*.onnx, which no installed wheel ships"
            ),
        )
    try:
        import torch
        from facenet_pytorch import MTCNN  # noqa: F401 (imports torchvision)

        mtcnn = MTCNN(keep_all=True, device="cpu")
        torch.set_num_threads(1)

        def run_mtcnn(grey):
            boxes, _ = mtcnn.detect(np.stack([grey] * 3, axis=-1))
            return 0 if boxes is None else len(boxes)

        yield "facenet-pytorch MTCNN", run_mtcnn
    except Exception as exc:  # noqa: BLE001 - report why a candidate is missing, whatever it is
        yield "facenet-pytorch MTCNN", _unavailable(f"{type(exc).__name__}: {exc}")


def _unavailable(reason: str):
    def fail(grey):
        raise RuntimeError(reason)

    return fail


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--repeat", type=int, default=2, help="timing passes (the first is warm-up)")
    args = parser.parse_args()
    cv2.setNumThreads(1)

    files = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    images = [decode_image(p.read_bytes()).grey for p in files]
    print(f"{len(images)} photos from {args.photos}")
    print(f"{'detector':<64} {'detected':>10} {'rate':>7} {'p50 ms':>8} {'mean ms':>8}")
    for name, detect in candidates():
        try:
            detect(images[0])
        except Exception as exc:  # noqa: BLE001
            print(f"{name:<64} unavailable: {exc}")
            continue
        found, times = 0, []
        for rep in range(max(1, args.repeat)):
            for grey in images:
                start = time.perf_counter()
                n = detect(grey)
                times.append((time.perf_counter() - start) * 1000)
                if rep == 0:
                    found += n > 0
            if rep == 0 and args.repeat > 1:
                times.clear()
        rate = found / len(images)
        print(
            f"{name:<64} {found:>4}/{len(images):<5} {rate:>7.1%} {statistics.median(times):>8.2f} "
            f"{statistics.fmean(times):>8.2f}"
        )


if __name__ == "__main__":
    main()
