"""Face crops -> expression probabilities: the one scoring routine every backend runs.

Self-contained (numpy and torch only) because the TorchServe model archive ships this file next to its
handler, so TorchServe scores exactly as the in-process backend does. The preprocessing is training's
(training/data.py `normalize`): x = (pixels / 255 - mean) / std with the model's scalar mean/std, and
probabilities = softmax(logits / temperature).
"""

from __future__ import annotations

import numpy as np
import torch


def normalise(crops: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, 48, 48) -> float32 (N, 1, 48, 48), exactly training.data.normalize."""
    x = crops.astype(np.float32) / 255.0
    return torch.from_numpy(((x - mean) / std)[:, None])


def tta_variants(x: torch.Tensor) -> list[torch.Tensor]:
    """Test-time augmentation: the crop, its mirror image and two 2-pixel shifts (edges replicated)."""
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    return [x, torch.flip(x, dims=[3]), padded[:, :, :-4, :-4], padded[:, :, 4:, 4:]]


def softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@torch.inference_mode()
def probabilities(
    model: torch.nn.Module,
    crops: np.ndarray,
    mean: float,
    std: float,
    temperature: float = 1.0,
    tta: bool = False,
    bf16: bool = False,
) -> np.ndarray:
    """float64 (N, 7) probabilities of a torch model for uint8 crops (N, 48, 48); see probabilities_with."""
    device = next(model.parameters()).device  # a GPU under TorchServe on GPU nodes

    def forward(batch: torch.Tensor) -> np.ndarray:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return model(batch.to(device)).float().cpu().numpy()

    return probabilities_with(forward, crops, mean, std, temperature, tta)


def probabilities_with(forward, crops, mean, std, temperature=1.0, tta=False) -> np.ndarray:
    """float64 (N, 7) probabilities for uint8 crops (N, 48, 48), where `forward` maps a standardised float32
    batch (B, 1, 48, 48) to logits (B, 7) as numpy; with TTA, the mean over the variants."""
    if len(crops) == 0:
        return np.zeros((0, 7))
    x = normalise(crops, mean, std)
    variants = tta_variants(x) if tta else [x]
    logits = forward(torch.cat(variants) if tta else x)
    per_variant = logits.reshape(len(variants), len(crops), -1)
    return np.mean([softmax(v, temperature) for v in per_variant], axis=0)
