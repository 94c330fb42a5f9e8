"""The analysis pipeline: decode -> find faces -> crop and normalise as in training -> classify in batches.

CPU-heavy steps never run on the event loop: decoding, detection and cropping run together in a small
thread pool (`worker_threads`), classification in the micro-batcher's own thread. Admission is bounded:
past `max_pending_images` images in flight a new one is refused at once with Overloaded, so a burst
gets quick RESOURCE_EXHAUSTED answers instead of an ever longer queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter, Histogram

from services.inference.classify import INPUT_SIZE, MicroBatcher, Overloaded
from services.inference.decode import DecodedImage, InvalidImage, decode_image
from services.inference.detect import Face, HaarFaceDetector, crop_face, whole_image_face

STAGE_SECONDS = Histogram(
    "inference_stage_seconds",
    "Time per pipeline stage for one image (classify includes the wait for a micro-batch).",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FACES_PER_IMAGE = Histogram(
    "inference_faces_per_image",
    "Faces found (and returned) per analysed image.",
    buckets=(0, 1, 2, 3, 4, 5, 8, 12, 20, 50),
)
IMAGES_REJECTED = Counter("inference_images_rejected_total", "Images refused, by reason.", ["reason"])

__all__ = ["Analysis", "Analyzer", "BackendUnavailable", "InvalidImage", "Overloaded"]


class BackendUnavailable(RuntimeError):
    """The classifier backend failed for this request; the caller may retry."""


@dataclass(frozen=True)
class Analysis:
    """Faces (largest first) with their probabilities (N, 7), image size and stage times in ms."""

    faces: list[Face]
    scores: np.ndarray
    width: int
    height: int
    decode_ms: float
    detect_ms: float
    classify_ms: float
    total_ms: float


@dataclass(frozen=True)
class _Prepared:
    image: DecodedImage
    faces: list[Face]
    crops: np.ndarray
    decode_ms: float
    detect_ms: float


class Analyzer:
    """Runs the pipeline for concurrent requests; one per service process."""

    def __init__(
        self,
        detector: HaarFaceDetector,
        batcher: MicroBatcher,
        worker_threads: int = 2,
        max_pending_images: int = 64,
        max_image_bytes: int = 10 * 1024 * 1024,
        max_image_pixels: int = 40_000_000,
        default_max_faces: int = 10,
        crop_margin: float = 0.10,
    ) -> None:
        self.detector = detector
        self.batcher = batcher
        self.max_pending_images = max(1, max_pending_images)
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.default_max_faces = max(1, default_max_faces)
        self.crop_margin = crop_margin
        self._pool = concurrent.futures.ThreadPoolExecutor(max(1, worker_threads), "decode-detect")
        self._pending = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def analyze(
        self, data: bytes, max_faces: int = 0, whole_image_as_face: bool = False, tta: bool = False
    ) -> Analysis:
        """Raises InvalidImage (bad input) or Overloaded (too much work in flight)."""
        if max_faces < 0:
            raise InvalidImage(f"max_faces must be >= 0 (0 = service default), got {max_faces}")
        if self._pending >= self.max_pending_images:
            IMAGES_REJECTED.labels("overloaded").inc()
            raise Overloaded(f"{self._pending} images in flight; retry shortly")
        self._pending += 1
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            limit = max_faces or self.default_max_faces
            try:
                prepared = await loop.run_in_executor(
                    self._pool, self._prepare, data, limit, whole_image_as_face
                )
            except InvalidImage:
                IMAGES_REJECTED.labels("invalid").inc()
                raise
            classify_started = time.perf_counter()
            try:
                scores = await self.batcher.classify(prepared.crops, tta)
            except Overloaded:
                IMAGES_REJECTED.labels("overloaded").inc()
                raise
            except Exception as exc:  # the backend failed (e.g. TorchServe down): retryable
                IMAGES_REJECTED.labels("backend").inc()
                raise BackendUnavailable(f"classifier backend failed: {exc}") from exc
            classify_s = time.perf_counter() - classify_started
        finally:
            self._pending -= 1
        STAGE_SECONDS.labels("classify").observe(classify_s)
        FACES_PER_IMAGE.observe(len(prepared.faces))
        return Analysis(
            faces=prepared.faces,
            scores=scores,
            width=prepared.image.width,
            height=prepared.image.height,
            decode_ms=prepared.decode_ms,
            detect_ms=prepared.detect_ms,
            classify_ms=classify_s * 1000,
            total_ms=(time.perf_counter() - started) * 1000,
        )

    def _margin(self, face: Face, image: DecodedImage) -> float:
        # A box that is the whole image (the detector's fallback for face crops) is already loose.
        return 0.0 if (face.width, face.height) == (image.width, image.height) else self.crop_margin

    def _prepare(self, data: bytes, max_faces: int, whole_image_as_face: bool) -> _Prepared:
        """Worker thread: decode, detect and crop."""
        t0 = time.perf_counter()
        image = decode_image(data, self.max_image_bytes, self.max_image_pixels)
        t1 = time.perf_counter()
        if whole_image_as_face:
            faces = [whole_image_face(image.width, image.height)]
            crops = np.stack([crop_face(image.grey, faces[0], 0.0, INPUT_SIZE)])
        else:
            faces = self.detector.detect(image.grey)[:max_faces]
            crops = np.zeros((0, INPUT_SIZE, INPUT_SIZE), np.uint8)
            if faces:
                crops = np.stack(
                    [crop_face(image.grey, f, self._margin(f, image), INPUT_SIZE) for f in faces]
                )
        t2 = time.perf_counter()
        STAGE_SECONDS.labels("decode").observe(t1 - t0)
        STAGE_SECONDS.labels("detect").observe(t2 - t1)
        return _Prepared(image, faces, crops, (t1 - t0) * 1000, (t2 - t1) * 1000)
