"""Fast tests for the experiment grid and the options it needs (vgg19_seed kernel_size, optimizer,
train_limit). Real models, real optimisers, a real (tiny, synthetic) trainer run; no mocks."""

import json

import numpy as np
import pytest
import torch

from training import experiments as E
from training.models import create_model, list_models
from training.train import DEFAULTS, make_optimizer

torch.set_num_threads(1)


def _convs(m):
    return [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]


def test_vgg19_kernel_size_2_keeps_shapes_and_gives_7_logits():
    m = create_model("vgg19_seed", verbose=False, kernel_size=2, hidden=64).eval()
    assert len(_convs(m)) == 16 and all(c.kernel_size == (2, 2) for c in _convs(m))
    x = torch.randn(1, 1, 48, 48)
    with torch.no_grad():
        assert m.features(x).shape == (1, 512, 1, 1)  # every conv kept the size: 48 -> ... -> 1 via pools
        assert m(x).shape == (1, 7)


def test_vgg19_default_kernel_is_3x3_and_state_dict_unchanged():
    a = create_model("vgg19_seed", verbose=False, hidden=64)
    b = create_model("vgg19_seed", verbose=False, hidden=64, kernel_size=3)
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in _convs(a))
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
    assert "features.0.weight" in a.state_dict()  # same keys as before the option existed


@pytest.mark.parametrize("name,lr,cls", [("sgd", 0.05, torch.optim.SGD), ("adam", 1e-3, torch.optim.Adam)])
def test_optimizer_option_builds_and_reduces_loss(name, lr, cls):
    torch.manual_seed(0)
    m = create_model("fer_vgg", verbose=False, width=4, hidden=16, dropout=0.0)
    opt = make_optimizer(dict(DEFAULTS, optimizer=name, lr=lr), [{"params": list(m.parameters())}])
    assert isinstance(opt, cls)
    x, y = torch.randn(32, 1, 48, 48), torch.arange(32) % 7
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_unknown_optimizer_is_rejected():
    m = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer(dict(DEFAULTS, optimizer="rmsprop"), [{"params": list(m.parameters())}])


def test_grid_is_well_formed():
    assert sorted(E.ORDER) == sorted(E.ARMS)  # every arm runs exactly once
    in_tables = {arm for _, rows in E.TABLES.values() for arm, _ in rows}
    assert in_tables == set(E.ARMS)
    cfgs = {arm: E.arm_config(arm) for arm in E.ARMS}
    for arm, cfg in cfgs.items():
        assert set(cfg) <= set(DEFAULTS), f"{arm}: unknown config keys {set(cfg) - set(DEFAULTS)}"
        assert cfg["model"] in list_models()
        assert all(cfg[k] == v for k, v in E.SCHEDULE.items()), f"{arm} does not use the shared schedule"
        assert cfg["optimizer"] in ("sgd", "adam")

    def diff(a, b):
        ka = {k for k in cfgs[a] if k != "name" and cfgs[a][k] != cfgs[b].get(k)}
        ma, mb = cfgs[a]["model_cfg"], cfgs[b]["model_cfg"]
        return ka | {f"model_cfg.{k}" for k in set(ma) | set(mb) if ma.get(k) != mb.get(k)}

    # each ablation changes only what its table compares
    base = "vgg_sgd_b128_k3"
    assert diff("vgg_sgd_b64_k3", base) == {"batch_size"}
    assert diff("vgg_sgd_b128_k2", base) == {"model_cfg", "model_cfg.kernel_size"}
    assert diff("vgg_adam_b128_k3", base) == {"optimizer", "lr"}
    assert diff("psa", "psa_island") == {"island_weight"}
    assert diff("res_island", "psa_island") == {"model"}  # ResNet-18 vs PSA-ResNet, same width
    assert diff("res_baseline", "psa") == {"model"}
    assert diff("res_baseline", "res_island") == {"island_weight"}
    assert cfgs["psa_island"]["island_weight"] > 0 and cfgs["res_island"]["island_weight"] > 0
    assert cfgs["res_island"]["model_cfg"]["width"] == cfgs["psa_island"]["model_cfg"]["width"]


def test_grid_runs_an_arm_end_to_end_and_resumes_by_skipping(tmp_path, capsys):
    """A real trainer subprocess on a tiny synthetic CSV: train_limit cuts Training only, the table is
    filled, weights are cleaned up, and a second call skips the finished arm."""
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for usage, n in (("Training", 60), ("PublicTest", 21)):
        for i in range(n):
            rows.append(f"{i % 7},{' '.join(map(str, rng.integers(0, 256, 2304)))},{usage}")
    csv = tmp_path / "tiny.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "exp"
    args = ["--arms", "cnn_fer_vgg", "--out", str(out), "--data", str(csv), "--set", "train_limit=24"]
    args += ["epochs=1", "batch_size=8", 'model_cfg={"width": 4, "hidden": 16}']
    text = E.main(args)
    d = out / "cnn_fer_vgg"
    assert "train 24, val 21" in (d / "train.log").read_text()  # Training subsampled, PublicTest whole
    hist = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert len(hist) == 1 and hist[0]["step"] == 24 // 8
    assert json.loads((d / "config.json").read_text())["model_cfg"]["dropout"] == 0.3  # merged, not replaced
    assert not (d / "checkpoints").exists() and not (d / "best.pt").exists()
    row = next(line for line in text.splitlines() if line.startswith("| cnn_fer_vgg |"))
    assert "fer_vgg" in row and "%" in row and "66.5%" in row
    assert "| res_baseline | - |" in text  # not run -> shown as such
    mtime = (d / "arm.json").stat().st_mtime
    capsys.readouterr()
    E.main(args)
    assert "finished earlier, skipped" in capsys.readouterr().out
    assert (d / "arm.json").stat().st_mtime == mtime


def test_vgg19_width_scales_channels_and_he_init_keeps_the_signal():
    """At a quarter width every conv has a quarter of the channels; with PyTorch's default initialisation
    the signal fades through 16 plain ReLU convolutions, with He initialisation it does not."""
    torch.manual_seed(0)
    quarter = create_model("vgg19_seed", verbose=False, width=16, hidden=64, init="kaiming").eval()
    assert [c.out_channels for c in _convs(quarter)][:3] == [16, 16, 32] and quarter.embed_dim == 128
    default = create_model("vgg19_seed", verbose=False, width=16, hidden=64).eval()
    x = torch.randn(8, 1, 48, 48)
    with torch.no_grad():
        he, plain = quarter.forward_features(x).std(), default.forward_features(x).std()
    assert he > 0.1 and plain < he / 20
    with pytest.raises(ValueError, match="init must be"):
        create_model("vgg19_seed", verbose=False, hidden=64, init="xavier")
