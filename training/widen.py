"""Net2WiderNet (Chen et al., ICLR 2016) for fer_vgg: start a wider model from a trained narrower one.

The wider model computes exactly the same function as the narrow one, so training it is a warm restart
with more capacity rather than a run from scratch (which does not fit a session on a 2-core CPU).

Each conv's output channel j copies channel g(j) of the narrow conv (the first C are the originals, the
rest are drawn at random), together with its BatchNorm parameters and statistics, so replicas produce
identical activations. The next layer reads replica j with the narrow weight of g(j) times a factor f(j);
the factors of one channel's replicas sum to 1, so the sum is unchanged. They are unequal on purpose:
equal factors would give the replicas identical gradients forever (nothing else here breaks the tie).

    python -m training.widen --weights models/fer_vgg.pt --width 48 --out runs/fer_vgg_w48/init.pt

or, in a training config, "init": "models/fer_vgg.pt" with "init_widen": true.
"""

import argparse
from pathlib import Path

import torch
import torch.nn as nn

from training.models import FERVGG, create_model, load_shipped_model


def _replicas(narrow, wide, gen):
    """g: wide index -> narrow index (identity first), f: read factors summing to 1 per narrow channel."""
    g = torch.cat([torch.arange(narrow), torch.randint(0, narrow, (wide - narrow,), generator=gen)])
    f = torch.empty(wide).uniform_(0.5, 1.5, generator=gen)
    f = f / torch.zeros(narrow).index_add_(0, g, f)[g]
    return g, f


def _layers(model):
    """The fer_vgg chain in order: the (conv, bn) pairs of every stage, then the first FC layer."""
    pairs = [(blk[0], blk[1]) for stage in model.stages for blk in stage if isinstance(blk, nn.Sequential)]
    return pairs, model.neck[2]


@torch.no_grad()
def widen_state_dict(narrow_sd, wide_model, seed=0):
    """A state dict for `wide_model` (a wider FERVGG: same depths and hidden size) that computes the same
    function as `narrow_sd`. Raises ValueError if the two differ in anything but channel counts."""
    if not isinstance(wide_model, FERVGG):
        raise ValueError(f"widening is defined for fer_vgg only, not {type(wide_model).__name__}")
    names = {id(m): n for n, m in wide_model.named_modules()}
    pairs, fc = _layers(wide_model)
    gen = torch.Generator().manual_seed(seed)
    out = dict(wide_model.state_dict())
    g_in = f_in = None  # the mapping of the previous layer's channels (none for the grey input)
    for conv, bn in pairs:
        cn, bnn = names[id(conv)], names[id(bn)]
        w = narrow_sd[f"{cn}.weight"]
        first_ok = g_in is not None or w.shape[1] == conv.in_channels
        if not first_ok or w.shape[2:] != conv.weight.shape[2:] or w.shape[0] > conv.out_channels:
            raise ValueError(f"{cn}: {tuple(w.shape)} cannot widen to {tuple(conv.weight.shape)}")
        g, f = _replicas(w.shape[0], conv.out_channels, gen)
        if g_in is not None:
            w = w[:, g_in] * f_in.view(1, -1, 1, 1)
        out[f"{cn}.weight"] = w[g].clone()
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"{bnn}.{k}"] = narrow_sd[f"{bnn}.{k}"][g].clone()
        out[f"{bnn}.num_batches_tracked"] = narrow_sd[f"{bnn}.num_batches_tracked"].clone()
        g_in, f_in = g, f
    # The flatten before the FC is channel-major over the 3x3 map: input index = channel * 9 + position.
    fn = names[id(fc)]
    w = narrow_sd[f"{fn}.weight"]
    if w.shape[0] != fc.out_features:
        raise ValueError(f"{fn}: hidden size {w.shape[0]} differs from {fc.out_features}")
    w = w.view(w.shape[0], -1, 9)[:, g_in] * f_in.view(1, -1, 1)
    out[f"{fn}.weight"] = w.reshape(fc.out_features, -1).clone()
    for k, v in narrow_sd.items():  # the rest (neck BN, classifier) has the same shape in both
        if not k.startswith("stages.") and k != f"{fn}.weight":
            out[k] = v.clone()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--weights", default=None, help="narrow fer_vgg .pt with a .json sidecar (default: shipped)"
    )
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    narrow, meta = load_shipped_model(a.weights)
    wide = create_model("fer_vgg", **{**meta["model_cfg"], "width": a.width}).eval()
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide, a.seed))
    x = torch.randn(64, 1, 48, 48)
    diff = (wide(x) - narrow(x)).abs().max().item()
    print(f"[widen] width {meta['model_cfg']['width']} -> {a.width}: max |logit difference| {diff:.2e}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(wide.state_dict(), a.out)
    return diff


if __name__ == "__main__":
    main()
