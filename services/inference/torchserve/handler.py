"""TorchServe handler for the expression classifier: face crops in, probabilities out, batch-aware.

Request input (one per TorchServe request; TorchServe may hand several requests to one call):
  "crops": an .npy uint8 array (N, 48, 48) of grey face crops (N >= 1),
  "tta":   b"1" to average over test-time augmentations (optional).
Response per request: an .npy float64 array (N, 7) of probabilities in FER-2013 order.

The archive (services/inference/torchserve/build_mar.py) holds the fp32 state_dict, `model_meta.json`
(training's metadata: arch, model_cfg, mean, std, temperature, ...), `fer_models.py` (a copy of
training/models.py, for the architecture) and `scoring.py` (the scoring routine the in-process backend
runs too). Weights are loaded here with weights_only=True: TorchServe 0.12's own loader predates torch
2.6's safer default, and an archive must never be able to run code through pickle.
"""

from __future__ import annotations

import io
import json
import logging
import os

import numpy as np
import torch

log = logging.getLogger(__name__)


class FaceExpressionHandler:
    def __init__(self) -> None:
        self.model = None
        self.meta: dict = {}
        self.initialized = False

    def initialize(self, context) -> None:
        import fer_models  # shipped in the archive beside this file
        import scoring

        self._scoring = scoring
        model_dir = context.system_properties.get("model_dir")
        serialized = context.manifest["model"]["serializedFile"]
        with open(os.path.join(model_dir, "model_meta.json")) as f:
            self.meta = json.load(f)
        torch.set_num_threads(int(os.environ.get("TS_TORCH_THREADS", "1")))
        model = fer_models.create_model(self.meta["arch"], verbose=False, **self.meta.get("model_cfg", {}))
        state = torch.load(os.path.join(model_dir, serialized), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        gpu_id = context.system_properties.get("gpu_id")
        use_gpu = torch.cuda.is_available() and gpu_id is not None
        self.device = torch.device(f"cuda:{gpu_id}" if use_gpu else "cpu")
        self.model = model.float().eval().to(self.device)
        self.initialized = True
        log.info("loaded %s %s on %s", self.meta.get("arch"), self.meta.get("version"), self.device)

    def handle(self, data, context):
        """One response per request; crops of all requests with the same TTA flag share a forward pass."""
        crops, flags, errors = [], [], {}
        for i, request in enumerate(data):
            try:
                payload = request.get("crops") if isinstance(request, dict) else None
                if payload is None:
                    payload = request.get("body") or request.get("data")
                array = np.load(io.BytesIO(bytes(payload)), allow_pickle=False)
                if array.dtype != np.uint8 or array.ndim != 3 or array.shape[1:] != (48, 48):
                    raise ValueError(f"crops must be uint8 (N, 48, 48), got {array.dtype} {array.shape}")
                crops.append(array)
                flags.append(bytes(request.get("tta") or b"0") == b"1")
            except Exception as exc:  # noqa: BLE001 - reported to that request only
                errors[i] = str(exc)
                crops.append(np.zeros((0, 48, 48), np.uint8))
                flags.append(False)

        results: list[np.ndarray | None] = [None] * len(data)
        meta = self.meta
        for tta in (False, True):
            indices = [i for i in range(len(data)) if flags[i] == tta and i not in errors]
            if not indices:
                continue
            batch = np.concatenate([crops[i] for i in indices])
            probs = self._scoring.probabilities(
                self.model,
                batch,
                float(meta["mean"]),
                float(meta["std"]),
                float(meta.get("temperature") or 1.0),
                tta=tta,
            )
            start = 0
            for i in indices:
                results[i] = probs[start : start + len(crops[i])]
                start += len(crops[i])

        out = []
        for i, probs in enumerate(results):
            if probs is None:
                out.append(json.dumps({"error": errors.get(i, "no result")}).encode())
                continue
            buffer = io.BytesIO()
            np.save(buffer, probs, allow_pickle=False)
            out.append(buffer.getvalue())
        return out


_service = FaceExpressionHandler()


def handle(data, context):
    """TorchServe's module-level entry point."""
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
