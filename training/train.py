"""Train an emotion classifier on FER-2013 Training, select on PublicTest.

    python -m training.train --config training/configs/fer_vgg.json [--resume] [--epochs N] [--threads 1]

Recipe (seed paper defaults): SGD momentum 0.9, lr 0.01, wd 1e-4, batch 128; plus linear warm-up then
cosine decay, label smoothing, weight EMA, batch-level augmentation, optional mixup/cutmix and Island loss,
optional distillation towards an ensemble's soft targets (`teacher`, `kd_weight`; training/ensemble.py) or,
online, towards frozen teacher models that score every augmented batch (`teacher_models`, `kd_weight`;
`teacher_flip` has them score each face mirrored too), and the FER+ annotators' vote distributions as soft
labels (`ferplus_weight`).
CPU speed: channels_last memory format, and bf16 autocast where the CPU computes bf16 natively (AMX or
AVX512-BF16; `"bf16": "auto"`): on AVX2-only CPUs autocast emulates bf16 and is ~8x slower than fp32.

Run dir (runs/<name>/): metrics.jsonl (one line per epoch), checkpoints/{last,best}.pt (gitignored),
best.pt + best.json (fp32 weights + metadata of the best-by-PublicTest model), curves.png, confusion.png.
"""

import argparse
import functools
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training import data as D
from training.augment import AugConfig, augment, mixup_cutmix
from training.models import IslandLoss, create_model, load_shipped_model, native_bf16, recalibrate_batchnorm
from training.provenance import ingredient_records
from training.widen import widen_state_dict

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULTS = dict(
    name="fer_vgg",
    model="fer_vgg",
    model_cfg={},
    epochs=60,
    batch_size=128,
    optimizer="sgd",  # "sgd" (momentum/nesterov below) or "adam" (betas 0.9/0.999; use lr ~1e-3)
    lr=0.01,
    momentum=0.9,
    nesterov=True,
    weight_decay=1e-4,
    warmup_epochs=2,
    min_lr_frac=0.01,
    label_smoothing=0.1,
    ema_decay=0.999,
    bn_recalibrate=0,  # before each evaluation, re-estimate BatchNorm statistics on N clean Training faces
    aug={},
    mixup=0.0,
    cutmix=0.0,
    mix_prob=0.0,
    sam_rho=0.0,  # > 0: sharpness-aware minimisation with this neighbourhood radius (2 passes per step)
    island_weight=0.0,
    island_lambda=10.0,
    center_lr_mult=10.0,
    drop_not_face=False,
    train_limit=None,  # train on N random Training rows (drawn with `seed`); PublicTest stays whole
    init=None,  # path to a state dict to start from (a warm restart of an earlier run's weights)
    init_widen=False,  # init is a narrower fer_vgg: widen it function-preservingly (training/widen.py)
    teacher=None,  # .npz of soft targets by source row (python -m training.ensemble --targets ...)
    kd_weight=0.0,  # target = (1 - kd_weight) * smoothed label + kd_weight * teacher probabilities
    teacher_models=[],  # instead of `teacher`: weights (.pt beside its .json) whose mean logits on each
    # augmented, mixed batch are the teacher probabilities ("consistent teaching", Beyer et al., CVPR 2022)
    teacher_flip=False,  # the teachers also score each face mirrored (their logits averaged): a TTA'd target
    ferplus_weight=0.0,  # then target = (1 - w) * target + w * the face's FER+ vote distribution
    seed=1337,
    eval_batch=512,
    eval_raw_every=1,  # with EMA, evaluate the raw weights only every N epochs (and at the end)
    bf16="auto",  # autocast to bf16: "auto" = only where the CPU has native bf16 (AMX / AVX512-BF16)
    channels_last=True,
)


# best.json's name for the PublicTest accuracy measured during training, by precision
ACCURACY_KEY = {True: "PublicTest_accuracy_bf16", False: "PublicTest_accuracy"}


