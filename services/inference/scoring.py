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


# Test-time augmentation: the model card's TTA (training/tta.py DEFAULT_SET, "flip_shift5"), so the service's
# option scores what the card reports: the crop and its mirror, each centred and shifted 2 px up, down, left
# and right (edges replicated, as the training augmentation fills them).
TTA_SHIFTS = ((0, 0), (2, 0), (-2, 0), (0, 2), (0, -2))
TTA_VIEWS = 2 * len(TTA_SHIFTS)


def tta_variants(x: torch.Tensor) -> list[torch.Tensor]:
    """The TTA_VIEWS views of a standardised batch (N, 1, 48, 48), in training/tta.py's order."""
    height, width = x.shape[-2:]
    views = []
    for image in (x, torch.flip(x, dims=[3])):
        padded = torch.nn.functional.pad(image, (2, 2, 2, 2), mode="replicate")
        views += [padded[..., 2 - dy : 2 - dy + height, 2 - dx : 2 - dx + width] for dy, dx in TTA_SHIFTS]
    return views


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
    batch (B, 1, 48, 48) to logits (B, 7) as numpy; with TTA, of the views' mean logits (as training.evaluate
    scores TTA, which the temperature and the card's figures were measured with)."""
    if len(crops) == 0:
        return np.zeros((0, 7))
    x = normalise(crops, mean, std)
    if not tta:
        return softmax(forward(x), temperature)
    logits = forward(torch.cat(tta_variants(x)).contiguous())
    return softmax(logits.reshape(TTA_VIEWS, len(crops), -1).mean(axis=0), temperature)
