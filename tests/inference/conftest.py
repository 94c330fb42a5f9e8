"""Fixtures: the classifier weights (shipped, or random stand-ins until training ships them), the real
inference service as a process, and real photos from ../shared/data/photos."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import grpc
import pytest
from PIL import Image

from emotion.v1 import inference_pb2_grpc
from tests.stack import save_stand_in_model
from tests.support import REPO_ROOT, SHARED_DATA, ServiceProcess, free_port

PHOTOS = SHARED_DATA / "photos"
SHIPPED_WEIGHTS = REPO_ROOT / "models" / "fer_vgg.pt"


def photo_labels() -> dict[str, str]:
    with open(PHOTOS / "labels.csv", newline="") as f:
        return {row["file"]: row["emotion"] for row in csv.DictReader(f)}


def square_photos(count: int) -> list[Path]:
    """The first `count` 350x350 photos (the common case: one face filling much of the frame)."""
    out = []
    for name in sorted(photo_labels()):
        path = PHOTOS / "images" / name
        with Image.open(path) as image:
            if image.size == (350, 350):
                out.append(path)
        if len(out) == count:
            break
    return out


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def model_weights(tmp_path_factory) -> Path:
    """The shipped model when present; otherwise a randomly initialised model of the same architecture,
    saved exactly as training ships weights (state_dict + metadata JSON)."""
    if SHIPPED_WEIGHTS.exists() and SHIPPED_WEIGHTS.with_suffix(".json").exists():
        return SHIPPED_WEIGHTS
    import torch

    from training.models import create_model

    config = json.loads((REPO_ROOT / "training" / "configs" / "fer_vgg.json").read_text())
    torch.manual_seed(0)
    model = create_model(config["model"], verbose=False, **config["model_cfg"])
    # Fresh BatchNorm statistics make every output nearly the same; training-mode passes over real faces
    # and a sharper head give a stand-in whose scores depend on the face, as a trained model's do.
    import numpy as np

    faces = np.stack([np.asarray(Image.open(p).convert("L").resize((48, 48))) for p in square_photos(64)])
    batch = torch.from_numpy((faces.astype(np.float32) / 255.0 - 0.5) / 0.25)[:, None]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                module.momentum = None  # cumulative average over the calibration passes
        model.train()
        for _ in range(2):
            model(batch)
        model.eval()
        model.head[-1].weight.mul_(10.0)
    return save_stand_in_model(model, config, tmp_path_factory.mktemp("model") / "fer_vgg.pt")


def start_inference(tmp_path: Path, weights: Path, **env: str) -> tuple[ServiceProcess, int]:
    port, metrics_port = free_port(), free_port()
    process = ServiceProcess(
        "services.inference",
        {
            "INFERENCE_PORT": str(port),
            "INFERENCE_METRICS_PORT": str(metrics_port),
            "INFERENCE_MODEL_PATH": str(weights),
            "INFERENCE_LOG_LEVEL": "INFO",
            **env,
        },
        tmp_path / f"inference-{port}.log",
        port,
    )
    return process.wait_serving(timeout_s=180), metrics_port


@pytest.fixture(scope="module")
def inference(tmp_path_factory, model_weights):
    """(stub, metrics_port) of one service process shared by a test module."""
    env = {"INFERENCE_MAX_WAIT_MS": "20"}  # a wide batching window makes batching easy to observe
    process, metrics_port = start_inference(tmp_path_factory.mktemp("inference"), model_weights, **env)
    channel = grpc.insecure_channel(
        f"127.0.0.1:{process.port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    )
    try:
        yield inference_pb2_grpc.InferenceServiceStub(channel), metrics_port
    finally:
        channel.close()
        process.stop()


@pytest.fixture(scope="session")
def crops():
    """The crops the service makes from real photos: detector boxes, training's crop margin."""
    import numpy as np

    from services.inference.decode import decode_image
    from services.inference.detect import HaarFaceDetector, crop_face
    from services.inference.server import InferenceSettings

    settings = InferenceSettings()
    detector = HaarFaceDetector()
    out = []
    for path in square_photos(16):
        grey = decode_image(path.read_bytes()).grey
        out += [crop_face(grey, face, settings.crop_margin, 48) for face in detector.detect(grey)]
    return np.stack(out)


def assert_same_analyses(reference, other, photos, atol):
    """Two InferenceService stubs find the same faces in these photos and score each alike (within atol)."""
    import numpy as np

    from emotion.v1 import common_pb2, inference_pb2

    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    for path in photos:
        request = inference_pb2.AnalyzeRequest(image=path.read_bytes(), options=common_pb2.AnalyzeOptions())
        expected, got = (stub.Analyze(request, timeout=30) for stub in (reference, other))
        assert len(expected.faces) == len(got.faces) >= 1
        for a, b in zip(expected.faces, got.faces, strict=True):
            assert a.box == b.box and a.dominant == b.dominant
            np.testing.assert_allclose(
                [getattr(a.scores, k) for k in labels], [getattr(b.scores, k) for k in labels], atol=atol
            )