def get_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="JSON config; CLI flags override it")
    ap.add_argument("--data", default=None, help="Kaggle-format CSV(.gz); default ../shared/data/fer2013/...")
    ap.add_argument("--cache-dir", default=str(D.DEFAULT_CACHE), help="parsed-array cache ('none' disables)")
    ap.add_argument("--run-dir", default=None, help="default runs/<name>")
    ap.add_argument("--name", default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--resume", action="store_true", help="continue from run_dir/checkpoints/last.pt")
    ap.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("TRAIN_THREADS", 1)),
        help="torch intra-op threads (default 1: the other core is used by other work)",
    )
    ap.add_argument("--limit", type=int, default=None, help="use only the first N train / N val rows (tests)")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps (speed checks)")
    ap.add_argument(
        "--deadline",
        default=None,
        help="UTC 'HH:MM': schedule progress = max(step fraction, time fraction to the deadline), so "
        "the cosine schedule completes and training stops by then even on a busy machine",
    )
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=JSON", help="override config keys, e.g. lr=0.02"
    )
    a = ap.parse_args(argv)
    cfg = merged(DEFAULTS, load_config(a.config)) if a.config else dict(DEFAULTS)
    for kv in a.set:
        k, v = kv.split("=", 1)
        cfg[k] = json.loads(v)
    for k in ("name", "epochs", "batch_size", "lr"):
        if getattr(a, k) is not None:
            cfg[k] = getattr(a, k)
    if cfg["bf16"] == "auto":
        cfg["bf16"] = native_bf16()
    return a, cfg


def merged(base, over):
    """`over` on top of `base`; nested dicts (model_cfg, aug) are merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path):
    """A JSON config. Its optional "base" (a path relative to it) is loaded first and then overridden, so a
    variant states only what it changes."""
    path = Path(path)
    cfg = json.loads(path.read_text())
    base = cfg.pop("base", None)
    return merged(load_config(path.parent / base), cfg) if base else cfg


def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(cfg, groups):
    """cfg['optimizer']: 'sgd' (momentum, optional Nesterov) or 'adam' (betas 0.9/0.999). Each group's
    weight_decay is plain L2 in both (Adam, not AdamW); the per-step lr is set by the schedule."""
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["nesterov"])
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(groups, lr=cfg["lr"])
    raise ValueError(f"unknown optimizer {cfg['optimizer']!r}; use 'sgd' or 'adam'")


def load_teacher(path, rows):
    """Teacher probabilities (N, 7) for training faces with these source rows, from an ensemble .npz."""
    if not path:
        raise SystemExit("kd_weight > 0 needs a teacher (.npz from `python -m training.ensemble --targets`)")
    t = np.load(REPO_ROOT / path)
    where = np.full(max(t["rows"].max(), rows.max()) + 1, -1)  # source row -> position in the .npz
    where[t["rows"]] = np.arange(len(t["rows"]))
    pos = where[rows]
    if (pos < 0).any():
        missing = int((pos < 0).sum())
        raise SystemExit(f"teacher {path} has no targets for {missing} of {len(rows)} training faces")
    print(f"[train] distilling towards {path} ({len(rows)} faces)")
    return torch.from_numpy(t["probs"][pos]).float()


def load_teacher_models(paths):
    """Frozen (model, mean, std) teachers for online distillation; each keeps its own normalisation."""
    teachers = []
    for path in paths:
        model, meta = load_shipped_model(REPO_ROOT / path)
        model.requires_grad_(False)
        teachers.append((model.to(memory_format=torch.channels_last), meta["mean"], meta["std"]))
    print(f"[train] distilling online towards {len(paths)} teacher(s): {', '.join(map(str, paths))}")
    return teachers


@torch.no_grad()
def teacher_probabilities(teachers, pixels, bf16, flip=False):
    """Softmax of the teachers' mean logits for faces (B, 1, 48, 48) scaled to [0, 1]; with `flip`, the mean
    over each face and its mirror image as well (twice the teacher passes)."""
    views = [pixels, pixels.flip(-1)] if flip else [pixels]
    logits = []
    for model, mean, std in teachers:
        for view in views:
            x = ((view - mean) / std).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits.append(model(x).float())
    return torch.stack(logits).mean(0).softmax(1)


def ferplus_targets(d, rows, labels):
    """The FER+ vote distribution (N, 7) of the training faces with these source rows; a face none of whose
    annotators chose one of the 7 expressions keeps its FER-2013 label."""
    dist = D.ferplus_distribution(D.ferplus_csv_beside(d), int(d.rows.max()) + 1)[rows]
    no_votes = dist.sum(1) == 0
    dist[no_votes] = np.eye(len(D.LABELS), dtype=np.float32)[labels[no_votes]]
    print(f"[train] FER+ vote targets for {len(rows)} faces ({int(no_votes.sum())} keep their label)")
    return torch.from_numpy(dist)


def batch_loss(model, xb, target, bf16, island=None, island_weight=0.0, yb=None):
    """(loss, logits): cross-entropy against soft targets, plus the features' Island loss if weighted."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        z = model.forward_features(xb)
        logits = model.forward_head(z).float()
    loss = torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
    if island is not None and island_weight > 0:
        loss = loss + island_weight * island(z.float(), yb)
    return loss, logits


