"""Evaluate a trained model on one split of a Kaggle-format FER CSV; prints ONE JSON object with --json.

    python -m training.evaluate --data PATH --split PublicTest [--model models/fer_vgg.pt] [--tta] --json

Without --model the shipped model (models/fer_vgg.pt + .json) is used. Inference is fp32 unless --bf16.
--onnx FILE scores an ONNX export of that model (e.g. models/fer_vgg.int8.onnx) under ONNX Runtime instead.
--tta averages logits over the image and its mirror, each at 5 positions (centre and +-2 px shifts), as the
inference service's TTA option does; --tta SET over another view set of training/tta.py (`python -m
training.tta` compares them), e.g. --tta flip_diag2 for the service's 4 views until 3 December 2026.
--occlude F erases one random square covering fraction F of every image (robustness probe, fixed seed).
--ferplus also scores the predictions against the FER+ majority vote (10 annotators per face), on the faces
whose majority is one of the 7 classes.
--fit-temperature fits a softmax temperature on a random half of the split and reports ECE on the other
half and on all rows (never fit anything on PrivateTest for model selection).
"""

import argparse
import json
import sys

import numpy as np
import torch

from training import data as D
from training import metrics as M
from training.models import load_shipped_model
from training.tta import DEFAULT_SET, VIEW_SETS
from training.tta import views_of as tta_views


@torch.no_grad()
def logits_for(model, x, batch=256, bf16=False, tta=False):
    """x: standardised float (N,1,48,48) -> fp32 logits (N,7), averaged over the views of a TTA set
    (training/tta.py): tta=True for its DEFAULT_SET, or a set's name (e.g. "flip_diag2")."""
    model.eval()
    views_of = tta_views(DEFAULT_SET if tta is True else tta) if tta else (lambda xb: [xb])
    out = []
    for i in range(0, len(x), batch):
        views = views_of(x[i : i + batch])
        acc = 0
        for v in views:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                acc = acc + model(v.contiguous()).float()
        out.append(acc / len(views))
    return torch.cat(out)


def load_split(data_path, split, limit=None):
    """(images, labels) of one split (its first `limit` rows) and the whole FERData they came from."""
    d = D.load_fer(data_path, verbose=False)
    x, y = d.split(split)
    if limit:
        x, y = x[:limit], y[:limit]
    return x, y, d


def ferplus_report(pred, d, split, limit=None):
    """Accuracy of `pred` (the split's first rows, in order) against the FER+ majority, where there is one;
    and how often the FER-2013 label itself agrees with that majority."""
    rows, labels = d.rows[d.mask(split)][:limit], d.labels[d.mask(split)][:limit]
    major = D.ferplus_majority(D.ferplus_csv_beside(d), int(rows.max()) + 1)[rows]
    keep = major >= 0
    return {
        "n": int(keep.sum()),
        "accuracy": float((pred[keep] == major[keep]).mean()),
        "fer2013_label_agreement": float((labels[keep] == major[keep]).mean()),
    }


def calibration_report(logits, y, seed=0):
    """Fit T on a random half (A), report ECE/NLL on the other half (B) and on all rows, before and after."""
    idx = np.random.default_rng(seed).permutation(len(y))
    a, b = idx[: len(y) // 2], idx[len(y) // 2 :]
    T = M.fit_temperature(logits[a], y[a])
    r = {"temperature": T, "fit_on": f"random half A of the split (seed {seed}, n={len(a)})"}
    for name, ix in (("half_B", b), ("all", idx)):
        p1, pT = M.softmax(logits[ix]), M.softmax(logits[ix], T)
        r[name] = {
            "n": int(len(ix)),
            "ece_T1": M.ece(p1, y[ix]),
            "ece_T": M.ece(pT, y[ix]),
            "nll_T1": M.log_loss(p1, y[ix]),
            "nll_T": M.log_loss(pT, y[ix]),
        }
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--split", default="PublicTest", choices=D.USAGES)
    ap.add_argument("--model", default=None, help="weights .pt with a .json sidecar (default: shipped model)")
    ap.add_argument(
        "--onnx", default=None, help="score this ONNX export of --model (fp32 or int8) under ONNX Runtime"
    )
    ap.add_argument(
        "--tta",
        nargs="?",
        const=DEFAULT_SET,
        default=None,
        choices=list(VIEW_SETS),
        help=f"average logits over a TTA view set (training/tta.py; default {DEFAULT_SET})",
    )
    ap.add_argument("--occlude", type=float, default=0.0, help="fraction of each image to erase (e.g. 0.25)")
    ap.add_argument("--temperature", type=float, default=None, help="override the model's temperature")
    ap.add_argument("--fit-temperature", action="store_true")
    ap.add_argument("--ferplus", action="store_true", help="also score against the FER+ majority vote")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--limit", type=int, default=None, help="only the first N rows of the split")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print only one JSON object")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    model, meta = load_shipped_model(a.model)
    if a.onnx:  # normalisation and temperature still come from --model's metadata
        from training.onnx_export import OnnxModule

        model = OnnxModule(a.onnx, a.threads)
    x8, y, d = load_split(a.data, a.split, a.limit)
    if len(y) == 0:
        sys.exit(f"split {a.split} has no rows in {a.data or D.DEFAULT_DATA}")
    x = torch.from_numpy(x8).float().div_(255).unsqueeze(1)
    if a.occlude > 0:
        from training.augment import occlude

        x = occlude(x, a.occlude, torch.Generator().manual_seed(0))
    x = (x - meta["mean"]) / meta["std"]  # the training normalisation, from the model's metadata
    tta = a.tta or False
    logits = logits_for(model, x, bf16=a.bf16, tta=tta).numpy().astype(np.float64)
    T = a.temperature if a.temperature is not None else float(meta.get("temperature", 1.0))
    probs = M.softmax(logits, T)
    res = {
        "split": a.split,
        "model": str(a.onnx or a.model or "models/fer_vgg.pt"),
        "arch": meta["arch"],
        "version": meta.get("version"),
        "tta": tta,
        "occlude": a.occlude,
        "bf16": a.bf16,
        "temperature": T,
        "data_dropped": d.report.get("dropped"),
    }
    res.update(M.summarize(probs, y, meta["labels"]))
    if a.fit_temperature:
        res["calibration"] = calibration_report(logits, y)
    if a.ferplus:
        res["ferplus_majority"] = ferplus_report(probs.argmax(1), d, a.split, a.limit)
    if a.json:
        print(json.dumps(res))
    else:
        print(json.dumps({k: v for k, v in res.items() if k not in ("per_class", "confusion")}, indent=1))
        for name, v in res["per_class"].items():
            print(f"  {name:9s} P {v['precision']:.3f} R {v['recall']:.3f} F1 {v['f1']:.3f} n {v['support']}")
        print("confusion (rows true):")
        for row in res["confusion"]:
            print("  " + " ".join(f"{c:5d}" for c in row))
    return res


if __name__ == "__main__":
    main()
