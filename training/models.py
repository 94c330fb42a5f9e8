"""Model zoo for 1x48x48 grey faces -> 7 emotion logits, with a timm-style registry.

    @register_model("name")  def builder(**cfg) -> nn.Module
    model = create_model("fer_vgg", width=32)      # prints params and multiply-adds

Every model exposes forward_features(x) -> embedding (B, D) and forward_head(emb) -> logits, so the
Island/centre loss can work on the embedding without knowing the architecture.

load_shipped_model(path=None) -> (model, meta) is the API the inference service imports.
Keep this file self-contained (torch + stdlib only): the TorchServe archive ships a copy of it alone.
"""

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 7
_REGISTRY = {}


def register_model(name):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models():
    return sorted(_REGISTRY)


def create_model(name, verbose=True, **cfg):
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {list_models()}")
    model = _REGISTRY[name](**cfg)
    if verbose:
        p, macs = count_params(model), count_macs(model)
        print(f"[model] {name}: {p / 1e6:.2f} M params, {macs / 1e6:.1f} M multiply-adds per 1x48x48 image")
    return model


def count_params(model):
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model, shape=(1, 1, 48, 48)):
    """Multiply-adds of conv and linear layers for one image, via forward hooks (good enough to compare)."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total[0] += (
                out.numel()
                // out.shape[0]
                * (m.in_channels // m.groups)
                * m.kernel_size[0]
                * m.kernel_size[1]
            )
        elif isinstance(m, nn.Linear):
            total[0] += m.in_features * m.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    model(torch.zeros(shape))
    model.train(was_training)
    for h in hs:
        h.remove()
    return total[0]


class FERModel(nn.Module):
    """Base: forward = head(features(x))."""

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


# ----------------------------------------------------------------------------------------------------
# VGG19 as in the seed paper: 16 conv3x3 (stride 1, pad 1) + ReLU, 5 max-pools, GAP to 512, 3 FC + 2 dropout.
# `width` and `init` serve the short-schedule reproductions (docs/EXPERIMENTS.md); defaults are the paper's.


@register_model("vgg19_seed")
class VGG19Seed(FERModel):
    # channels of the paper's VGG19 ("M" = 2x2 max-pool); `width` scales them (64 = the paper's)
    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"] + [512, 512, 512, 512, "M"] * 2

    def __init__(
        self,
        hidden=4096,
        dropout=0.5,
        num_classes=NUM_CLASSES,
        in_chans=1,
        kernel_size=3,
        width=64,
        init="default",
    ):
        super().__init__()
        # kernel_size 3 (the paper's) or 2 (its Table 6 ablation). Every conv keeps the spatial size:
        # padding k//2 for odd k; for even k padding="same", where PyTorch pads the extra pixel on the
        # right/bottom only. So the 48 -> 24 -> 12 -> 6 -> 3 -> 1 pooling chain is unchanged.
        pad = kernel_size // 2 if kernel_size % 2 else "same"
        layers, c = [], in_chans
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))  # 48 -> 24 -> 12 -> 6 -> 3 -> 1
            else:
                v = v * width // 64
                layers += [nn.Conv2d(c, v, kernel_size, 1, pad), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(c, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self.embed_dim = c
        if init == "kaiming":
            # He et al. 2015: keeps activations from vanishing through 16 plain ReLU convolutions, which
            # PyTorch's default (kaiming_uniform with a=sqrt(5), ~1/3 the variance) does not.
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m is not self.classifier[-1]:
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        elif init != "default":
            raise ValueError(f"init must be 'default' or 'kaiming', not {init!r}")

    def forward_features(self, x):
        return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    def forward_head(self, z):
        return self.classifier(z)


# ----------------------------------------------------------------------------------------------------
# The shipped model: VGG-style with BatchNorm, fewer channels. 4 stages of conv-BN-ReLU blocks
# (48 -> 24 -> 12 -> 6 -> 3), then the 3x3 map is flattened (keeps where-in-the-face information that a
# global pool would throw away) into a small MLP head.


def conv_bn(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


@register_model("fer_vgg")
class FERVGG(FERModel):
    def __init__(
        self,
        width=32,
        depths=(2, 2, 3, 3),
        hidden=256,
        dropout=0.4,
        num_classes=NUM_CLASSES,
        in_chans=1,
        drop_stage=0.0,
    ):
        super().__init__()
        chans = [width, width * 2, width * 4, width * 8]
        stages, c = [], in_chans
        for i, (ch, d) in enumerate(zip(chans, depths, strict=True)):
            blk = []
            for _ in range(d):
                blk.append(conv_bn(c, ch))
                c = ch
            blk.append(nn.MaxPool2d(2))
            if drop_stage > 0 and i > 0:
                blk.append(nn.Dropout2d(drop_stage))
            stages.append(nn.Sequential(*blk))
        self.stages = nn.Sequential(*stages)
        self.embed_dim = hidden
        self.neck = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c * 9, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward_features(self, x):
        return self.neck(self.stages(x))

    def forward_head(self, z):
        return self.head(z)


# ----------------------------------------------------------------------------------------------------
# ResNet-18 adapted to 48x48: 3x3 stride-1 stem and no stem max-pool (a 7x7/2 stem + pool would shrink
# 48 px to 12 px before the first block). Optional PSA (pyramid split attention, EPSANet) blocks.


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, mixer=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = mixer(cout) if mixer else nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + idt, inplace=True)


class PSA(nn.Module):
    """Pyramid Split Attention: split channels into S groups convolved with kernels 3/5/7/9 (grouped so
    cost stays low), squeeze-excite each branch, softmax the S attention vectors across branches, reweight."""

    def __init__(self, ch, kernels=(3, 5, 7, 9), groups=(1, 4, 8, 16), reduction=4):
        super().__init__()
        S = len(kernels)
        assert ch % S == 0
        sp = ch // S
        self.convs = nn.ModuleList(
            nn.Conv2d(ch, sp, k, 1, k // 2, groups=g if ch % g == 0 and sp % g == 0 else 1, bias=False)
            for k, g in zip(kernels, groups, strict=True)
        )
        r = max(sp // reduction, 4)
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(sp, r, 1), nn.ReLU(inplace=True), nn.Conv2d(r, sp, 1)
        )
        self.S = S

    def forward(self, x):
        feats = torch.stack([c(x) for c in self.convs], 1)  # B,S,C/S,H,W
        att = torch.stack([self.se(feats[:, i]) for i in range(self.S)], 1)  # B,S,C/S,1,1
        att = att.softmax(dim=1)
        return (feats * att).flatten(1, 2)


class ResNet(FERModel):
    def __init__(
        self, layers=(2, 2, 2, 2), width=64, mixer=None, num_classes=NUM_CLASSES, in_chans=1, dropout=0.2
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks, c = [], width
        for i, n in enumerate(layers):
            cout = width * 2**i
            for j in range(n):
                blocks.append(BasicBlock(c, cout, 2 if (j == 0 and i > 0) else 1, mixer))
                c = cout
        self.layers = nn.Sequential(*blocks)
        self.embed_dim = c
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward_features(self, x):
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.adaptive_avg_pool2d(self.layers(x), 1).flatten(1)

    def forward_head(self, z):
        return self.fc(self.drop(z))


def load_pretrained_resnet(model, path):
    """Load torchvision-style ResNet-18 weights from a LOCAL file. RGB stem weights are summed to 1 channel
    when shapes allow (a 7x7 ImageNet stem does not fit our 3x3 stem and is skipped); the fc is skipped.
    Block names differ from torchvision (layerX.Y -> layers.K), so keys are remapped by position."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd)
    remap, k = {}, 0
    for li in range(1, 5):
        nb = len({key.split(".")[1] for key in sd if key.startswith(f"layer{li}.")})
        for b in range(nb):
            remap[f"layer{li}.{b}."] = f"layers.{k}."
            k += 1
    own = model.state_dict()
    new = {}
    for key, v in sd.items():
        nk = key
        for a, b in remap.items():
            if key.startswith(a):
                nk = b + key[len(a) :]
        nk = nk.replace("downsample.0", "downsample.0").replace("downsample.1", "downsample.1")
        if nk == "conv1.weight" and v.shape[1] == 3:
            v = v.sum(1, keepdim=True)
        if nk in own and own[nk].shape == v.shape:
            new[nk] = v
    missing = [k for k in own if k not in new]
    model.load_state_dict(new, strict=False)
    print(f"[model] pretrained {path}: loaded {len(new)} tensors, {len(missing)} left at init")
    return model


