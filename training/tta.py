"""Test-time augmentation: view sets by name, and a comparison of them on PublicTest.

    python -m training.tta [--model runs/x/best.pt] [--split PublicTest] [--threads 2] [--json]

A view is a fixed transform of a standardised batch (N, 1, 48, 48): a shift of a few pixels, a zoom or a
small rotation (edges replicated, as in the training augmentation), each also mirrored. A view set averages
the model's logits over its views; `training.evaluate --tta [SET]` and `training.ensemble --tta` use
DEFAULT_SET. The comparison runs every distinct view once and scores every set from those logits, so
adding a set costs nothing; it selects on PublicTest, the selection split (never on PrivateTest).
"""

import argparse
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from training import metrics as M

PAD = 4  # replicated border: enough for the largest shift below


def shift(x, dy, dx):
    """Translate by (dy, dx) pixels, filling with replicated edge pixels."""
    if dy == 0 and dx == 0:
        return x
    H, W = x.shape[-2:]
    xp = F.pad(x, (PAD, PAD, PAD, PAD), mode="replicate")
    return xp[..., PAD - dy : PAD - dy + H, PAD - dx : PAD - dx + W]


def affine(x, scale=1.0, degrees=0.0):
    """Zoom about the centre (scale > 1 enlarges the face) and rotate, sampling the border beyond the edge."""
    a = math.radians(degrees)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _view(name):
    """'id', 's2,-2' (shift dy,dx), 'z1.1' (zoom), 'r8' (rotate degrees); an 'm' prefix mirrors first."""
    mirror, base = name.startswith("m"), name[1:] if name.startswith("m") else name

    def apply(x):
        x = x.flip(-1) if mirror else x
        if base == "id":
            return x
        if base[0] == "s":
            return shift(x, *map(int, base[1:].split(",")))
        if base[0] == "z":
            return affine(x, scale=float(base[1:]))
        if base[0] == "r":
            return affine(x, degrees=float(base[1:]))
        raise ValueError(f"unknown view {name!r}")

    return apply


def _mirrored(names):
    return names + ["m" + n for n in names]


SHIFTS5 = ["id", "s2,0", "s-2,0", "s0,2", "s0,-2"]
SHIFTS9 = SHIFTS5 + ["s2,2", "s2,-2", "s-2,2", "s-2,-2"]
ZOOMS = ["z0.92", "z1.08"]
ROTATIONS = ["r-8", "r8"]

VIEW_SETS = {
    "plain": ["id"],
    "flip": _mirrored(["id"]),
    "flip_shift5": _mirrored(SHIFTS5),  # the 10 views of the model card's TTA figure and the service's TTA
    "flip_shift9": _mirrored(SHIFTS9),
    "flip_shift5_zoom": _mirrored(SHIFTS5 + ZOOMS),
    "flip_shift5_rotate": _mirrored(SHIFTS5 + ROTATIONS),
    "flip_shift5_zoom_rotate": _mirrored(SHIFTS5 + ZOOMS + ROTATIONS),
    "flip_shift9_zoom_rotate": _mirrored(SHIFTS9 + ZOOMS + ROTATIONS),
    # the inference service's 4 views until 3 December 2026 (named "service"): crop, mirror, 2 diagonal shifts
    "flip_diag2": ["id", "mid", "s2,2", "s-2,-2"],
}
# the model card's TTA; services/inference/scoring.py tta_variants computes the same views for the service
DEFAULT_SET = "flip_shift5"


def views_of(set_name):
    """The view functions of a named set, as one function: batch -> list of views."""
    if set_name not in VIEW_SETS:
        raise SystemExit(f"unknown TTA set {set_name!r}; known: {', '.join(VIEW_SETS)}")
    fns = [_view(n) for n in VIEW_SETS[set_name]]
    return lambda xb: [f(xb) for f in fns]


@torch.no_grad()
def view_logits(model, x, names, batch=256):
    """{view name: fp32 logits (N, 7)} of a model for standardised images x, one forward per view."""
    model.eval()
    fns = {n: _view(n) for n in names}
    out = {n: [] for n in names}
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        for n, f in fns.items():
            out[n].append(model(f(xb).contiguous()).float())
    return {n: torch.cat(v).numpy().astype(np.float64) for n, v in out.items()}


def compare_sets(per_view, y, temperature=1.0):
    """Accuracy, NLL and ECE of every named set, from the per-view logits."""
    rows = {}
    for set_name, names in VIEW_SETS.items():
        logits = np.mean([per_view[n] for n in names], axis=0)
        p = M.softmax(logits, temperature)
        rows[set_name] = {
            "views": len(names),
            "accuracy": float((logits.argmax(1) == y).mean()),
            "nll": M.log_loss(p, y),
            "ece": M.ece(p, y),
        }
    return rows


def main(argv=None):
    from training.evaluate import load_split  # evaluate imports this module: import at call time
    from training.models import load_shipped_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--split", default="PublicTest", choices=["Training", "PublicTest"])
    ap.add_argument("--model", default=None, help="weights .pt with a .json sidecar (default: shipped model)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print only one JSON object")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    model, meta = load_shipped_model(a.model)
    x, y, _ = load_split(a.data, a.split, a.limit)
    xn = torch.from_numpy((x.astype(np.float32) / 255.0 - meta["mean"]) / meta["std"]).unsqueeze(1)
    names = sorted({n for views in VIEW_SETS.values() for n in views})
    per_view = view_logits(model, xn, names)
    report = {
        "split": a.split,
        "n": int(len(y)),
        "model": a.model or "shipped",
        "temperature": meta.get("temperature", 1.0),
        "default_set": DEFAULT_SET,
        "sets": compare_sets(per_view, y, meta.get("temperature", 1.0)),
    }
    if a.json:
        print(json.dumps(report, indent=1))
        return report
    print(f"{a.split} (n={len(y)}), model {report['model']}, T={report['temperature']}")
    for name, r in report["sets"].items():
        acc, nll, ece = r["accuracy"], r["nll"], r["ece"]
        print(f"  {name:26s} {r['views']:3d} views  acc {acc:.2%}  NLL {nll:.4f}  ECE {ece:.4f}")
    return report


if __name__ == "__main__":
    main()
