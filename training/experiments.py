"""Short-schedule reproductions of the seed papers' comparisons (docs/EXPERIMENTS.md).

    python -m training.experiments                       # the whole grid, resumable
    python -m training.experiments --arms vgg_sgd_b64_k3 psa_island --threads 1
    python -m training.experiments --report              # only rebuild the tables from finished runs

Every arm is a base config from training/configs/ plus a few overrides, run with the SAME short schedule
and seed (SCHEDULE below; --set changes it for all arms). Arms run one after another, each in its own run
dir runs/experiments/<arm>/ (config.json, train.log, metrics.jsonl, best.json, arm.json). An arm with
arm.json is finished and skipped; an interrupted arm resumes from its checkpoint. Weights are deleted once
an arm is finished (only the numbers are kept) unless --keep-weights. At the end the tables are printed and
written to runs/experiments/results.md.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from training.train import ACCURACY_KEY, DEFAULTS, REPO_ROOT, load_config, merged

CONFIGS = REPO_ROOT / "training" / "configs"
OUT = REPO_ROOT / "runs" / "experiments"

# One schedule for every arm: a fixed random subset of Training (drawn with `seed`), a few epochs of linear
# warm-up + cosine, validation on the whole PublicTest (3,589) after every epoch. No EMA and no FER+
# not-a-face filtering or BatchNorm re-estimation, so every arm sees exactly the same images and is selected
# the same way.
SCHEDULE = dict(
    epochs=4,
    train_limit=12000,
    warmup_epochs=0.5,
    seed=1337,
    ema_decay=0.0,
    bn_recalibrate=0,
    drop_not_face=False,
)

# Every network at a quarter of its usual width, so the grid fits well under an hour of one core. VGG19
# keeps all 16 plain convolutions and its 3 FC layers (hidden 4096 / 4 = 1024) and gets He initialisation:
# with PyTorch's default initialisation its features start ~50x too small and no arm left the majority class.
VGG = {"model_cfg": {"width": 16, "hidden": 1024, "init": "kaiming"}}
RES = {"model_cfg": {"width": 16, "dropout": 0.2}}  # ResNet-18 and PSA-ResNet at the same width
RES18 = dict(RES, model="resnet18")

# arm -> base config (relative to training/configs) and overrides (dicts such as model_cfg are merged).
ARMS = {
    # VGG system, Table 6: batch, kernel size, optimiser around its SGD / batch 128 / 3x3 VGG19
    "vgg_sgd_b128_k3": ("vgg19_seed.json", VGG),
    "vgg_sgd_b64_k3": ("vgg19_seed.json", dict(VGG, batch_size=64)),
    "vgg_sgd_b128_k2": ("vgg19_seed.json", {"model_cfg": dict(VGG["model_cfg"], kernel_size=2)}),
    "vgg_adam_b128_k3": ("vgg19_seed.json", dict(VGG, optimizer="adam", lr=1e-3)),
    # PSA-ResNet paper, Table 4: ResNet-18 baseline, + Island loss, + PSA, + both (all the same width)
    "res_baseline": ("psa_resnet_island.json", dict(RES18, island_weight=0.0)),
    "res_island": ("psa_resnet_island.json", RES18),
    "psa": ("psa_resnet_island.json", dict(RES, island_weight=0.0)),
    "psa_island": ("psa_resnet_island.json", RES),
    # custom-CNN paper: a small custom CNN vs a ResNet (ours from scratch: no pretrained weights here)
    "cnn_fer_vgg": ("fer_vgg.json", {"model_cfg": {"width": 16}}),
}

NG = "not given here"
# table -> (title, [(arm, the seed paper's figure for that row)])
TABLES = {
    "vgg": (
        "VGG system, Table 6 (modified VGG19): batch 128 vs 64, 3x3 vs 2x2 kernels, SGD vs Adam",
        [
            ("vgg_sgd_b128_k3", "72% (its chosen setting)"),
            ("vgg_sgd_b64_k3", NG),
            ("vgg_sgd_b128_k2", NG),
            ("vgg_adam_b128_k3", NG),
        ],
    ),
    "psa": (
        "PSA-ResNet paper, Table 4: baseline vs Island loss vs PSA vs both",
        [("res_baseline", NG), ("res_island", NG), ("psa", NG), ("psa_island", "74.26%")],
    ),
    "cnn": (
        "Custom-CNN paper: custom CNN vs ResNet (theirs: ResNet by transfer learning; ours: from scratch)",
        [("cnn_fer_vgg", "66.5%"), ("res_baseline", NG)],
    ),
}
# Cheap arms first, so that a cut-short grid still completes whole tables.
ORDER = ["cnn_fer_vgg", "res_baseline", "res_island", "psa", "psa_island"]
ORDER += [a for a in ARMS if a.startswith("vgg_")]


def arm_config(arm, extra=None):
    """The full training config of an arm: DEFAULTS <- base config <- arm overrides <- SCHEDULE <- extra."""
    base, over = ARMS[arm]
    cfg = merged(DEFAULTS, load_config(CONFIGS / base))
    cfg = merged(cfg, over)
    cfg = merged(cfg, SCHEDULE)
    cfg = merged(cfg, extra or {})
    cfg["name"] = f"exp_{arm}"
    return cfg


def model_cost(cfg):
    from training.models import count_macs, count_params, create_model

    m = create_model(cfg["model"], verbose=False, **cfg["model_cfg"])
    return count_params(m), count_macs(m)


def run_arm(arm, out, extra, threads, data=None, arm_minutes=None, keep_weights=False):
    run_dir = out / arm
    if (run_dir / "arm.json").exists():
        print(f"[exp] {arm}: finished earlier, skipped", flush=True)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = arm_config(arm, extra)
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=1))
    params, macs = model_cost(cfg)
    cmd = [sys.executable, "-m", "training.train", "--config", str(run_dir / "config.json")]
    cmd += ["--run-dir", str(run_dir), "--threads", str(threads), "--no-plots", "--no-progress"]
    if data:  # a non-default CSV is parsed afresh (no cache written for it)
        cmd += ["--data", str(data), "--cache-dir", "none"]
    resumed = (run_dir / "checkpoints" / "last.pt").exists()
    if resumed:
        cmd.append("--resume")
    if arm_minutes:  # safety cap: the trainer compresses the cosine so the arm ends by then (see train.py)
        cmd += ["--deadline", str(time.time() + 60 * arm_minutes)]
    print(f"[exp] {arm}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    with open(run_dir / "train.log", "a") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    wall = time.time() - t0
    if rc != 0 or not (run_dir / "best.json").exists():
        print(f"[exp] {arm}: FAILED (exit {rc}), see {run_dir / 'train.log'}", flush=True)
        return
    rec = dict(arm=arm, model=cfg["model"], params=params, macs=macs, wall_s=wall, resumed=resumed)
    (run_dir / "arm.json").write_text(json.dumps(rec, indent=1))
    if not keep_weights:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        (run_dir / "best.pt").unlink(missing_ok=True)
    print(f"[exp] {arm}: done in {wall / 60:.1f} min", flush=True)


def arm_result(out, arm):
    """Numbers of a finished arm, or None."""
    d = out / arm
    if not (d / "arm.json").exists():
        return None
    rec = json.loads((d / "arm.json").read_text())
    best = json.loads((d / "best.json").read_text())
    hist = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
    cfg = json.loads((d / "config.json").read_text())
    epochs = hist[-1]["step"] / hist[0]["step"]  # in full epochs (a --arm-minutes cap can stop mid-epoch)
    return dict(
        rec,
        acc=best["metrics"][ACCURACY_KEY[best["train_config"]["bf16"]]],  # as trained: "auto" resolved
        best_epoch=best["metrics"]["epoch"],
        epochs=epochs,
        cut=epochs < cfg["epochs"] - 1e-6,
        minutes=sum(h["epoch_time"] for h in hist) / 60,  # training + evaluation, survives resumes
    )


def report(out=OUT):
    # the schedule the arms really ran (a --set changes it), read back from a finished arm's config
    done = [out / arm for arm in ARMS if (out / arm / "arm.json").exists()]
    schedule, precision = SCHEDULE, "fp32"
    if done:
        config = json.loads((done[0] / "config.json").read_text())
        schedule = {k: config[k] for k in SCHEDULE}
        trained = json.loads((done[0] / "best.json").read_text())["train_config"]  # "auto" resolved
        precision = "bf16" if trained["bf16"] else "fp32"
    lines = [
        f"Schedule: {json.dumps(schedule)}; validation on all 3,589 PublicTest rows. Accuracy is "
        f"{precision}, best epoch by PublicTest (1-based); "
        "wall minutes = training + evaluation time of the arm.",
        "",
    ]
    for title, rows in TABLES.values():
        lines += [f"### {title}", ""]
        lines += [
            "| arm | model | params | MACs | best PublicTest acc (ours) | epochs | wall min | seed paper |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for arm, paper in rows:
            r = arm_result(out, arm)
            if r is None:
                lines.append(f"| {arm} | - | - | - | not run | - | - | {paper} |")
                continue
            ep = f"{r['epochs']:.3g}" + (" (cut)" if r["cut"] else "") + f", best {r['best_epoch']}"
            lines.append(
                f"| {arm} | {r['model']} | {r['params'] / 1e6:.2f} M | {r['macs'] / 1e6:.1f} M | "
                f"{100 * r['acc']:.2f}% | {ep} | {r['minutes']:.1f} | {paper} |"
            )
        lines.append("")
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text)
    print(text, flush=True)
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", nargs="*", default=None, help=f"subset of arms (default all): {list(ARMS)}")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=None, help="Kaggle-format CSV(.gz); default the trainer's")
    ap.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=JSON", help="override the schedule for ALL arms"
    )
    ap.add_argument("--arm-minutes", type=float, default=None, help="per-arm wall-time cap (default none)")
    ap.add_argument("--keep-weights", action="store_true", help="keep checkpoints and best.pt of each arm")
    ap.add_argument("--report", action="store_true", help="do not train; rebuild the tables")
    a = ap.parse_args(argv)
    out = Path(a.out)
    extra = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    arms = a.arms or ORDER
    unknown = [x for x in arms if x not in ARMS]
    if unknown:
        ap.error(f"unknown arms {unknown}; known: {list(ARMS)}")
    if not a.report:
        for arm in arms:
            run_arm(arm, out, extra, a.threads, a.data, a.arm_minutes, a.keep_weights)
    return report(out)


if __name__ == "__main__":
    main()
