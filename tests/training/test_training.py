"""Fast tests for the training package (whole file well under a minute on one core).

Real data is found at <repo>/../shared/data/fer2013/ or via env FER_DATA (path to the CSV.gz).
"""

import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.tiny import TINY, tiny_csv
from training import data as D
from training import metrics as M
from training.models import create_model, list_models
from training.train import DEFAULTS, load_config

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
DATA = Path(
    os.environ.get("FER_DATA") or REPO.parent / "shared/data/fer2013/fer2013_training_publictest.csv.gz"
)
SHIPPED = REPO / "models/fer_vgg.pt"
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"FER data not found at {DATA}")


def _row(label, n=2304, value="7", usage="Training"):
    return f"{label},{' '.join([value] * n)},{usage}"


# ---------------------------------------------------------------------------------------------- data


@pytest.mark.parametrize("gz", [False, True])
def test_loader_cleans_planted_bad_rows(tmp_path, gz):
    lines = [
        "emotion,pixels,Usage",
        _row(0),
        _row(6, usage="PublicTest"),
        _row(3, usage="PrivateTest"),  # 3 good
        _row(7),  # label out of range
        _row(-1),  # label out of range
        "x," + " ".join(["1"] * 2304) + ",Training",  # non-int label
        _row(2, n=2303),  # too few pixels
        _row(2, n=2305),  # too many pixels
        _row(2, value="256"),  # pixel out of 0..255
        _row(1, usage="Bogus"),
    ]  # unknown split
    text = "\n".join(lines) + "\n"
    p = tmp_path / ("f.csv.gz" if gz else "f.csv")
    if gz:
        with gzip.open(p, "wt") as f:
            f.write(text)
    else:
        p.write_text(text)
    d = D.load_fer(p, cache_dir=tmp_path / "cache")
    r = d.report
    assert r["rows_read"] == 10 and r["rows_kept"] == 3 and r["dropped_total"] == 7
    assert r["dropped"] == {"bad_label": 3, "bad_pixel_count": 2, "bad_pixel_value": 1, "unknown_usage": 1}
    assert r["per_split"] == {"Training": 1, "PublicTest": 1, "PrivateTest": 1}
    assert d.images.shape == (3, 48, 48) and d.images.dtype == np.uint8 and (d.images == 7).all()
    assert list(d.labels) == [0, 6, 3] and list(d.rows) == [0, 1, 2]
    x, y = d.split("PrivateTest")
    assert len(y) == 1 and y[0] == 3
    # second load comes from the .npy cache and is identical
    d2 = D.load_fer(p, cache_dir=tmp_path / "cache")
    assert (d2.images == d.images).all() and d2.report == r
    assert len(list((tmp_path / "cache").glob("*/images.npy"))) == 1


def test_ferplus_majority_maps_votes_to_labels_and_skips_ties_and_non_emotions(tmp_path):
    votes = tmp_path / "ferplus.csv"
    votes.write_text(
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
        "Training,a.png,1,0,0,0,8,0,1,0,0,0\n"  # anger
        "Training,b.png,0,5,0,0,0,0,0,0,0,5\n"  # tie: no majority
        "Training,c.png,0,0,0,0,0,0,0,7,3,0\n"  # contempt: no FER-2013 class
        "Training,d.png,6,0,0,4,0,0,0,0,0,0\n"  # neutral
        "PublicTest,e.png,0,0,0,0,0,0,0,0,0,0\n"  # no votes at all
        "PublicTest,f.png,0,0,0,0,0,9,1,0,0,0\n"  # disgust
    )
    major = D.ferplus_majority(votes, 6)
    assert [D.LABELS[k] if k >= 0 else None for k in major] == [
        "angry",
        None,
        None,
        "neutral",
        None,
        "disgust",
    ]
    assert list(D.ferplus_majority(votes, 2)) == [0, -1]  # aligned by position, first n rows only


def test_ferplus_distribution_spreads_the_seven_expressions_votes(tmp_path):
    votes = tmp_path / "ferplus.csv"
    votes.write_text(
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
        "Training,a.png,2,0,0,0,6,0,0,2,0,0\n"  # 6 anger, 2 neutral; contempt has no FER-2013 class
        "Training,b.png,0,0,0,0,0,0,0,4,3,3\n"  # none of the seven
    )
    dist = D.ferplus_distribution(votes, 2)
    assert dist.dtype == np.float32 and dist.shape == (2, 7)
    assert np.allclose(dist[0], [0.75, 0, 0, 0, 0, 0, 0.25]) and not dist[1].any()


