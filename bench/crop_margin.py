"""Accuracy on ../shared/data/photos for several crop margins around the detector's box.

    OMP_NUM_THREADS=1 .venv/bin/python bench/crop_margin.py [--weights models/fer_vgg.pt] \
        [--margins 0,0.1,0.15,0.2,0.3,0.4]

FER-2013 faces are loosely cropped; the Haar box is tight (eyebrows to mouth), so the service grows it by
INFERENCE_CROP_MARGIN per side. This picks that margin: same detector settings as the service, fp32
in-process classifier, the largest face of each photo compared with labels.csv.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from services.inference import scoring  # noqa: E402
from services.inference.decode import decode_image  # noqa: E402
from services.inference.detect import HaarFaceDetector, crop_face  # noqa: E402
from services.inference.server import InferenceSettings  # noqa: E402

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
PHOTOS = REPO_ROOT.parent / "shared" / "data" / "photos"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", default=None, help="default: the shipped model")
    parser.add_argument("--margins", default="0,0.1,0.15,0.2,0.3,0.4")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    args = parser.parse_args()

    import torch

    from training.models import load_shipped_model

    torch.set_num_threads(1)
    model, meta = load_shipped_model(args.weights)
    settings = InferenceSettings()
    detector = HaarFaceDetector(
        detect_size=settings.detect_size,
        pad_fraction=settings.detect_pad_fraction,
        min_face_fraction=settings.detect_min_face_fraction,
        fallback_max_side=settings.detect_fallback_max_side,
        scale_factor=settings.detect_scale_factor,
    )
    with open(args.photos / "labels.csv", newline="") as f:
        labels = {row["file"]: row["emotion"] for row in csv.DictReader(f)}
    samples = []
    for name, label in sorted(labels.items()):
        grey = decode_image((args.photos / "images" / name).read_bytes()).grey
        faces = detector.detect(grey)
        if faces:
            samples.append((grey, faces[0], LABELS.index(label)))
    truth = np.array([s[2] for s in samples])
    print(
        f"{len(samples)} of {len(labels)} photos with a face; model {meta.get('version')} "
        f"({args.weights or 'shipped'})"
    )
    for margin in (float(m) for m in args.margins.split(",")):
        crops = np.stack(
            [
                crop_face(grey, face, 0.0 if (face.width, face.height) == grey.shape[::-1] else margin, 48)
                for grey, face, _ in samples
            ]
        )
        for tta in (False, True):
            probs = scoring.probabilities(
                model, crops, meta["mean"], meta["std"], meta.get("temperature") or 1.0, tta=tta
            )
            accuracy = float((probs.argmax(1) == truth).mean())
            print(f"margin {margin:.2f}  tta {'on ' if tta else 'off'}  accuracy {accuracy:.1%}")


if __name__ == "__main__":
    main()
