"""Inference service process: configuration and wiring."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from emotion.v1 import inference_pb2, inference_pb2_grpc
from services.common.config import ServiceSettings
from services.common.server import GrpcService, run

log = logging.getLogger(__name__)


class InferenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INFERENCE_", extra="ignore", frozen=True)

    port: int = 50053
    metrics_port: int = 9153

    model_path: str = Field(
        "", description="classifier weights (.pt with .json metadata); empty = models/fer_vgg.pt"
    )
    backend: Literal["inprocess", "onnx", "torchserve"] = Field(
        "inprocess", description="where face crops are classified: torch or ONNX Runtime here, or TorchServe"
    )
    onnx_path: str = Field(
        "", description="ONNX file of the onnx backend; empty = the int8 file beside the weights (.int8.onnx)"
    )
    torchserve_addr: str = Field("127.0.0.1:7070", description="TorchServe gRPC inference address")
    torchserve_model: str = Field("fer_expression", description="model name registered in TorchServe")
    torchserve_token: str = Field(
        "", description="TorchServe inference key when its token authorisation is on (empty = off, loopback)"
    )
    torchserve_timeout_s: float = Field(10.0, description="deadline of one TorchServe Predictions call")
    worker_threads: int = Field(2, description="threads that decode, detect and crop (CPU-bound)")
    torch_threads: int = Field(
        1, description="intra-op threads of the in-process classifier (torch or ONNX Runtime)"
    )
    bf16: Literal["auto", "on", "off"] = Field(
        "auto",
        description="bf16 autocast for the in-process classifier; auto = if measured faster at startup",
    )
    max_batch: int = Field(32, description="most face crops classified in one forward pass")
    max_wait_ms: float = Field(2.0, description="longest a crop waits for others to fill a micro-batch")
    max_queue: int = Field(
        512, description="face crops waiting for the classifier beyond which calls are refused"
    )
    max_pending_images: int = Field(
        64, description="images in flight beyond which calls get RESOURCE_EXHAUSTED"
    )
    max_image_bytes: int = Field(10 * 1024 * 1024, description="largest encoded image accepted")
    max_image_pixels: int = Field(40_000_000, description="largest decoded image accepted (pixels)")
    max_faces: int = Field(10, description="faces returned per image when the request says 0")
    max_batch_images: int = Field(32, description="most images in one AnalyzeBatch call")
    crop_margin: float = Field(0.10, description="face box grown by this fraction per side before cropping")
    detect_size: int = Field(192, description="longer side of the copy the face detector scans (pixels)")
    detect_pad_fraction: float = Field(
        0.25, description="border added for a second pass on frame-filling faces"
    )
    detect_scale_factor: float = Field(
        1.2, description="Haar scale step between scanned face sizes; 1.1 finds ~4% more faces, 2x slower"
    )
    detect_min_face_fraction: float = Field(
        0.2, description="smallest face searched, fraction of the longer side"
    )
    detect_fallback_max_side: int = Field(
        512, description="images up to this size with no face found are taken as one face crop (0 = never)"
    )
    stream_alpha: float = Field(0.4, description="EMA weight of the newest frame in AnalyzeStream smoothing")
    stream_min_iou: float = Field(0.3, description="box overlap that continues a face track across frames")


@dataclass
class Engine:
    """What the handlers and the CLI need, built from settings."""

    analyzer: object
    card: object
    backend: str


def weights_path(settings: InferenceSettings) -> Path:
    from training.models import SHIPPED

    return Path(settings.model_path) if settings.model_path else SHIPPED


async def open_engine(settings: InferenceSettings) -> Engine:
    """Load the model (or connect to TorchServe), warm up, start the micro-batcher."""
    import cv2
    import torch

    from services.inference.classify import (
        InProcessClassifier,
        MicroBatcher,
        ModelCard,
        OnnxClassifier,
        TorchServeClassifier,
        bf16_crossover,
    )
    from services.inference.detect import HaarFaceDetector
    from services.inference.pipeline import Analyzer

    cv2.setNumThreads(1)  # parallelism comes from concurrent requests, not from inside one image
    torch.set_num_threads(max(1, settings.torch_threads))
    weights = weights_path(settings)
    meta_path = weights.with_suffix(".json")
    if not meta_path.exists():
        raise FileNotFoundError(f"model metadata {meta_path} not found (set INFERENCE_MODEL_PATH)")
    card = ModelCard.from_meta(json.loads(meta_path.read_text()), str(weights))
    loop = asyncio.get_running_loop()
    served_file = str(weights)
    if settings.backend == "torchserve":
        classifier = TorchServeClassifier(
            settings.torchserve_addr,
            settings.torchserve_model,
            settings.torchserve_timeout_s,
            token=settings.torchserve_token,
        )
    elif settings.backend == "onnx":
        served_file = settings.onnx_path or str(weights.with_suffix(".int8.onnx"))
        classifier = await loop.run_in_executor(
            None, OnnxClassifier, served_file, card, max(1, settings.torch_threads)
        )
    else:
        from training.models import load_shipped_model

        model, _ = await loop.run_in_executor(None, load_shipped_model, str(weights))
        classifier = InProcessClassifier(model, card, bf16=settings.bf16 == "on")
        if settings.bf16 == "auto":
            crossover = await loop.run_in_executor(None, bf16_crossover, classifier)
            classifier.bf16_min_batch = crossover
            log.info("bf16 autocast measured", extra={"bf16_from_batch_size": crossover or "never"})
    detector = HaarFaceDetector(
        detect_size=settings.detect_size,
        pad_fraction=settings.detect_pad_fraction,
        min_face_fraction=settings.detect_min_face_fraction,
        scale_factor=settings.detect_scale_factor,
        fallback_max_side=settings.detect_fallback_max_side,
    )
    batcher = MicroBatcher(classifier, settings.max_batch, settings.max_wait_ms, settings.max_queue)
    batcher.start()
    analyzer = Analyzer(
        detector,
        batcher,
        worker_threads=settings.worker_threads,
        max_pending_images=settings.max_pending_images,
        max_image_bytes=settings.max_image_bytes,
        max_image_pixels=settings.max_image_pixels,
        default_max_faces=settings.max_faces,
        crop_margin=settings.crop_margin,
    )
    await _warm_up(analyzer)
    log.info(
        "model ready",
        extra={
            "model": card.name,
            "version": card.version,
            "backend": classifier.backend,
            "weights": served_file,
        },
    )
    return Engine(analyzer, card, classifier.backend)


async def _warm_up(analyzer) -> None:
    """One pass through every stage so the first real request does not pay for lazy initialisation."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64), 127, np.uint8)).save(buffer, format="PNG")
    await analyzer.analyze(buffer.getvalue(), whole_image_as_face=True)


async def close_engine(engine: Engine) -> None:
    await engine.analyzer.batcher.close()
    engine.analyzer.close()


def build(settings: InferenceSettings) -> GrpcService:
    from services.inference.handlers import InferenceHandlers

    handlers = InferenceHandlers(
        max_batch_images=settings.max_batch_images,
        stream_alpha=settings.stream_alpha,
        stream_min_iou=settings.stream_min_iou,
    )
    engine: Engine | None = None

    def register(server) -> list[str]:
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(handlers, server)
        return [inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name]

    async def startup() -> None:
        nonlocal engine
        engine = await open_engine(settings)
        handlers.bind(engine.analyzer, engine.card, engine.backend)

    async def shutdown() -> None:
        if engine is not None:
            await close_engine(engine)

    return GrpcService(
        name="inference", settings=settings, register=register, startup=startup, shutdown=shutdown
    )


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(build(InferenceSettings()))