@register_model("resnet18")
def resnet18(pretrained=None, width=64, **kw):
    m = ResNet((2, 2, 2, 2), width=width, **kw)
    if pretrained:
        load_pretrained_resnet(m, pretrained)
    return m


@register_model("psa_resnet")
def psa_resnet(width=32, layers=(2, 2, 2, 2), **kw):
    return ResNet(layers, width=width, mixer=PSA, **kw)


# ----------------------------------------------------------------------------------------------------
# A logit ensemble as one model, so the shipped file format and load_shipped_model (the service's loader)
# take it unchanged. Members must share the input normalisation.


@register_model("logit_ensemble")
class LogitEnsemble(FERModel):
    """Mean of the members' logits. `members` = [{"arch": name, "model_cfg": {...}}, ...]."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(
            create_model(m["arch"], verbose=False, **m["model_cfg"]) for m in members
        )
        self.embed_dims = [m.embed_dim for m in self.members]
        self.embed_dim = sum(self.embed_dims)

    def forward_features(self, x):
        return torch.cat([m.forward_features(x) for m in self.members], 1)

    def forward_head(self, z):
        parts = torch.split(z, self.embed_dims, 1)
        return torch.stack([m.forward_head(p) for m, p in zip(self.members, parts, strict=True)]).mean(0)


# ----------------------------------------------------------------------------------------------------
# Island loss (Cai et al. 2018): centre loss pulls embeddings to their class centre; the island term
# pushes centres apart by penalising pairwise cosine similarity (+1 so it is non-negative).


class IslandLoss(nn.Module):
    def __init__(self, num_classes, dim, lambda1=10.0):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, dim) * 0.1)
        self.lambda1 = lambda1

    def forward(self, z, y):
        center = 0.5 * (z - self.centers[y]).pow(2).sum(1).mean()
        c = F.normalize(self.centers, dim=1)
        cos = c @ c.t()
        K = c.shape[0]
        off = cos[~torch.eye(K, dtype=torch.bool, device=c.device)]
        island = (off + 1).sum() / 2  # each unordered pair counted once
        return center + self.lambda1 * island


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch: int = 256) -> nn.Module:
    """Re-estimate BatchNorm running statistics as an exact average over `x` (standardised faces).

    In training they follow augmented batches, seen through dropout; at test time the model sees clean faces
    with dropout off, so they are re-estimated that way: only the BatchNorm layers in training mode. Returns
    the model in eval mode, each layer's momentum as it was."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    with torch.no_grad():  # running statistics update without autograd; no graph to build
        for i in range(0, len(x), batch):
            model(x[i : i + batch])
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.eval()


# ----------------------------------------------------------------------------------------------------
# Shipped-model loader (imported by the inference service).

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
SHIPPED = MODELS_DIR / "fer_vgg.pt"


def native_bf16():
    """Whether this CPU computes in bf16 natively. Elsewhere (AVX2-only CPUs) autocast emulates it: on a
    2-core AVX2-only AMD EPYC `training.benchmark` ran fer_vgg at 27 faces/s in bf16 against 227 in fp32."""
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


def load_shipped_model(path=None, device="cpu"):
    """Return (model, meta): an eval-mode fp32 model and its metadata dict.

    meta has: arch, model_cfg, mean, std, labels, temperature, version, metrics. Preprocess a 48x48 grey
    uint8 face as x = (pixels / 255 - meta['mean']) / meta['std'], shape (B,1,48,48) float32;
    probabilities = softmax(logits / meta['temperature']).
    """
    path = Path(path or SHIPPED)
    meta = json.loads(path.with_suffix(".json").read_text())
    model = create_model(meta["arch"], verbose=False, **meta.get("model_cfg", {}))
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return model.float().eval().to(device), meta
