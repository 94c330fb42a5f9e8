"""Logit ensemble of trained models, and its soft targets for distillation.

    python -m training.ensemble --weights runs/a/best.pt runs/b/best.pt models/fer_vgg.pt --tta [--subsets] \
        [--targets runs/teacher/targets.npz] [--threads 2]

Members may differ in architecture; each is fed with its own normalisation (from its .json sidecar). The
ensemble averages the members' logits (the TTA views of each member first, with --tta). Prints one JSON
object: PublicTest accuracy of every member and of the ensemble, plain and, with --tta, test-time augmented.
--subsets adds every smaller ensemble of two or more members (from the same logits, so nearly free): which
teachers to keep.

--out writes the ensemble as one `logit_ensemble` model (training/models.py) in the shipped format, which
load_shipped_model (and so the service) loads like any other: the option for a server that can afford N
forward passes per face.

--targets writes the ensemble's probabilities for every Training face (test-time augmented only with
--tta-targets: ten views of 28.5k faces per member is slow on a CPU) as
an .npz of `rows` (the face's data-row index in the source CSV, the key train.py aligns by) and `probs`
(float32, N x 7). A training config's `"teacher": PATH` with `"kd_weight": a` then trains a single model
towards (1 - a) * label + a * probs: knowledge distillation of the ensemble into one model of any size.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from training import data as D
from training.evaluate import logits_for
from training.models import create_model, load_shipped_model
from training.provenance import member_record
from training.train import save_weights


def ensemble_logits(members, images_uint8, tta=False):
    """Mean logits (N, 7) of (model, meta) members over uint8 faces (N, 48, 48); also each member's."""
    per_member = []
    for model, meta in members:
        x = torch.from_numpy(D.normalize(images_uint8, meta["mean"], meta["std"]))
        per_member.append(logits_for(model, x, tta=tta))
    return torch.stack(per_member).mean(0), per_member


def accuracy(logits, y):
    return float((logits.argmax(1).numpy() == y).mean())


def accuracy_report(members, names, images_uint8, y, tta=False, subsets=False):
    """Accuracy of every member and of their logit ensemble on uint8 faces with labels y, plain and (with
    tta) test-time augmented: {"members": {name: {"accuracy", "accuracy_tta"}}, "ensemble_accuracy", ...};
    with subsets, also {"subsets": {"name+name": {"accuracy", ...}}} for each proper subset of 2+ members."""
    report = {"members": {name: {} for name in names}}
    n = len(names)
    proper = (g for k in range(2, n) for g in itertools.combinations(range(n), k))
    groups = {"+".join(names[i] for i in g): g for g in proper} if subsets else {}  # "a+b": (0, 1)
    if groups:
        report["subsets"] = {label: {} for label in groups}
    for views in (False, True) if tta else (False,):
        suffix = "_tta" if views else ""
        mean, per_member = ensemble_logits(members, images_uint8, views)
        for name, logits in zip(names, per_member, strict=True):
            report["members"][name][f"accuracy{suffix}"] = accuracy(logits, y)
        report[f"ensemble_accuracy{suffix}"] = accuracy(mean, y)
        for label, g in groups.items():
            subset_mean = torch.stack([per_member[i] for i in g]).mean(0)
            report["subsets"][label][f"accuracy{suffix}"] = accuracy(subset_mean, y)
    return report


def ensemble_model(members, paths):
    """One `logit_ensemble` model holding the members' weights, and its metadata (.json sidecar)."""
    first = members[0][1]
    shared = ("mean", "std", "labels")
    if any([m[k] for k in shared] != [first[k] for k in shared] for _, m in members):
        raise SystemExit("members must share the input normalisation and labels to form one model")
    cfg = {"members": [{"arch": m["arch"], "model_cfg": m["model_cfg"]} for _, m in members]}
    model = create_model("logit_ensemble", verbose=False, **cfg).eval()
    for slot, (member, _) in zip(model.members, members, strict=True):
        slot.load_state_dict(member.state_dict())
    meta = {
        "arch": "logit_ensemble",
        "model_cfg": cfg,
        **{k: first[k] for k in shared},
        "ensemble_of": [member_record(p, m) for p, (_, m) in zip(paths, members, strict=True)],
    }
    return model, meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", nargs="+", required=True, help="best.pt files (each with a .json sidecar)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--subsets", action="store_true", help="also score every smaller ensemble of 2+ members")
    ap.add_argument("--targets", default=None, help="write soft targets for the Training faces here (.npz)")
    ap.add_argument("--tta-targets", action="store_true", help="test-time augment the targets too")
    ap.add_argument(
        "--out", default=None, help="write the ensemble as one model here (.pt + .json), for training.export"
    )
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    members = [load_shipped_model(w) for w in a.weights]
    as_one = ensemble_model(members, a.weights) if a.out else None  # refuse before the slow part
    d = D.load_fer(a.data, verbose=False)
    x_val, y_val = d.split("PublicTest")

    report = {"split": "PublicTest", "n": int(len(y_val))}
    report.update(accuracy_report(members, a.weights, x_val, y_val, a.tta, a.subsets))

    if a.targets:
        train = d.mask("Training")
        mean, _ = ensemble_logits(members, d.images[train], a.tta_targets)
        probs = mean.softmax(1).numpy().astype(np.float32)
        out = Path(a.targets)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, rows=d.rows[train], probs=probs)
        agree = float((probs.argmax(1) == d.labels[train]).mean())
        report["targets"] = {
            "path": str(out),
            "n": int(train.sum()),
            "tta": a.tta_targets,
            "label_agreement": agree,
        }
    if as_one:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        save_weights(a.out, *as_one)
        report["written"] = a.out
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
