"""Expression classifiers (in-process torch or ONNX Runtime, or TorchServe) and the micro-batcher in front.

Every backend takes 48x48 grey uint8 face crops and returns probabilities (N, 7) in FER-2013 order. The
preprocessing contract is training's (training/data.py `normalize`): x = (pixels / 255 - mean) / std
with the scalar mean/std from the model's metadata; probabilities = softmax(logits / temperature). Every
backend runs that through services/inference/scoring.py (TorchServe's archive ships the same file).

The micro-batcher lets concurrent requests share one forward pass: the first crop to arrive opens a batch
that closes when it holds `max_batch` crops or `max_wait_ms` has passed, whichever comes first; while one
batch runs, the next one fills. Its queue is bounded: past `max_queue` waiting crops it refuses at once
(Overloaded -> RESOURCE_EXHAUSTED) instead of letting latency grow without limit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from prometheus_client import Histogram

from services.inference import scoring
from training.models import native_bf16

log = logging.getLogger(__name__)

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 48

BATCH_SIZE = Histogram(
    "inference_classify_batch_size",
    "Face crops classified together in one forward pass (micro-batch size).",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128),
)


class Overloaded(RuntimeError):
    """The classifier queue is full; the caller should back off and retry."""


class Classifier(Protocol):
    """A backend: uint8 crops (N, 48, 48) -> float64 probabilities (N, 7). Called from a worker thread."""

    backend: str

    def predict(self, crops: np.ndarray, tta: bool) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ModelCard:
    """What the service reports about the model (GetModelInfo) and needs to preprocess for it."""

    name: str
    version: str
    labels: tuple[str, ...]
    mean: float
    std: float
    temperature: float
    metrics: dict = field(default_factory=dict)
    path: str = ""

    @classmethod
    def from_meta(cls, meta: dict, path: str = "") -> ModelCard:
        labels = tuple(meta.get("labels") or LABELS)
        if labels != LABELS:
            raise ValueError(f"model labels {labels} are not the FER-2013 order {LABELS}")
        return cls(
            name=str(meta.get("arch", "unknown")),
            version=str(meta.get("version", "unknown")),
            labels=labels,
            mean=float(meta["mean"]),
            std=float(meta["std"]),
            temperature=float(meta.get("temperature") or 1.0),
            metrics=dict(meta.get("metrics") or {}),
            path=path,
        )


class InProcessClassifier:
    """The torch model in this process.

    bf16 autocast pays off only for larger batches (casting the weights costs a fixed amount per forward
    pass), so it is used for batches of at least `bf16_min_batch` crops; 0 = never.
    """

    backend = "inprocess"

    def __init__(self, model: torch.nn.Module, card: ModelCard, bf16: bool = False, bf16_min_batch: int = 1):
        self.model = model.eval()
        self.card = card
        self.bf16_min_batch = bf16_min_batch if bf16 else 0

    def predict(self, crops: np.ndarray, tta: bool = False) -> np.ndarray:
        card = self.card
        rows = len(crops) * (scoring.TTA_VIEWS if tta else 1)
        bf16 = 0 < self.bf16_min_batch <= rows
        return scoring.probabilities(self.model, crops, card.mean, card.std, card.temperature, tta, bf16)

    def close(self) -> None:
        pass


class OnnxClassifier:
    """The model's ONNX export (fp32 or int8, training/onnx_export.py) under ONNX Runtime in this process.

    On CPUs without native bf16 (AVX2-only) ONNX Runtime is the fast way to serve: on a 2-core AMD EPYC the
    int8 file scores a face in 2.0 ms against torch fp32's 5.7 ms (models/MODEL_CARD.md).
    """

    backend = "onnx"

    def __init__(self, path: str, card: ModelCard, threads: int = 1) -> None:
        from training.onnx_export import OnnxModule

        if not Path(path).exists():
            raise FileNotFoundError(f"ONNX model {path} not found (set INFERENCE_ONNX_PATH)")
        self.model = OnnxModule(path, threads)
        self.card = card

    def _logits(self, batch: torch.Tensor) -> np.ndarray:
        return self.model(batch).numpy()

    def predict(self, crops: np.ndarray, tta: bool = False) -> np.ndarray:
        card = self.card
        return scoring.probabilities_with(self._logits, crops, card.mean, card.std, card.temperature, tta)

    def close(self) -> None:
        pass


class TorchServeClassifier:
    """Sends crops to TorchServe's gRPC inference API (handler: services/inference/torchserve/handler.py).

    One Predictions call carries a whole micro-batch as an .npy uint8 array (N, 48, 48) under input key
    "crops" and "tta" = b"1" for test-time augmentation; TorchServe's own batching may merge such calls
    from several service replicas. The reply is .npy float64 probabilities (N, 7).
    """

    backend = "torchserve"

    def __init__(self, target: str, model_name: str, timeout_s: float = 10.0, token: str = "") -> None:
        import grpc

        from services.inference.torchserve.protos import load_inference_stubs

        self._pb2, pb2_grpc = load_inference_stubs()
        self._channel = grpc.insecure_channel(target)
        self._stub = pb2_grpc.InferenceAPIsServiceStub(self._channel)
        self.model_name = model_name
        self.timeout_s = timeout_s
        # TorchServe's inference key (key_file.json), when token authorisation is on.
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None

    def predict(self, crops: np.ndarray, tta: bool = False) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(LABELS)))
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(crops, dtype=np.uint8), allow_pickle=False)
        request = self._pb2.PredictionsRequest(
            model_name=self.model_name, input={"crops": buffer.getvalue(), "tta": b"1" if tta else b"0"}
        )
        reply = self._stub.Predictions(request, timeout=self.timeout_s, metadata=self._metadata)
        probs = np.load(io.BytesIO(reply.prediction), allow_pickle=False)
        if probs.shape != (len(crops), len(LABELS)):
            raise RuntimeError(f"TorchServe returned shape {probs.shape} for {len(crops)} crops")
        return probs

    def close(self) -> None:
        self._channel.close()


@dataclass
class _Pending:
    crops: np.ndarray
    tta: bool
    future: asyncio.Future
    enqueued: float


class MicroBatcher:
    """Collects crops from concurrent requests into batches for one classifier (see the module doc)."""

    def __init__(
        self,
        classifier: Classifier,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 512,
        concurrency: int = 1,
    ) -> None:
        self.classifier = classifier
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.max_queue = max(1, max_queue)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._queued_crops = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(max(1, concurrency), "classify")
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="micro-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._executor.shutdown(wait=True)
        self.classifier.close()

    async def classify(self, crops: np.ndarray, tta: bool = False) -> np.ndarray:
        """Probabilities (N, 7) for uint8 crops (N, 48, 48); raises Overloaded when the queue is full."""
        if len(crops) == 0:
            return np.zeros((0, len(LABELS)))
        if self._queued_crops + len(crops) > self.max_queue:
            raise Overloaded(f"classifier queue full ({self._queued_crops} face crops waiting)")
        future = asyncio.get_running_loop().create_future()
        self._queued_crops += len(crops)
        self._queue.put_nowait(_Pending(crops, tta, future, time.perf_counter()))
        return await future

    async def _collect(self) -> None:
        while True:
            # Wait for a free classifier slot before opening the next batch: crops that arrive while
            # every slot is busy queue up and join it, which is what makes batches grow with load.
            await self._slots.acquire()
            try:
                first = await self._queue.get()
            except BaseException:
                self._slots.release()
                raise
            batch, size = [first], len(first.crops)
            deadline = time.perf_counter() + self.max_wait_s
            while size < self.max_batch:
                remaining = deadline - time.perf_counter()
                try:
                    item = (
                        self._queue.get_nowait()
                        if remaining <= 0
                        else await asyncio.wait_for(self._queue.get(), remaining)
                    )
                except (TimeoutError, asyncio.QueueEmpty):
                    break
                batch.append(item)
                size += len(item.crops)
            self._queued_crops -= size
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Pending]) -> None:
        try:
            live = [p for p in batch if not p.future.cancelled()]
            loop = asyncio.get_running_loop()
            for tta in (False, True):
                group = [p for p in live if p.tta == tta]
                if not group:
                    continue
                crops = np.concatenate([p.crops for p in group])
                BATCH_SIZE.observe(len(crops))
                try:
                    probs = await loop.run_in_executor(self._executor, self.classifier.predict, crops, tta)
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    log.exception("classification failed", extra={"batch": len(crops)})
                    for p in group:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                start = 0
                for p in group:
                    if not p.future.done():
                        p.future.set_result(probs[start : start + len(p.crops)])
                    start += len(p.crops)
        finally:
            self._slots.release()


def bf16_crossover(classifier: InProcessClassifier, sizes=(1, 2, 4, 8, 16), repeats: int = 3) -> int:
    """Smallest batch size from which bf16 autocast is >10% faster than fp32 here; 0 if none is. Without
    native bf16 the answer is 0 unmeasured: emulated bf16 is ~8x slower there, so timing it only costs
    start-up time and lets a noisy timing pick it."""
    if not native_bf16():
        return 0
    model, card = classifier.model, classifier.card
    rng = np.random.default_rng(0)
    for size in sizes:
        crops = rng.integers(0, 256, (size, INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
        best = {}
        for bf16 in (False, True):
            times = []
            for _ in range(repeats + 1):  # the first run warms up
                start = time.perf_counter()
                scoring.probabilities(model, crops, card.mean, card.std, card.temperature, bf16=bf16)
                times.append(time.perf_counter() - start)
            best[bf16] = min(times[1:])
        if best[False] > 1.1 * best[True]:
            return size
    return 0
