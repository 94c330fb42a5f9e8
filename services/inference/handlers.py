"""InferenceService RPC handlers: protobuf in and out around the pipeline.

InvalidImage -> INVALID_ARGUMENT with its message; Overloaded -> RESOURCE_EXHAUSTED (retry later). In
AnalyzeBatch and AnalyzeStream a bad image becomes that item's ImageError and the call goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
import numpy as np

from emotion.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from services.inference.classify import INPUT_SIZE, LABELS, ModelCard, Overloaded
from services.inference.decode import InvalidImage
from services.inference.pipeline import Analysis, Analyzer, BackendUnavailable
from services.inference.smoothing import FaceTracker

log = logging.getLogger(__name__)

EMOJI = {
    "angry": "\N{ANGRY FACE}",
    "disgust": "\N{NAUSEATED FACE}",
    "fear": "\N{FEARFUL FACE}",
    "happy": "\N{GRINNING FACE}",
    "sad": "\N{CRYING FACE}",
    "surprise": "\N{FACE WITH OPEN MOUTH}",
    "neutral": "\N{NEUTRAL FACE}",
}


def face_result(face, scores: np.ndarray, track_id: int = 0) -> common_pb2.FaceResult:
    top = int(np.argmax(scores))
    return common_pb2.FaceResult(
        box=common_pb2.Box(x=face.x, y=face.y, width=face.width, height=face.height),
        scores=common_pb2.ExpressionScores(
            **{label: float(p) for label, p in zip(LABELS, scores, strict=True)}
        ),
        dominant=top + 1,  # Expression enum value = FER-2013 label + 1
        emoji=EMOJI[LABELS[top]],
        detection_score=float(face.score),
        track_id=track_id,
    )


def timings(analysis: Analysis) -> common_pb2.StageTimings:
    return common_pb2.StageTimings(
        decode_ms=analysis.decode_ms,
        detect_ms=analysis.detect_ms,
        classify_ms=analysis.classify_ms,
        total_ms=analysis.total_ms,
    )


IMAGE_ERRORS = (InvalidImage, Overloaded, BackendUnavailable)


def status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """gRPC status for a per-image failure: bad input, load shedding, or a failed backend."""
    if isinstance(exc, InvalidImage):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, Overloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"inference service overloaded, retry shortly: {exc}"
    return grpc.StatusCode.UNAVAILABLE, str(exc)


def image_error(exc: Exception) -> common_pb2.ImageError:
    code, message = status_of(exc)
    return common_pb2.ImageError(code=code.name, message=message)


class InferenceHandlers(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(
        self, max_batch_images: int = 32, stream_alpha: float = 0.4, stream_min_iou: float = 0.3
    ) -> None:
        self.max_batch_images = max_batch_images
        self.stream_alpha = stream_alpha
        self.stream_min_iou = stream_min_iou
        self.analyzer: Analyzer | None = None
        self.card: ModelCard | None = None
        self.backend = ""

    def bind(self, analyzer: Analyzer, card: ModelCard, backend: str) -> None:
        """Called once the model is loaded; until then every call gets UNAVAILABLE (health: NOT_SERVING)."""
        self.analyzer, self.card, self.backend = analyzer, card, backend

    async def _ensure_ready(self, context) -> None:
        if self.analyzer is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the model is still loading; retry shortly")

    async def _analyze(self, request: inference_pb2.AnalyzeRequest) -> Analysis:
        options = request.options
        return await self.analyzer.analyze(
            request.image,
            max_faces=options.max_faces,
            whole_image_as_face=options.whole_image_as_face,
            tta=options.test_time_augmentation,
        )

    def _response(self, analysis: Analysis) -> inference_pb2.AnalyzeResponse:
        return inference_pb2.AnalyzeResponse(
            faces=[face_result(f, s) for f, s in zip(analysis.faces, analysis.scores, strict=True)],
            image_width=analysis.width,
            image_height=analysis.height,
            timings=timings(analysis),
            model_version=self.card.version,
        )

    async def Analyze(self, request, context):
        await self._ensure_ready(context)
        try:
            return self._response(await self._analyze(request))
        except IMAGE_ERRORS as exc:
            code, message = status_of(exc)
            await context.abort(code, message)

    async def AnalyzeBatch(self, request, context):
        await self._ensure_ready(context)
        if len(request.requests) > self.max_batch_images:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{len(request.requests)} images in one batch; the limit is {self.max_batch_images}",
            )

        async def one(item) -> inference_pb2.AnalyzeBatchResult:
            try:
                return inference_pb2.AnalyzeBatchResult(response=self._response(await self._analyze(item)))
            except IMAGE_ERRORS as exc:
                return inference_pb2.AnalyzeBatchResult(error=image_error(exc))

        results = await asyncio.gather(*(one(item) for item in request.requests))
        return inference_pb2.AnalyzeBatchResponse(results=results)

    async def AnalyzeStream(
        self, request_iterator, context
    ) -> AsyncIterator[inference_pb2.AnalyzeStreamResponse]:
        await self._ensure_ready(context)
        tracker = FaceTracker(alpha=self.stream_alpha, min_iou=self.stream_min_iou)
        options = None
        async for frame in request_iterator:
            if options is None:
                options = frame.options  # read from the first frame only, as the contract says
            try:
                analysis = await self.analyzer.analyze(
                    frame.image,
                    max_faces=options.max_faces,
                    whole_image_as_face=options.whole_image_as_face,
                    tta=options.test_time_augmentation,
                )
            except IMAGE_ERRORS as exc:
                yield inference_pb2.AnalyzeStreamResponse(frame_id=frame.frame_id, error=image_error(exc))
                continue
            smoothed = tracker.update(analysis.faces, analysis.scores)
            yield inference_pb2.AnalyzeStreamResponse(
                frame_id=frame.frame_id,
                faces=[face_result(f, s, tid) for f, (tid, s) in zip(analysis.faces, smoothed, strict=True)],
                timings=timings(analysis),
            )

    async def GetModelInfo(self, request, context):
        await self._ensure_ready(context)
        figures = model_figures(self.card.metrics)
        return inference_pb2.GetModelInfoResponse(
            name=self.card.name,
            version=self.card.version,
            labels=list(self.card.labels),
            backend=self.backend,
            detector=self.analyzer.detector.name,
            metrics=inference_pb2.ModelMetrics(**figures),
            input_size=INPUT_SIZE,
        )


def model_figures(metrics: dict) -> dict:
    """ModelMetrics fields from the model card's metrics, whatever their exact spelling.

    Accepts flat figures ({"split": "FER-2013 PublicTest", "accuracy": ..., "accuracy_tta": ...}), figures
    nested per split ({"PublicTest": {"accuracy": ...}}) and prefixed keys ("PublicTest_accuracy_bf16").
    """
    if not isinstance(metrics, dict):
        return {}
    split = str(metrics.get("split", ""))
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            for inner, number in value.items():
                if isinstance(number, (int, float)) and inner not in flat:
                    flat[inner] = number
                    split = split or str(value.get("split", key))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = value

    def pick(*, wanted: str, tta: bool) -> float | None:
        for key, value in flat.items():
            lowered = key.lower()
            if wanted in lowered and ("tta" in lowered) == tta:
                return float(value)
        return None

    out: dict = {}
    for field, wanted, tta in (
        ("accuracy", "acc", False),
        ("accuracy_tta", "acc", True),
        ("macro_f1", "macro_f1", False),
        ("ece", "ece", False),
    ):
        value = pick(wanted=wanted, tta=tta)
        if value is not None:
            out[field] = value
    if not split:
        prefixed = next((k for k in flat if "_acc" in k.lower()), "")
        split = prefixed.split("_acc")[0] if prefixed else ""
    if split:
        out["split"] = split
    return out