def test_ferplus_votes_are_read_once_per_file_version_and_shared_read_only(tmp_path):
    votes = tmp_path / "ferplus.csv"
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    votes.write_text(header + "Training,a.png,0,0,0,0,0,0,0,0,0,10\n")
    names, first = D.ferplus_votes(votes, 1)
    again = D.ferplus_votes(votes, 1)[1]  # the second caller (soft targets) shares the parsed array
    assert np.shares_memory(again, first)
    with pytest.raises(ValueError):
        first[0, 0] = 1
    assert D.ferplus_votes(votes, 3)[1].tolist()[1:] == [[0] * 10] * 2  # zeros past the file's end
    assert D.ferplus_not_face(votes, 1).tolist() == [True]
    votes.write_text(header + "Training,a.png,9,0,0,0,0,0,0,0,0,1\n")  # rewritten (size equal, mtime not)
    os.utime(votes, ns=(0, 0))
    assert D.ferplus_not_face(votes, 1).tolist() == [False]
    assert names.index("NF") == 9


def test_normalize_contract():
    x = np.array([[[0, 255]]], np.uint8).repeat(48, 1).repeat(24, 2)
    out = D.normalize(x, 0.5, 0.25)
    assert out.shape == (1, 1, 48, 48) and out.dtype == np.float32
    assert np.isclose(out.min(), -2.0) and np.isclose(out.max(), 2.0)


# ---------------------------------------------------------------------------------------------- configs


def test_config_base_is_overridden_key_by_key_and_nested_dicts_merge(tmp_path):
    base = {"lr": 0.01, "seed": 1, "aug": {"flip": 0.5, "rotate": 10}}
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "child.json").write_text(json.dumps({"base": "base.json", "lr": 0.002, "aug": {"rotate": 0}}))
    (tmp_path / "grandchild.json").write_text(json.dumps({"base": "child.json", "seed": 7}))
    cfg = load_config(tmp_path / "grandchild.json")
    assert cfg == {"lr": 0.002, "seed": 7, "aug": {"flip": 0.5, "rotate": 0}}


