"""Batch-level augmentation on tensors: one call augments a whole (B,1,H,W) batch in [0,1].

Per-image Python loops are the CPU bottleneck with tiny 48x48 images, so everything here is vectorised:
flip + rotation + scale + translation are folded into ONE affine matrix per image and applied with a
single affine_grid/grid_sample call; photometric jitter and random erasing are masked tensor ops.
Apply BEFORE standardisation (brightness/contrast are defined on [0,1] pixels).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugConfig:
    flip: float = 0.5  # probability of horizontal flip (faces are roughly symmetric)
    rotate: float = 10.0  # max |degrees|
    scale: tuple = (0.9, 1.1)  # zoom range (>1 = zoom in = crop)
    translate: float = 0.1  # max shift as a fraction of image size
    brightness: float = 0.2  # additive, on [0,1] pixels
    contrast: float = 0.2  # multiplicative around the per-image mean
    erase_p: float = 0.5  # random erasing probability
    erase_area: tuple = (0.02, 0.2)
    erase_ratio: tuple = (0.3, 3.3)


def random_affine(x, cfg, gen=None):
    B = x.shape[0]
    dev = x.device

    def u(*shape):
        return torch.rand(*shape, generator=gen, device=dev)

    ang = (u(B) * 2 - 1) * math.radians(cfg.rotate)
    s = cfg.scale[0] + u(B) * (cfg.scale[1] - cfg.scale[0])
    flip = torch.where(u(B) < cfg.flip, -1.0, 1.0)
    tx, ty = [(u(B) * 2 - 1) * cfg.translate * 2 for _ in range(2)]  # grid coords span [-1,1] = 2 units
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    # theta maps output coords -> input coords; dividing by s zooms in for s > 1.
    # Flip negates the x input axis.
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    # 'border' repeats edge pixels instead of inventing black bands the model could learn from.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(x, cfg, gen=None):
    B = x.shape[0]

    def u():
        return torch.rand(B, 1, 1, 1, generator=gen, device=x.device) * 2 - 1

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + cfg.contrast * u()) + mean + cfg.brightness * u()
    return x.clamp_(0, 1)


def random_erase(x, cfg, gen=None, value=None):
    """Erase one random rectangle per selected image (value: per-image mean by default, less distracting)."""
    B, _, H, W = x.shape
    dev = x.device

    def u():
        return torch.rand(B, generator=gen, device=dev)

    area = (cfg.erase_area[0] + u() * (cfg.erase_area[1] - cfg.erase_area[0])) * H * W
    logr = math.log(cfg.erase_ratio[0]) + u() * (math.log(cfg.erase_ratio[1]) - math.log(cfg.erase_ratio[0]))
    r = torch.exp(logr)
    h = torch.sqrt(area * r).clamp(1, H)
    w = torch.sqrt(area / r).clamp(1, W)
    y0 = u() * (H - h)
    x0 = u() * (W - w)
    ys = torch.arange(H, device=dev).view(1, H, 1)
    xs = torch.arange(W, device=dev).view(1, 1, W)
    m = (
        (ys >= y0.view(B, 1, 1))
        & (ys < (y0 + h).view(B, 1, 1))
        & (xs >= x0.view(B, 1, 1))
        & (xs < (x0 + w).view(B, 1, 1))
    )
    m &= (u() < cfg.erase_p).view(B, 1, 1)
    fill = x.mean(dim=(1, 2, 3), keepdim=True) if value is None else torch.full_like(x[:, :1, :1, :1], value)
    return torch.where(m[:, None], fill.expand_as(x), x)


def augment(x, cfg=None, gen=None):
    """Full training augmentation on a [0,1] float batch (B,1,H,W)."""
    cfg = cfg or AugConfig()
    x = random_affine(x, cfg, gen)
    x = color_jitter(x, cfg, gen)
    if cfg.erase_p > 0:
        x = random_erase(x, cfg, gen)
    return x


def occlude(x, frac=0.25, gen=None, value=None):
    """Evaluation robustness probe: erase one random square covering `frac` of each image."""
    B, _, H, W = x.shape
    side = int(round(math.sqrt(frac * H * W)))
    cfg = AugConfig(erase_p=1.0, erase_area=(side * side / (H * W),) * 2, erase_ratio=(1.0, 1.0))
    return random_erase(x, cfg, gen, value)


def mixup_cutmix(x, y_onehot, alpha_mixup=0.0, alpha_cutmix=0.0, gen=None):
    """Batch mixup (or cutmix, chosen 50/50 when both enabled). Returns mixed x and soft targets."""
    use_cut = alpha_cutmix > 0 and (alpha_mixup <= 0 or torch.rand(1, generator=gen).item() < 0.5)
    alpha = alpha_cutmix if use_cut else alpha_mixup
    if alpha <= 0:
        return x, y_onehot
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], generator=gen)
    if use_cut:
        H, W = x.shape[-2:]
        ch, cw = int(H * math.sqrt(1 - lam)), int(W * math.sqrt(1 - lam))
        cy, cx = torch.randint(H, (1,), generator=gen).item(), torch.randint(W, (1,), generator=gen).item()
        y0, y1, x0, x1 = (
            max(cy - ch // 2, 0),
            min(cy + ch // 2, H),
            max(cx - cw // 2, 0),
            min(cx + cw // 2, W),
        )
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (H * W)  # actual pasted area after clipping
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * y_onehot + (1 - lam) * y_onehot[perm]
