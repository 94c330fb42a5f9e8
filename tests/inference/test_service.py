"""The inference service as a real process over real gRPC: photos in, faces and scores out."""

from __future__ import annotations

import functools
import io
import re
import struct
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from PIL import Image

from emotion.v1 import common_pb2, inference_pb2
from tests.inference.conftest import PHOTOS, encode, photo_labels, square_photos

# Starting the service process is most of this module's time; on a loaded machine it can take minutes.
pytestmark = pytest.mark.timeout(600)

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def scores_of(face) -> np.ndarray:
    return np.array([getattr(face.scores, label) for label in LABELS])


def analyze(stub, data: bytes, **options) -> inference_pb2.AnalyzeResponse:
    return stub.Analyze(
        inference_pb2.AnalyzeRequest(image=data, options=common_pb2.AnalyzeOptions(**options)), timeout=30
    )


def metric_samples(metrics_port: int, name: str) -> dict[str, float]:
    """{sample line without value: value} for one metric family from /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(name):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


@pytest.fixture(scope="module")
def photo():
    return square_photos(1)[0]


def test_faces_found_and_scored_on_real_photos(inference):
    stub, _ = inference
    for path in square_photos(6):
        reply = analyze(stub, path.read_bytes())
        assert reply.image_width == 350 and reply.image_height == 350
        assert len(reply.faces) >= 1, f"no face found in {path.name}"
        face = reply.faces[0]
        probabilities = scores_of(face)
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert (probabilities >= 0).all()
        assert face.dominant == int(probabilities.argmax()) + 1
        assert face.emoji
        assert 0.0 < face.detection_score <= 1.0
        # A face filling much of a 350x350 frame: the box is large and inside the image.
        assert face.box.width >= 100 and face.box.height >= 100
        assert face.box.x >= 0 and face.box.y >= 0
        assert face.box.x + face.box.width <= 350 and face.box.y + face.box.height <= 350
        assert reply.timings.total_ms > 0 and reply.timings.decode_ms > 0 and reply.timings.detect_ms > 0
        assert reply.timings.classify_ms > 0
        assert reply.model_version


def test_two_faces_in_one_image_give_two_results_largest_first(inference):
    stub, _ = inference
    first, second = square_photos(2)
    canvas = Image.new("RGB", (900, 400), (200, 200, 200))
    canvas.paste(Image.open(first).convert("RGB"), (10, 25))
    canvas.paste(Image.open(second).convert("RGB").resize((280, 280)), (560, 60))
    reply = analyze(stub, encode(canvas))
    assert len(reply.faces) == 2
    left, right = sorted(reply.faces, key=lambda f: f.box.x)
    assert left.box.x + left.box.width <= 560 < right.box.x + right.box.width
    assert (
        reply.faces[0].box.width * reply.faces[0].box.height
        >= reply.faces[1].box.width * reply.faces[1].box.height
    )
    assert reply.faces[0].box.x < 450  # the larger face is the one from the 350 px photo

    only_one = analyze(stub, encode(canvas), max_faces=1)
    assert len(only_one.faces) == 1 and only_one.faces[0].box == reply.faces[0].box


def test_whole_image_as_face(inference, photo):
    stub, _ = inference
    reply = analyze(stub, photo.read_bytes(), whole_image_as_face=True)
    assert len(reply.faces) == 1
    box = reply.faces[0].box
    assert (box.x, box.y, box.width, box.height) == (0, 0, 350, 350)
    assert reply.faces[0].detection_score == 1.0


def test_blank_image_has_no_faces(inference):
    stub, _ = inference
    reply = analyze(stub, encode(Image.new("L", (640, 480), 90), "PNG"))
    assert reply.image_width == 640 and len(reply.faces) == 0


def test_test_time_augmentation_gives_probabilities(inference, photo):
    stub, _ = inference
    face = analyze(stub, photo.read_bytes(), test_time_augmentation=True).faces[0]
    assert scores_of(face).sum() == pytest.approx(1.0, abs=1e-5)


@functools.lru_cache(maxsize=1)
def _formats(photo_path):
    rgb = Image.open(photo_path).convert("RGB")
    grey = rgb.convert("L")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(255)
    sixteen = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)  # mode I;16
    frames = [grey, Image.new("L", grey.size, 0)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return {
        "jpeg-rgb": encode(rgb),
        "jpeg-grey": encode(grey),
        "jpeg-cmyk": encode(rgb.convert("CMYK")),
        "png-rgba": encode(rgba, "PNG"),
        "png-palette": encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "png-16bit": encode(sixteen, "PNG"),
        "webp": encode(rgb, "WEBP", quality=90),
        "bmp": encode(rgb, "BMP"),
        "gif-first-frame": gif.getvalue(),
    }


FORMAT_KINDS = [
    "jpeg-rgb",
    "jpeg-grey",
    "jpeg-cmyk",
    "png-rgba",
    "png-palette",
    "png-16bit",
    "webp",
    "bmp",
    "gif-first-frame",
]


@pytest.mark.parametrize("kind", FORMAT_KINDS)
def test_every_supported_format_and_mode_finds_the_face(inference, photo, kind):
    stub, _ = inference
    reply = analyze(stub, _formats(photo)[kind])
    assert (reply.image_width, reply.image_height) == (350, 350)
    assert len(reply.faces) >= 1, kind


def test_exif_orientation_is_applied(inference):
    stub, _ = inference
    source = Image.open(square_photos(1)[0]).convert("RGB")
    wide = Image.new("RGB", (500, 350), (128, 128, 128))
    wide.paste(source, (150, 0))
    # Stored rotated by 90 degrees; EXIF orientation 6 says "rotate 90 clockwise to display".
    stored = wide.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    reply = analyze(stub, encode(stored, exif=exif.tobytes()))
    assert (reply.image_width, reply.image_height) == (500, 350)
    assert len(reply.faces) >= 1
    assert reply.faces[0].box.x >= 100  # the face is on the right, where it was before rotating


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height with (almost) no pixel data: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


@functools.lru_cache(maxsize=1)
def _malformed(photo_path):
    jpeg = photo_path.read_bytes()
    tiff = io.BytesIO()
    Image.new("L", (64, 64)).save(tiff, format="TIFF")
    bomb = io.BytesIO()
    Image.new("1", (9000, 6000)).save(bomb, format="PNG")  # 54 MP in a few KB
    return {
        "empty": (b"", "empty"),
        "not-an-image": (b"hello, this is text and not a picture" * 10, "not a recognised image"),
        "truncated-jpeg": (jpeg[: len(jpeg) // 2], "truncated"),
        "corrupt-png": (_png_header_only(64, 64)[:-12] + b"garbage!", "corrupt|truncated"),
        "too-many-bytes": (jpeg + b"\0" * (11 * 1024 * 1024), "limit is 10,485,760 bytes"),
        "too-many-pixels": (bomb.getvalue(), "megapixels"),
        "decompression-bomb-header": (_png_header_only(30000, 30000), "decompression bomb|megapixels"),
        "unsupported-format": (tiff.getvalue(), "unsupported image format TIFF"),
    }


MALFORMED_KINDS = [
    "empty",
    "not-an-image",
    "truncated-jpeg",
    "corrupt-png",
    "too-many-bytes",
    "too-many-pixels",
    "decompression-bomb-header",
    "unsupported-format",
]


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_input_is_invalid_argument_with_a_clear_message(inference, photo, kind):
    stub, _ = inference
    data, message = _malformed(photo)[kind]
    with pytest.raises(grpc.RpcError) as error:
        analyze(stub, data)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert re.search(message, error.value.details()), error.value.details()


def test_negative_max_faces_is_invalid_argument(inference, photo):
    stub, _ = inference
    with pytest.raises(grpc.RpcError) as error:
        analyze(stub, photo.read_bytes(), max_faces=-1)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_service_still_answers_after_bad_input(inference, photo):
    stub, _ = inference
    for data, _message in _malformed(photo).values():
        try:
            analyze(stub, data)
        except grpc.RpcError:
            pass
    assert len(analyze(stub, photo.read_bytes()).faces) >= 1


def test_analyze_batch_returns_one_outcome_per_image_in_order(inference):
    stub, _ = inference
    good = square_photos(2)
    requests = [
        inference_pb2.AnalyzeRequest(image=good[0].read_bytes()),
        inference_pb2.AnalyzeRequest(image=b"not an image"),
        inference_pb2.AnalyzeRequest(
            image=good[1].read_bytes(), options=common_pb2.AnalyzeOptions(max_faces=1)
        ),
    ]
    reply = stub.AnalyzeBatch(inference_pb2.AnalyzeBatchRequest(requests=requests), timeout=30)
    assert [r.WhichOneof("outcome") for r in reply.results] == ["response", "error", "response"]
    assert reply.results[1].error.code == "INVALID_ARGUMENT"
    assert "not a recognised image" in reply.results[1].error.message
    assert len(reply.results[0].response.faces) >= 1 and len(reply.results[2].response.faces) == 1

    with pytest.raises(grpc.RpcError) as error:
        stub.AnalyzeBatch(inference_pb2.AnalyzeBatchRequest(requests=requests * 11), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_calls_are_batched(inference):
    stub, metrics_port = inference
    before = metric_samples(metrics_port, "inference_classify_batch_size")
    # Pre-cropped faces (whole_image_as_face) cost next to nothing before classification, so the 16
    # concurrent calls reach the micro-batcher within its window (INFERENCE_MAX_WAIT_MS=20 here).
    faces = [encode(Image.open(p).convert("L").resize((96, 96)), "PNG") for p in square_photos(16)]
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda data: analyze(stub, data, whole_image_as_face=True), faces))
    assert all(len(r.faces) >= 1 for r in replies)
    after = metric_samples(metrics_port, "inference_classify_batch_size")
    count = after["inference_classify_batch_size_count"] - before.get(
        "inference_classify_batch_size_count", 0
    )
    singles_key = 'inference_classify_batch_size_bucket{le="1.0"}'
    singles = after[singles_key] - before.get(singles_key, 0)
    crops = after["inference_classify_batch_size_sum"] - before.get("inference_classify_batch_size_sum", 0)
    assert crops >= 16
    assert count < crops, f"{crops:.0f} crops took {count:.0f} forward passes: nothing was batched"
    assert count - singles >= 1, "no forward pass held more than one crop"
    # The per-stage and faces-per-image histograms are exported too.
    stages = metric_samples(metrics_port, "inference_stage_seconds_count")
    assert {
        'inference_stage_seconds_count{stage="decode"}',
        'inference_stage_seconds_count{stage="detect"}',
        'inference_stage_seconds_count{stage="classify"}',
    } <= set(stages)
    assert metric_samples(metrics_port, "inference_faces_per_image_count")


def test_stream_smooths_scores_and_keeps_track_ids(inference):
    stub, _ = inference
    # Two photos whose faces sit in about the same place (one track) but score differently.
    candidates = square_photos(12)
    first = candidates[0]
    reference = analyze(stub, first.read_bytes()).faces[0]

    def overlap(face) -> float:
        a, b = reference.box, face.box
        w = max(0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
        h = max(0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
        return w * h / (a.width * a.height + b.width * b.height - w * h)

    options = []
    for path in candidates[1:]:
        face = analyze(stub, path.read_bytes()).faces[0]
        if overlap(face) > 0.6:
            options.append((np.abs(scores_of(face) - scores_of(reference)).sum(), path))
    second = max(options)[1]
    frames = [first.read_bytes()] * 3 + [second.read_bytes(), b"broken frame", second.read_bytes()]
    raw_first = scores_of(analyze(stub, frames[0]).faces[0])
    raw_second = scores_of(analyze(stub, frames[3]).faces[0])

    def requests():
        for i, data in enumerate(frames):
            yield inference_pb2.AnalyzeStreamRequest(image=data, frame_id=100 + i)

    replies = list(stub.AnalyzeStream(requests(), timeout=60))
    assert [r.frame_id for r in replies] == [100 + i for i in range(len(frames))]
    assert replies[4].error.code == "INVALID_ARGUMENT" and not replies[4].faces
    faces = [r.faces[0] for r in replies if r.faces]
    assert len(faces) == 5
    track_ids = {f.track_id for f in faces}
    assert len(track_ids) == 1 and track_ids.pop() > 0, "one face across frames keeps one track id"
    assert np.abs(raw_second - raw_first).sum() > 0.05, "the two photos should score differently"
    np.testing.assert_allclose(scores_of(faces[2]), raw_first, atol=1e-4)
    smoothed = scores_of(faces[3])
    assert smoothed.sum() == pytest.approx(1.0, abs=1e-5)
    # EMA with alpha 0.4: the first frame of a new expression moves the scores only part of the way.
    np.testing.assert_allclose(smoothed, 0.4 * raw_second + 0.6 * raw_first, atol=1e-3)
    moved = np.abs(scores_of(faces[4]) - raw_first).sum()
    assert np.abs(smoothed - raw_first).sum() < moved <= np.abs(raw_second - raw_first).sum() + 1e-6


def test_get_model_info(inference):
    stub, _ = inference
    info = stub.GetModelInfo(inference_pb2.GetModelInfoRequest(), timeout=10)
    assert list(info.labels) == LABELS
    assert info.backend == "inprocess"
    assert info.input_size == 48
    assert info.name and info.version and info.detector
    assert 0 < info.metrics.accuracy <= 1


def test_photos_directory_has_labels():
    assert (PHOTOS / "labels.csv").exists() and len(photo_labels()) > 300