@pytest.mark.parametrize("path", sorted((REPO / "training/configs").glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_config_resolves_to_known_keys_and_a_registered_model(path):
    cfg = load_config(path)
    assert set(cfg) <= set(DEFAULTS), f"unknown keys {set(cfg) - set(DEFAULTS)}"
    assert cfg["model"] in list_models()
    create_model(cfg["model"], verbose=False, **cfg["model_cfg"])


# ---------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize("name", list_models())
def test_every_model_gives_7_logits(name):
    cfg = {
        "vgg19_seed": {"hidden": 256},  # keep the seed's FC layers small for speed
        "logit_ensemble": {
            "members": [
                {"arch": "fer_vgg", "model_cfg": {"width": 8}},
                {"arch": "resnet18", "model_cfg": {"width": 8}},
            ]
        },
    }.get(name, {})
    m = create_model(name, verbose=False, **cfg).eval()
    with torch.no_grad():
        out = m(torch.randn(2, 1, 48, 48))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    z = m.forward_features(torch.randn(2, 1, 48, 48))
    assert z.shape == (2, m.embed_dim)


def test_vgg19_seed_is_faithful():
    m = create_model("vgg19_seed", verbose=False, hidden=256)
    convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    assert len(convs) == 16 and all(
        c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in convs
    )
    assert sum(isinstance(mod, torch.nn.MaxPool2d) for mod in m.modules()) == 5
    assert sum(isinstance(mod, torch.nn.Linear) for mod in m.modules()) == 3
    assert sum(isinstance(mod, torch.nn.Dropout) for mod in m.modules()) == 2


def test_augment_shapes_and_range():
    from training.augment import AugConfig, augment, mixup_cutmix, occlude

    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 48, 48)
    y = augment(x, AugConfig(), g)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    o = occlude(x, 0.25, g, value=-1.0)
    assert ((o == -1).float().mean(dim=(1, 2, 3)) - 0.25).abs().max() < 0.01
    xm, tm = mixup_cutmix(x, torch.eye(7)[torch.randint(0, 7, (16,))], 0.2, 1.0, g)
    assert xm.shape == x.shape and torch.allclose(tm.sum(1), torch.ones(16))


# ---------------------------------------------------------------------------------------------- training


@needs_data
@pytest.mark.parametrize("sam_rho", [0.0, 0.05])
def test_short_training_run_learns(tmp_path, sam_rho):
    """400 real faces, used as both train and val: the real train.main must fit them (loss falls,
    accuracy well above the 1/7 chance level), with plain SGD steps and with SAM's."""
    from training import train

    d = D.parse_csv(DATA, usages={"Training"}, max_rows=400)
    lines = ["emotion,pixels,Usage"]
    for usage in ("Training", "PublicTest"):
        lines += [
            f"{y},{' '.join(map(str, im.ravel()))},{usage}" for im, y in zip(d.images, d.labels, strict=True)
        ]
    csv = tmp_path / "small.csv"
    csv.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    best = train.main(
        [
            "--data",
            str(csv),
            "--run-dir",
            str(run),
            "--epochs",
            "12",
            "--no-progress",
            "--no-plots",
            "--set",
            'model_cfg={"width": 16, "depths": [1, 1, 2, 2], "dropout": 0.0}',
            "lr=0.05",
            "ema_decay=0",
            "label_smoothing=0",
            "warmup_epochs=1",
            "batch_size=50",
            f"sam_rho={sam_rho}",
            'aug={"rotate": 0, "scale": [1, 1], "translate": 0.03, "erase_p": 0}',
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    hist = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(hist) == 12
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.3
    assert best["acc"] > 0.35, best
    assert (run / "best.pt").exists() and (run / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize("warmup_epochs", [0, 1])
def test_a_passed_deadline_ends_the_schedule_after_the_warm_up(tmp_path, warmup_epochs):
    """--deadline runs the schedule on wall-clock time: with the deadline already passed, a run takes only
    its warm-up steps (4 per epoch here), then evaluates and keeps its weights."""
    from training import train

    run = tmp_path / "run"
    args = ["--data", str(tiny_csv(tmp_path)), "--cache-dir", "none", "--run-dir", str(run), "--no-progress"]
    args += ["--no-plots", "--deadline", str(time.time()), "--set", f"model_cfg={json.dumps(TINY)}"]
    args += ["epochs=6", "batch_size=16", f"warmup_epochs={warmup_epochs}", "ema_decay=0"]
    train.main(args)

    hist = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [4 * warmup_epochs]
    assert (run / "best.pt").exists()


@needs_data
def test_saved_weights_carry_batchnorm_statistics_of_the_clean_training_faces(tmp_path):
    """With bn_recalibrate, the weights a run keeps have BatchNorm statistics of the clean (unaugmented)
    Training faces, not the running averages over augmented batches that training leaves."""
    from training import train
    from training.models import load_shipped_model, recalibrate_batchnorm

    d = D.parse_csv(DATA, usages={"Training"}, max_rows=200)
    rows = [
        f"{y},{' '.join(map(str, im.ravel()))},{u}"
        for u in ("Training", "PublicTest")
        for im, y in zip(d.images, d.labels, strict=True)
    ]
    csv = tmp_path / "small.csv"
    csv.write_text("\n".join(["emotion,pixels,Usage", *rows]) + "\n")
    args = ["--data", str(csv), "--run-dir", str(tmp_path / "run"), "--epochs", "2", "--no-progress"]
    args += ["--no-plots", "--cache-dir", "none", "--set", 'model_cfg={"width": 8, "depths": [1, 1, 1, 1]}']
    train.main([*args, "batch_size=50", "bn_recalibrate=1000"])  # more than 200: all the Training faces

    model, meta = load_shipped_model(tmp_path / "run" / "best.pt")
    kept = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    # re-estimated as the run did it: in bf16 autocast where the run trained in bf16, whose ~3 significant
    # digits set the tolerance (the statistics training leaves differ far more: relative differences up to 10)
    bf16 = meta["train_config"]["bf16"] is True
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        recalibrate_batchnorm(model, torch.from_numpy(D.normalize(d.images, meta["mean"], meta["std"])))
    again = {k: v for k, v in model.state_dict().items() if "running" in k}
    tol = dict(rtol=5e-2, atol=1e-3) if bf16 else dict(rtol=1e-3, atol=2e-4)
    assert kept and all(torch.allclose(kept[k], again[k], **tol) for k in kept)


def test_sharpness_aware_grad_is_the_gradient_at_the_worst_nearby_point_and_restores_the_weights():
    """SAM on f(w) = sum(w^4): the gradient it leaves is f's gradient at w + rho * g / |g| (g = f'(w)), and
    the weights come back unchanged, so the optimizer steps from where it was."""
    from training.train import sharpness_aware_grad

    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    unused = torch.nn.Parameter(torch.ones(2))  # no gradient: must be left alone
    rho = 0.3
    (w**4).sum().backward()
    g = w.grad.clone()
    sharpness_aware_grad([w, unused], rho, lambda: ((w**4).sum(),))
    assert torch.equal(w.detach(), torch.tensor([1.0, -2.0, 0.5]))
    worst = w.detach() + rho * g / g.norm()
    assert torch.allclose(w.grad, 4 * worst**3)
    assert unused.grad is None and torch.equal(unused.detach(), torch.ones(2))


def test_train_speed_times_the_configured_model_and_batch():
    from training import train_speed

    tiny = 'model_cfg={"width": 4, "depths": [1, 1, 1, 1]}'
    report = train_speed.main(["--set", tiny, "--batch-size", "8", "--steps", "2", "--sam"])
    assert report["model_cfg"]["width"] == 4 and report["batch_size"] == 8 and report["steps"] == 2
    assert report["sam_rho"] == 0.05 and report["faces_per_s"] == 8 / report["median_step_s"] > 0


# ---------------------------------------------------------------------------------------------- metrics


def test_metrics_on_hand_computed_confusion():
    # 3 classes; rows true. y_true/y_pred realise this confusion matrix:
    cm_expected = np.array([[3, 1, 0], [0, 2, 2], [1, 0, 1]])
    y_true = np.repeat([0, 0, 1, 1, 2, 2], [3, 1, 2, 2, 1, 1])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0, 2])
    cm = M.confusion_matrix(y_true, y_pred, 3)
    assert (cm == cm_expected).all()
    p, r, f, s = M.per_class_prf(cm)
    # precision = diag / column sums = 3/4, 2/3, 1/3; recall = diag / row sums = 3/4, 2/4, 1/2
    assert np.allclose(p, [0.75, 2 / 3, 1 / 3]) and np.allclose(r, [0.75, 0.5, 0.5])
    assert np.allclose(f, [0.75, 2 * (2 / 3 * 0.5) / (2 / 3 + 0.5), 2 * (1 / 3 * 0.5) / (1 / 3 + 0.5)])
    assert list(s) == [4, 4, 2] and M.accuracy(cm) == 0.6
    # a class never predicted and never present: 0/0 is reported as 0, not NaN
    p2, r2, f2, _ = M.per_class_prf(np.array([[1, 0], [0, 0]]))
    assert p2[1] == 0 and r2[1] == 0 and f2[1] == 0


def test_ece_auc_loss_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = np.array([0, 1, 1, 1])
    # bins (15): conf 0.9 -> bin 13 correct; 0.8 -> bin 11 wrong; 0.7 -> bin 10 correct; 0.6 -> bin 8 wrong
    # ECE = 1/4 * (|1-.9| + |0-.8| + |1-.7| + |0-.6|) = 1.8 / 4
    assert np.isclose(M.ece(probs, y, 15), 0.45)
    # AUC for class 1 with scores .1 .2 .7 .4 (positives idx 1,2,3): pairs pos>neg = 3 of 3 -> 1.0;
    # class 0 (scores .9 .8 .3 .6, positive idx 0): .9 beats all 3 negatives -> 1.0
    assert np.isclose(M.auc_ovr_macro(probs, y), 1.0)
    assert np.isclose(M.binary_auc(np.array([0.5, 0.5, 0.1]), np.array([1, 0, 0])), 0.75)  # tie counts half
    assert np.isclose(M.log_loss(probs, y), -np.mean(np.log([0.9, 0.2, 0.7, 0.4])))
    # temperature: over-confident logits get T > 1
    rng = np.random.default_rng(0)
    yy = rng.integers(0, 3, 2000)
    logits = rng.normal(size=(2000, 3))
    logits[np.arange(2000), yy] += 1.0
    assert M.fit_temperature(logits * 5, yy) > 2.0


def test_sklearn_agreement():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, 500)
    probs = rng.dirichlet(np.ones(7), 500)
    s = M.summarize(probs, y, D.LABELS)
    assert np.isclose(s["macro_f1"], sk.f1_score(y, probs.argmax(1), average="macro"))
    assert np.isclose(s["auc_ovr_macro"], sk.roc_auc_score(y, probs, multi_class="ovr", average="macro"))


# ---------------------------------------------------------------------------------------------- shipped model


@needs_data
@pytest.mark.skipif(not SHIPPED.exists(), reason="shipped weights models/fer_vgg.pt not present yet")
def test_shipped_model_accuracy_on_publictest():
    from training.models import load_shipped_model

    model, meta = load_shipped_model()
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert meta["labels"] == D.LABELS
    d = D.parse_csv(DATA, usages={"PublicTest"})
    x, y = d.split("PublicTest")
    x, y = x[:1000], y[:1000]
    xn = torch.from_numpy(D.normalize(x, meta["mean"], meta["std"]))
    with torch.no_grad():
        pred = torch.cat([model(xn[i : i + 250]) for i in range(0, len(xn), 250)]).argmax(1).numpy()
    acc = (pred == y).mean()
    assert acc >= 0.65, acc
