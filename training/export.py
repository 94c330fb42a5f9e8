"""Ship a trained model: weights + metadata into models/, temperature fit, TorchScript for TorchServe.

    python -m training.export --weights runs/fer_vgg_w32/best.pt --version 0.4.0

1. loads the run's best weights (fp32 state_dict + .json sidecar written by train.py);
2. fits a softmax temperature on a random half of PublicTest (the other half measures calibration);
3. measures PublicTest metrics with and without TTA and stores them in the metadata;
4. writes models/fer_vgg.pt (fp32 state_dict, torch.load(weights_only=True)) + models/fer_vgg.json;
5. traces TorchScript models/fer_vgg.torchscript.pt (input: standardised float32 (B,1,48,48) -> 7 logits,
   temperature NOT applied) with meta.json embedded as an extra file, and checks it matches eager;
6. exports models/fer_vgg.onnx and the int8-quantised models/fer_vgg.int8.onnx (training/onnx_export.py)
   and records their size, accuracy and speed under "onnx" in the JSON.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from training import metrics as M
from training import onnx_export
from training.evaluate import calibration_report, load_split, logits_for
from training.models import MODELS_DIR, load_shipped_model
from training.train import save_weights


def export_torchscript(model, meta, path, x_check):
    model = model.eval()
    with torch.no_grad():
        ts = torch.jit.trace(model, x_check[:2])
        diff = (ts(x_check) - model(x_check)).abs().max().item()
    assert diff < 1e-4, f"TorchScript output differs from eager by {diff}"
    torch.jit.save(ts, str(path), _extra_files={"meta.json": json.dumps(meta)})
    return diff


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="run best.pt (with best.json beside it)")
    ap.add_argument("--out", default=str(MODELS_DIR / "fer_vgg.pt"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--version", default=None, help="release version (default: that of shipped weights)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    model, meta = load_shipped_model(a.weights)
    version = a.version or meta.get("version")
    if not version:
        raise SystemExit(f"{a.weights} is not a release (runs and soups carry no version): pass --version")
    x8, y, _ = load_split(a.data, "PublicTest")
    x = (torch.from_numpy(x8).float().div_(255).unsqueeze(1) - meta["mean"]) / meta["std"]

    logits = logits_for(model, x).numpy().astype(np.float64)
    cal = calibration_report(logits, y)
    T = cal["temperature"]
    logits_tta = logits_for(model, x, tta=True).numpy().astype(np.float64)
    keys = ("n", "accuracy", "macro_f1", "auc_ovr_macro", "loss", "ece")
    s1 = M.summarize(M.softmax(logits, T), y, meta["labels"])
    s2 = M.summarize(M.softmax(logits_tta, T), y, meta["labels"])

    train_cfg = meta.pop("train_config", {})
    meta.pop("data_report", None)
    meta.update(
        version=version,
        temperature=T,
        calibration=cal,
        metrics={
            "PublicTest": {k: s1[k] for k in keys},
            "PublicTest_tta": {k: s2[k] for k in keys},
            "selected_epoch": meta.get("metrics", {}).get("epoch"),
            "ema": meta.get("metrics", {}).get("ema"),
        },
        train_config=train_cfg,
        source_weights=str(a.weights),
        preprocessing="grey 48x48 uint8 face crop -> x = (pixels/255 - mean)/std, float32, "
        "shape (B,1,48,48); probs = softmax(logits / temperature); labels in `labels` order",
    )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(out, model, meta)
    ts_path = out.with_name(out.stem + ".torchscript.pt")
    diff = export_torchscript(model, meta, ts_path, x[:64])

    # Round-trip check: what the service will load must reproduce the numbers above.
    m2, meta2 = load_shipped_model(out)
    acc = (logits_for(m2, x).argmax(1).numpy() == y).mean()
    assert abs(acc - s1["accuracy"]) < 1e-9, (acc, s1["accuracy"])

    # the exports load the weights just saved; their report then joins the sidecar
    meta["onnx"] = onnx_export.export_all(out, out.parent, a.data, a.threads)
    onnx_export.record(out, meta["onnx"])
    print(
        json.dumps(
            {
                "weights": str(out),
                "torchscript": str(ts_path),
                "torchscript_max_abs_diff": diff,
                "temperature": T,
                "PublicTest": meta["metrics"]["PublicTest"],
                "PublicTest_tta": meta["metrics"]["PublicTest_tta"],
                "ece_half_B_T1": cal["half_B"]["ece_T1"],
                "ece_half_B_T": cal["half_B"]["ece_T"],
                "onnx": meta["onnx"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