def sharpness_aware_grad(params, rho, loss_fn):
    """SAM (Foret et al., ICLR 2021), for labels as noisy as FER-2013's: from the gradient already in
    .grad, step to the worst point of an L2 ball of radius rho, replace .grad by the gradient there, and
    step back. The optimizer then steps from the original weights with that gradient. loss_fn() returns
    (loss, ...), as batch_loss does."""
    params = [p for p in params if p.grad is not None]
    with torch.no_grad():
        grads = [p.grad for p in params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        start = [p.clone() for p in params]  # copied back exactly (w + e - e is not w in floating point)
        torch._foreach_add_(params, grads, alpha=rho / (norm.item() + 1e-12))
    for p in params:
        p.grad = None
    loss_fn()[0].backward()
    with torch.no_grad():
        torch._foreach_copy_(params, start)


def lr_at(step, warmup, base, min_frac, progress):
    """Linear warm-up (by steps) to base, then cosine down to base*min_frac as progress goes 0 -> 1."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def parse_deadline(s):
    """'HH:MM' (UTC, today or tomorrow) or a unix timestamp -> unix time."""
    if s is None:
        return None
    if ":" not in s:
        return float(s)
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    h, m = map(int, s.split(":"))
    t = now.replace(hour=h, minute=m, second=0, microsecond=0)
    if t < now - dt.timedelta(hours=12):
        t += dt.timedelta(days=1)
    return t.timestamp()


class EMA:
    """Exponential moving average of weights; BN running stats are copied (they are already averages)."""

    def __init__(self, model, decay):
        self.decay = decay
        self.model = create_model(model._arch, verbose=False, **model._cfg)
        self.model.load_state_dict(model.state_dict())
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))  # short memory early in training
        msd = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])


@torch.no_grad()
def predict(model, x_norm, batch=512, bf16=True, channels_last=True):
    """Logits (fp32) for a standardised float tensor (N,1,48,48)."""
    model.eval()
    out = []
    for i in range(0, len(x_norm), batch):
        xb = x_norm[i : i + batch]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out.append(model(xb).float())
    return torch.cat(out) if out else torch.zeros(0, 7)


def evaluate_logits(logits, y):
    loss = F.cross_entropy(logits, y).item() if len(y) else float("nan")
    acc = (logits.argmax(1) == y).float().mean().item() if len(y) else float("nan")
    return loss, acc


def save_weights(path, model, meta):
    """Shipped format: fp32 state_dict (torch.load(weights_only=True) safe) + sidecar JSON."""
    path = Path(path)
    sd = {
        k: v.detach().float().clone() if v.dtype.is_floating_point else v.clone()
        for k, v in model.state_dict().items()
    }
    torch.save(sd, path)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))


def make_plots(run_dir, history, cm):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    ax[0].plot(ep, [h["train_loss"] for h in history], label="train (aug)")
    ax[0].plot(ep, [h["val_loss"] for h in history], label="PublicTest")
    ax[0].plot(ep, [h["ema_val_loss"] for h in history], label="PublicTest EMA")
    ax[0].set_title("loss")
    ax[0].legend()
    ax[1].plot(ep, [h["train_acc"] for h in history], label="train (aug)")
    ax[1].plot(ep, [h["val_acc"] for h in history], label="PublicTest")
    ax[1].plot(ep, [h["ema_val_acc"] for h in history], label="PublicTest EMA")
    ax[1].set_title("accuracy")
    ax[1].legend()
    ax[2].plot(ep, [h["lr"] for h in history])
    ax[2].set_title("lr")
    for a in ax:
        a.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(run_dir / "curves.png", dpi=100)
    plt.close(fig)
    if cm is not None:
        from training.metrics import plot_confusion

        plot_confusion(cm, D.LABELS, run_dir / "confusion.png")


def main(argv=None):
    a, cfg = get_args(argv)
    torch.set_num_threads(a.threads)
    set_seed(cfg["seed"])
    run_dir = Path(a.run_dir or REPO_ROOT / "runs" / cfg["name"])
    ck_dir = run_dir / "checkpoints"
    ck_dir.mkdir(parents=True, exist_ok=True)
    print(f"[train] run dir {run_dir}, threads {a.threads}, torch {torch.__version__}")
    print(f"[train] config {json.dumps(cfg)}")

    # ---- data: uint8 tensors in memory (Training is ~66 MB); normalise per batch
    d = D.load_fer(a.data, cache_dir=None if a.cache_dir == "none" else a.cache_dir)
    if cfg["drop_not_face"]:
        d = D.drop_not_faces(d)
    xtr, ytr = d.split("Training")
    rtr = d.rows[d.mask("Training")]
    xva, yva = d.split("PublicTest")
    if a.limit:
        xtr, ytr, rtr = xtr[: a.limit], ytr[: a.limit], rtr[: a.limit]
        xva, yva = xva[: a.limit], yva[: a.limit]
    if cfg["train_limit"] and cfg["train_limit"] < len(ytr):
        keep = np.sort(np.random.default_rng(cfg["seed"]).choice(len(ytr), cfg["train_limit"], replace=False))
        xtr, ytr, rtr = xtr[keep], ytr[keep], rtr[keep]
    if cfg["teacher"] and cfg["teacher_models"]:
        raise SystemExit("set `teacher` (targets computed once) or `teacher_models` (online), not both")
    soft_targets = []  # (weight, per-face probabilities), blended into the label target in this order
    online = cfg["kd_weight"] > 0 and bool(cfg["teacher_models"])
    teachers = load_teacher_models(cfg["teacher_models"]) if online else []
    offline = cfg["kd_weight"] > 0 and not online
    if offline:
        soft_targets.append((cfg["kd_weight"], load_teacher(cfg["teacher"], rtr)))
    if cfg["ferplus_weight"] > 0:
        soft_targets.append((cfg["ferplus_weight"], ferplus_targets(d, rtr, ytr)))
    mean, std = D.norm_stats(xtr)
    print(f"[train] train {len(ytr)}, val {len(yva)}, mean {mean:.4f} std {std:.4f}")
    bn_faces = None
    if cfg["bn_recalibrate"]:  # a fixed subset, drawn with the run's seed
        pick = np.random.default_rng(cfg["seed"]).permutation(len(xtr))[: cfg["bn_recalibrate"]]
        bn_faces = torch.from_numpy(D.normalize(xtr[np.sort(pick)], mean, std))
    xtr = torch.from_numpy(xtr).unsqueeze(1)  # uint8 B,1,48,48
    ytr = torch.from_numpy(ytr)
    xva_n = torch.from_numpy(D.normalize(xva, mean, std))
    yva = torch.from_numpy(yva)

    # ---- model / optimiser
    model = create_model(cfg["model"], **cfg["model_cfg"])
    model._arch, model._cfg = cfg["model"], cfg["model_cfg"]
    if cfg["init"] and not a.resume:
        init_sd = torch.load(REPO_ROOT / cfg["init"], map_location="cpu", weights_only=True)
        if cfg["init_widen"]:
            init_sd = widen_state_dict(init_sd, model, seed=cfg["seed"])
        model.load_state_dict(init_sd)
        print(f"[train] initialised from {cfg['init']}" + (" (widened)" if cfg["init_widen"] else ""))
    mf = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
    model = model.to(memory_format=mf)
    # No weight decay on BN/bias: decaying scale/shift parameters only hurts.
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg["weight_decay"], "lr_mult": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0},
    ]
    island = None
    if cfg["island_weight"] > 0:
        island = IslandLoss(7, model.embed_dim, cfg["island_lambda"])
        groups.append(
            {"params": list(island.parameters()), "weight_decay": 0.0, "lr_mult": cfg["center_lr_mult"]}
        )
    opt = make_optimizer(cfg, groups)
    ema = EMA(model, cfg["ema_decay"]) if cfg["ema_decay"] > 0 else None
    aug_cfg = AugConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["aug"].items()})

    bs = cfg["batch_size"]
    steps_per_epoch = len(ytr) // bs  # drop the last partial batch: BN dislikes tiny batches
    total_steps = cfg["epochs"] * steps_per_epoch
    warmup = int(cfg["warmup_epochs"] * steps_per_epoch)
    start_epoch, step, best, history = 0, 0, {"acc": -1.0}, []
    t_run_start = time.time()
    deadline = parse_deadline(a.deadline)

    if a.resume and (ck_dir / "last.pt").exists():
        ck = torch.load(ck_dir / "last.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        if ema and ck.get("ema"):
            ema.model.load_state_dict(ck["ema"])
            ema.updates = ck["ema_updates"]
        if island and ck.get("island"):
            island.load_state_dict(ck["island"])
        start_epoch, step, best = ck["epoch"] + 1, ck["step"], ck["best"]
        t_run_start = ck.get("t_run_start", t_run_start)
        torch.set_rng_state(ck["rng"])
        mpath = run_dir / "metrics.jsonl"
        history = (
            [json.loads(line) for line in mpath.read_text().splitlines() if line.strip()]
            if mpath.exists()
            else []
        )
        history = [h for h in history if h["epoch"] < start_epoch]
        mpath.write_text("".join(json.dumps(h) + "\n" for h in history))
        print(f"[train] resumed from epoch {ck['epoch']} (step {step}), best so far {best}")
    elif not a.resume and (run_dir / "metrics.jsonl").exists():
        (run_dir / "metrics.jsonl").unlink()

    meta_base = dict(
        arch=cfg["model"],
        model_cfg=cfg["model_cfg"],
        mean=mean,
        std=std,
        labels=D.LABELS,
        temperature=1.0,
        input="1x48x48 grey, x=(pixels/255-mean)/std",
        train_config=cfg,
        # by hash: models/fer_vgg.pt changes with each release
        ingredients=ingredient_records(
            REPO_ROOT,
            init=cfg["init"],
            teacher_models=cfg["teacher_models"] if online else (),
            teacher=cfg["teacher"] if offline else None,
        ),
        data_report=d.report,
    )
    from tqdm import tqdm

    t_start = time.time()
    if deadline:
        print(
            f"[train] deadline {time.strftime('%H:%M:%S', time.gmtime(deadline))} UTC "
            f"({(deadline - time.time()) / 60:.0f} min from now)"
        )

    def progress():
        p = (step - warmup) / max(1, total_steps - warmup)
        if deadline:
            span = deadline - t_run_start  # <= 0: the deadline passed before the run started
            p = max(p, (time.time() - t_run_start) / span if span > 0 else 1.0)
        return p

    done, lr = False, float("nan")  # nan: recorded if a passed deadline leaves no step to take
    for epoch in range(start_epoch, cfg["epochs"]):
        model.train()
        g = torch.Generator().manual_seed(cfg["seed"] * 1000 + epoch)  # per-epoch stream: resume-reproducible
        perm = torch.randperm(len(ytr), generator=g)
        tl, tc, tn, t0 = 0.0, 0, 0, time.time()
        pbar = tqdm(
            range(steps_per_epoch),
            desc=f"ep {epoch + 1}/{cfg['epochs']}",
            file=sys.stdout,
            disable=a.no_progress,
            mininterval=1.0 if sys.stdout.isatty() else 30.0,
            ncols=100,
        )
        for it in pbar:
            prog = progress()  # before the batch is built: no augmentation or teacher pass after the end
            if prog >= 1.0 and step >= warmup:
                done = True  # schedule finished (deadline reached): stop mid-epoch, evaluate, save
                break
            idx = perm[it * bs : (it + 1) * bs]
            xb = xtr[idx].float().div_(255)
            yb = ytr[idx]
            xb = augment(xb, aug_cfg, g)
            xb = (xb - mean) / std
            ls = cfg["label_smoothing"]
            target = F.one_hot(yb, 7).float() * (1 - ls) + ls / 7
            for weight, probs in soft_targets:  # target = (1 - weight) * target + weight * probs
                target = torch.lerp(target, probs[idx], weight)
            mixed = cfg["mix_prob"] > 0 and torch.rand(1, generator=g).item() < cfg["mix_prob"]
            if mixed:
                xb, target = mixup_cutmix(xb, target, cfg["mixup"], cfg["cutmix"], g)
            if teachers:  # the teachers score exactly the faces the student is about to see
                taught = teacher_probabilities(teachers, xb * std + mean, cfg["bf16"], cfg["teacher_flip"])
                target = torch.lerp(target, taught, cfg["kd_weight"])
            xb = xb.contiguous(memory_format=mf)
            lr = lr_at(step, warmup, cfg["lr"], cfg["min_lr_frac"], prog)
            for gr in opt.param_groups:
                gr["lr"] = lr * gr["lr_mult"]
            island_w = 0.0 if mixed else cfg["island_weight"]  # a mixed batch has no single class per face
            loss, logits = batch_loss(model, xb, target, cfg["bf16"], island, island_w, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["sam_rho"] > 0:
                again = functools.partial(batch_loss, model, xb, target, cfg["bf16"], island, island_w, yb)
                trained = [p for gr in opt.param_groups for p in gr["params"]]  # Island centres included
                sharpness_aware_grad(trained, cfg["sam_rho"], again)
            opt.step()
            if ema:
                ema.update(model)
            step += 1
            tl += loss.item() * len(yb)
            tc += (logits.argmax(1) == yb).sum().item()
            tn += len(yb)
            pbar.set_postfix(loss=f"{tl / tn:.3f}", acc=f"{tc / tn:.3f}", lr=f"{lr:.4f}", refresh=False)
            if a.max_steps and step >= a.max_steps:
                done = True
                break
        pbar.close()
        train_time = time.time() - t0

        # ---- evaluate EMA (and every eval_raw_every epochs + at the end, raw) weights on PublicTest; keep
        # the best. Raw evaluation is skippable: on a busy CPU each pass costs a noticeable share of an epoch.
        # With bn_recalibrate, BatchNorm statistics are first re-estimated on clean faces: the ones training
        # leaves follow augmented batches and cost ~1 point of PublicTest accuracy (models/MODEL_CARD.md).
        # Overwriting them does not disturb training, whose BatchNorm normalises with batch statistics.
        t_eval = time.time()
        last = done or progress() >= 1.0 or epoch == cfg["epochs"] - 1
        eval_raw = ema is None or last or (epoch + 1) % max(1, cfg["eval_raw_every"]) == 0
        if bn_faces is not None:  # in bf16 where training is: 2.5x faster, same fp32 accuracy (MODEL_CARD.md)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg["bf16"]):
                for m in ([model] if eval_raw else []) + ([ema.model] if ema else []):
                    recalibrate_batchnorm(m, bn_faces)
        if eval_raw:
            vl, va = evaluate_logits(
                predict(model, xva_n, cfg["eval_batch"], cfg["bf16"], cfg["channels_last"]), yva
            )
        else:
            vl, va = float("nan"), float("nan")
        el, ea = (
            evaluate_logits(
                predict(ema.model, xva_n, cfg["eval_batch"], cfg["bf16"], cfg["channels_last"]), yva
            )
            if ema
            else (vl, va)
        )
        rec = dict(
            epoch=epoch,
            step=step,
            lr=lr,
            progress=progress(),
            train_loss=tl / max(tn, 1),
            train_acc=tc / max(tn, 1),
            val_loss=vl,
            val_acc=va,
            ema_val_loss=el,
            ema_val_acc=ea,
            epoch_time=time.time() - t0,
            img_per_s=tn / train_time,
            eval_time=time.time() - t_eval,
            elapsed=time.time() - t_start,
        )
        history.append(rec)
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(
            f"[train] epoch {epoch + 1}: train loss {rec['train_loss']:.4f} acc {rec['train_acc']:.4f} | "
            f"val loss {vl:.4f} acc {va:.4f} | ema loss {el:.4f} acc {ea:.4f} | "
            f"{rec['img_per_s']:.0f} img/s, {rec['epoch_time']:.0f}s",
            flush=True,
        )

        use_ema = ema is not None and not va > ea  # (nan-safe: raw not evaluated -> EMA)
        cur_acc = ea if use_ema else va
        if cur_acc > best["acc"]:
            best = {"acc": cur_acc, "loss": el if use_ema else vl, "epoch": epoch, "ema": use_ema}
            meta = dict(
                meta_base, metrics={ACCURACY_KEY[cfg["bf16"]]: cur_acc, "epoch": epoch + 1, "ema": use_ema}
            )
            save_weights(ck_dir / "best.pt", ema.model if use_ema else model, meta)
        ck = dict(
            model=model.state_dict(),
            opt=opt.state_dict(),
            ema=ema.model.state_dict() if ema else None,
            ema_updates=ema.updates if ema else 0,
            island=island.state_dict() if island else None,
            epoch=epoch,
            step=step,
            best=best,
            rng=torch.get_rng_state(),
            config=cfg,
            t_run_start=t_run_start,
        )
        torch.save(ck, ck_dir / "last.pt.tmp")
        os.replace(ck_dir / "last.pt.tmp", ck_dir / "last.pt")  # atomic: a kill mid-save keeps the old one
        if done or progress() >= 1.0:
            break

    # ---- finish: best weights to run dir, plots, confusion matrix of the best model
    print(
        f"[train] done in {(time.time() - t_start) / 60:.1f} min; best PublicTest acc {best['acc']:.4f} "
        f"(epoch {best.get('epoch', -1) + 1}, ema={best.get('ema')})"
    )
    cm = None
    if (ck_dir / "best.pt").exists():
        shutil.copy(ck_dir / "best.pt", run_dir / "best.pt")
        shutil.copy(ck_dir / "best.json", run_dir / "best.json")
        from training.models import load_shipped_model

        bm, _ = load_shipped_model(run_dir / "best.pt")
        pred = predict(bm, xva_n, cfg["eval_batch"], False, False).argmax(1).numpy()
        from training.metrics import confusion_matrix

        cm = confusion_matrix(yva.numpy(), pred, 7)
    if not a.no_plots and history:
        make_plots(run_dir, history, cm)
    return best


if __name__ == "__main__":
    main()
