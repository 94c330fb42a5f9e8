"""Weight soups: averaging and BatchNorm re-estimation, on real models of the registry."""

import json

import pytest
import torch

from tests.training.tiny import TINY, saved_tiny_model, tiny_csv
from training import data as D
from training import export, soup
from training.ensemble import accuracy
from training.evaluate import logits_for
from training.models import create_model, load_shipped_model, recalibrate_batchnorm
from training.soup import average_weights
from training.train import save_weights


def test_average_of_two_models_is_their_mean_and_keeps_counters():
    torch.manual_seed(0)
    a, b = (create_model("fer_vgg", verbose=False, width=8) for _ in range(2))
    soup = average_weights([a, b])
    for key, value in a.state_dict().items():
        if value.dtype.is_floating_point:
            assert torch.allclose(soup[key], (value + b.state_dict()[key]) / 2)
        else:
            assert torch.equal(soup[key], value)
    model = create_model("fer_vgg", verbose=False, width=8)
    model.load_state_dict(soup)  # loads: same keys and shapes


def test_batchnorm_statistics_are_re_estimated_from_the_data():
    torch.manual_seed(0)
    model = create_model("fer_vgg", verbose=False, width=8).eval()
    x = torch.randn(300, 1, 48, 48) * 3 + 5  # far from the initial statistics (mean 0, var 1)
    recalibrate_batchnorm(model, x, batch=100)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        activations = conv(x)
    assert not model.training
    assert torch.allclose(first.running_mean, activations.mean((0, 2, 3)), rtol=1e-3, atol=1e-3)
    assert torch.allclose(first.running_var, activations.var((0, 2, 3)), rtol=1e-2, atol=1e-3)


def test_batchnorm_re_estimation_runs_without_dropout_and_keeps_the_momentum():
    torch.manual_seed(0)
    model = create_model("fer_vgg", verbose=False, width=8, dropout=0.5)
    x = torch.randn(200, 1, 48, 48)
    recalibrate_batchnorm(model, x, batch=len(x))  # one batch: the stages normalise as in eval mode
    neck_bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d))
    with torch.no_grad():  # what the neck's BatchNorm sees at test time: dropout off
        features = model.neck[:3](model.stages(x))  # flatten, dropout, linear
    assert torch.allclose(neck_bn.running_var, features.var(0), rtol=1e-2)  # with dropout: ~2x
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_export_refuses_weights_that_are_not_a_release_without_a_version(tmp_path):
    weights, out = tmp_path / "soup.pt", tmp_path / "models" / "fer_vgg.pt"
    meta = {"arch": "fer_vgg", "model_cfg": {"width": 8}, "mean": 0.5, "std": 0.25}
    save_weights(weights, create_model("fer_vgg", verbose=False, width=8), meta)
    with pytest.raises(SystemExit, match="not a release"):
        export.main(["--weights", str(weights), "--out", str(out)])
    assert not out.parent.exists()


def test_a_soup_with_a_release_in_it_records_its_members_not_the_release_figures(tmp_path):
    """The soup keeps the first member's training options but neither its ingredients nor what export
    measured for a release, and a release that was itself a soup is recorded by its own members (its
    train_config is not the run that made it)."""
    base = {"arch": "fer_vgg", "model_cfg": {"width": 8}, "mean": 0.5, "std": 0.25, "temperature": 1.0}
    release = base | {
        "version": "0.3.0",
        "train_config": {"name": "restart"},
        "soup_of": [{"run": None, "version": "0.2.0"}, {"run": "cont_b", "version": None}],
        "calibration": {"temperature": 0.97},
        "onnx": {"onnx_int8": {"accuracy": 0.7}},
        "soup_of_note": "recorded after the fact",
        "source_weights": "runs/old_soup/best.pt",
    }
    run = base | {
        "train_config": {"name": "sam_a", "drop_not_face": True},
        "ingredients": {"init": [{"weights": "models/fer_vgg.pt", "version": "0.3.0"}]},
    }
    paths = [tmp_path / "run.pt", tmp_path / "release.pt"]
    for path, meta in zip(paths, (run, release), strict=True):
        save_weights(path, create_model("fer_vgg", verbose=False, width=8), meta)

    written = soup.soup_metadata(paths, [run, release], 0.7125)
    assert written["train_config"] == run["train_config"] and written["model_cfg"] == {"width": 8}
    assert not set(soup.RELEASE_ONLY_KEYS) & set(written)
    assert "ingredients" not in written  # the first member's start is not the soup's: soup_of leads to it
    assert written["metrics"] == {"acc": 0.7125}
    first, second = written["soup_of"]
    assert (first["run"], first["version"]) == ("sam_a", None) and "soup_of" not in first
    assert (second["run"], second["version"], second["soup_of"]) == (None, "0.3.0", ["0.2.0", "cont_b"])


def test_soup_command_writes_the_soup_it_reports(tmp_path):
    """`python -m training.soup` end to end on a tiny CSV: the written model is the members' weight average
    with BatchNorm statistics re-estimated on the Training faces, it scores what the report says, plain
    and with TTA, its sidecar names the members, and the report is saved beside it as soup.json."""
    csv = tiny_csv(tmp_path)
    paths = [saved_tiny_model(tmp_path / f"{n}.pt", s, train_config={"name": n}) for s, n in enumerate("ab")]
    out = tmp_path / "soup" / "best.pt"
    report = soup.main(["--weights", *map(str, paths), "--data", str(csv), "--out", str(out), "--tta"])

    model, meta = load_shipped_model(out)
    averaged = average_weights([load_shipped_model(p)[0] for p in paths])
    statistics = [k for k in averaged if k.endswith(("running_mean", "running_var"))]
    assert statistics
    for key, value in model.state_dict().items():
        if key in statistics:
            assert not torch.allclose(value, averaged[key])  # re-estimated, not averaged
        elif value.dtype.is_floating_point:
            assert torch.allclose(value, averaged[key])
    x8, y = D.parse_csv(csv).split("PublicTest")
    x = torch.from_numpy(D.normalize(x8, meta["mean"], meta["std"]))
    assert report["soup_accuracy"] == accuracy(logits_for(model, x), y)
    assert report["soup_accuracy_tta"] == accuracy(logits_for(model, x, tta=True), y)
    assert set(report["members"]) == set(map(str, paths)) and report["n"] == 21
    assert meta["metrics"] == {"acc": report["soup_accuracy"]} and report["written"] == str(out)
    assert json.loads((out.parent / "soup.json").read_text()) == report
    assert [m["run"] for m in meta["soup_of"]] == ["a", "b"]


def test_soup_command_refuses_members_of_different_configurations(tmp_path):
    csv = tiny_csv(tmp_path)
    a = saved_tiny_model(tmp_path / "a.pt", 0)
    b = saved_tiny_model(tmp_path / "b.pt", 1, model_cfg=TINY | {"hidden": 8})
    with pytest.raises(SystemExit, match="same architecture and configuration"):
        soup.main(["--weights", str(a), str(b), "--data", str(csv), "--out", str(tmp_path / "s.pt")])
    assert not (tmp_path / "s.pt").exists()
