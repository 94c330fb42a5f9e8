"""The pipeline's parts in-process with the real model, detector and batcher: load shedding, batching
bounds, decoding details and the stream smoother."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from services.inference.classify import InProcessClassifier, MicroBatcher, ModelCard, Overloaded
from services.inference.decode import decode_image
from services.inference.detect import Face, HaarFaceDetector, crop_face
from services.inference.pipeline import Analyzer
from services.inference.smoothing import FaceTracker
from tests.inference.conftest import encode, square_photos


@pytest.fixture(scope="module")
def classifier(model_weights):
    import torch

    from training.models import load_shipped_model

    torch.set_num_threads(1)
    model, meta = load_shipped_model(str(model_weights))
    return InProcessClassifier(model, ModelCard.from_meta(meta))


@pytest.mark.asyncio
async def test_images_beyond_the_in_flight_limit_are_refused_at_once(classifier):
    batcher = MicroBatcher(classifier, max_batch=8, max_wait_ms=1)
    batcher.start()
    analyzer = Analyzer(HaarFaceDetector(), batcher, worker_threads=1, max_pending_images=2)
    photo = square_photos(1)[0].read_bytes()
    try:
        outcomes = await asyncio.gather(*(analyzer.analyze(photo) for _ in range(6)), return_exceptions=True)
        refused = [o for o in outcomes if isinstance(o, Overloaded)]
        served = [o for o in outcomes if not isinstance(o, BaseException)]
        assert len(served) == 2 and len(refused) == 4
        # Once the burst has drained, the next image is served again.
        assert len((await analyzer.analyze(photo)).faces) >= 1
    finally:
        await batcher.close()
        analyzer.close()


@pytest.mark.asyncio
async def test_classifier_queue_is_bounded_and_batches_concurrent_crops(classifier):
    batcher = MicroBatcher(classifier, max_batch=64, max_wait_ms=50, max_queue=10)
    batcher.start()
    crops = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    try:
        outcomes = await asyncio.gather(*(batcher.classify(crops) for _ in range(4)), return_exceptions=True)
        assert sum(isinstance(o, Overloaded) for o in outcomes) == 2  # 4 + 4 crops fit in 10, the rest not
        results = [o for o in outcomes if isinstance(o, np.ndarray)]
        # Batched or not, every request gets exactly what it would get alone.
        np.testing.assert_allclose(results[0], classifier.predict(crops), atol=1e-5)
        np.testing.assert_allclose(results[0].sum(axis=1), 1.0, atol=1e-6)
    finally:
        await batcher.close()


def test_sixteen_bit_grey_is_scaled_not_clipped():
    ramp = np.arange(256, dtype=np.uint16).reshape(16, 16) * 257
    grey = decode_image(encode(Image.fromarray(ramp), "PNG")).grey
    np.testing.assert_array_equal(grey, np.arange(256, dtype=np.uint8).reshape(16, 16))


def test_transparency_is_flattened_onto_white():
    clear = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    assert decode_image(encode(clear, "PNG")).grey.min() == 255


def test_gif_first_frame_is_used():
    frames = [Image.new("L", (32, 32), 200), Image.new("L", (32, 32), 10)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert abs(int(decode_image(buffer.getvalue()).grey.mean()) - 200) <= 2


def test_crop_is_square_and_padded_at_the_border():
    grey = np.full((100, 200), 50, np.uint8)
    grey[:, :10] = 250
    crop = crop_face(grey, Face(0, 10, 40, 40, 1.0), margin=0.25, size=48)
    assert crop.shape == (48, 48)
    assert crop[:, 0].mean() > 200  # the left edge is replicated into the part outside the image


def test_tracker_keeps_ids_and_smooths():
    tracker = FaceTracker(alpha=0.5, min_iou=0.3)
    a, b = np.eye(7)[3], np.eye(7)[0]
    left, right = Face(0, 0, 100, 100, 1.0), Face(300, 0, 100, 100, 1.0)
    first = tracker.update([left, right], np.stack([a, b]))
    second = tracker.update([Face(5, 0, 100, 100, 1.0)], np.stack([b]))
    assert first[0][0] != first[1][0]
    assert second[0][0] == first[0][0]
    np.testing.assert_allclose(second[0][1], 0.5 * a + 0.5 * b)
    third = tracker.update([Face(600, 600, 50, 50, 1.0)], np.stack([a]))
    assert third[0][0] not in (first[0][0], first[1][0])
