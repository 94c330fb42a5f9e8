"""Combine runs of one architecture: a weight soup (one model, same speed) and a logit ensemble (N models).

    python -m training.soup --weights runs/a/best.pt runs/b/best.pt [--out runs/soup/best.pt] [--tta]

Runs fine-tuned from the same starting weights usually stay in one basin of the loss, so the average of
their weights (a "uniform soup", Wortsman et al. 2022) is often better than each of them and costs nothing
at inference. BatchNorm statistics of an averaged network are not the average of the statistics, so they
are re-estimated on the (unaugmented) Training faces. The logit ensemble is reported beside it: it is the
accuracy a distilled model could aim for, and the option to ship when speed does not matter.

Prints one JSON object: PublicTest accuracy of every ingredient, the soup and the ensemble (with --tta,
also test-time augmented). With --out the soup is written like a training run's best.pt (+ .json), ready
for `python -m training.export --weights ... --version X`, and the JSON report beside it as soup.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from training import data as D
from training.ensemble import accuracy, accuracy_report
from training.evaluate import load_split, logits_for
from training.models import load_shipped_model, recalibrate_batchnorm
from training.provenance import member_record
from training.train import save_weights

# metadata that training.export writes for a release, never true of a new soup
RELEASE_ONLY_KEYS = ("version", "calibration", "onnx", "source_weights", "soup_of_note")


def average_weights(models: list[torch.nn.Module]) -> dict[str, torch.Tensor]:
    states = [m.state_dict() for m in models]
    soup = {}
    for key, value in states[0].items():
        if value.dtype.is_floating_point:
            soup[key] = torch.stack([s[key] for s in states]).mean(0)
        else:  # e.g. BatchNorm's num_batches_tracked
            soup[key] = value.clone()
    return soup


def soup_metadata(paths, metas: list[dict], accuracy: float) -> dict:
    """The .json sidecar of a soup of these members. train_config stays the first member's (its data
    options apply to the soup); soup_of says whose weights went in. A soup is not yet a release: what
    training.export measures and sets is dropped, so a released first member's figures and notes do not
    pass for the soup's."""
    # the first member's ingredients are not the soup's; soup_of leads to each member's own
    meta = {k: v for k, v in metas[0].items() if k not in (*RELEASE_ONLY_KEYS, "ingredients")}
    meta.update(
        soup_of=[member_record(p, m) for p, m in zip(paths, metas, strict=True)],
        metrics={"acc": accuracy},
    )
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", nargs="+", required=True, help="best.pt files of one architecture")
    ap.add_argument("--out", default=None, help="write the soup here (.pt + .json, report in soup.json)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    loaded = [load_shipped_model(w) for w in a.weights]
    models = [m for m, _ in loaded]
    meta = loaded[0][1]
    if any((m["arch"], m["model_cfg"]) != (meta["arch"], meta["model_cfg"]) for _, m in loaded):
        raise SystemExit("all weights must be of the same architecture and configuration")
    x8, y, d = load_split(a.data, "PublicTest")
    if meta.get("train_config", {}).get("drop_not_face"):  # BatchNorm sees the faces the members trained on
        d = D.drop_not_faces(d, verbose=False)
    x_train = torch.from_numpy(D.normalize(d.split("Training")[0], meta["mean"], meta["std"]))
    x = torch.from_numpy(D.normalize(x8, meta["mean"], meta["std"]))

    soup_model, _ = load_shipped_model(a.weights[0])
    soup_model.load_state_dict(average_weights(models))
    recalibrate_batchnorm(soup_model, x_train)

    report = {"n": int(len(y)), "split": "PublicTest"}
    report.update(accuracy_report(loaded, a.weights, x8, y, a.tta))
    for tta in (False, True) if a.tta else (False,):
        report[f"soup_accuracy{'_tta' if tta else ''}"] = accuracy(logits_for(soup_model, x, tta=tta), y)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_weights(
            out, soup_model, soup_metadata(a.weights, [m for _, m in loaded], report["soup_accuracy"])
        )
        report["written"] = str(out)
        # the figures are the run's record; stdout alone would be lost with the terminal
        out.with_name("soup.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
