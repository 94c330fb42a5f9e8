"""TTA view sets (training/tta.py): the views do what their names say, the default set is the model card's
10 views, and the set comparison scores each set as `training.evaluate --tta SET` does."""

import pytest
import torch
import torch.nn.functional as F

from tests.training.test_training import DATA, SHIPPED, needs_data
from training import tta as T


def test_shift_moves_content_and_replicates_the_edge():
    x = torch.arange(48 * 48, dtype=torch.float32).reshape(1, 1, 48, 48)
    down = T.shift(x, 2, 0)
    assert torch.equal(down[..., 2:, :], x[..., :-2, :])
    assert torch.equal(down[..., 0, :], x[..., 0, :]) and torch.equal(down[..., 1, :], x[..., 0, :])
    left = T.shift(x, 0, -2)
    assert torch.equal(left[..., :, :-2], x[..., :, 2:])


def test_zoom_and_rotation_views():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 48, 48, generator=g)
    assert torch.allclose(T.affine(x, 1.0, 0.0), x, atol=1e-5)
    bar = torch.zeros(1, 1, 48, 48)
    bar[..., 20:28, :] = 1.0  # a horizontal band
    rotated = T.affine(bar, degrees=8)
    assert not torch.allclose(rotated, bar, atol=0.1)
    back = T.affine(rotated, degrees=-8)[..., 12:36, 12:36]
    assert (back - bar[..., 12:36, 12:36]).abs().mean() < 0.05 < (rotated - bar).abs().mean()
    zoomed = T.affine(bar, scale=1.08)  # enlarged about the centre: the band gets wider
    assert zoomed.sum() > bar.sum() + 20
    mirrored = T._view("ms0,2")(x)
    assert torch.equal(mirrored, T.shift(x.flip(-1), 0, 2))


def test_default_set_is_the_mirror_times_five_shifts():
    x = torch.rand(3, 1, 48, 48, generator=torch.Generator().manual_seed(1))
    by_hand = []
    for v in (x, x.flip(-1)):
        p = F.pad(v, (2, 2, 2, 2), mode="replicate")
        by_hand += [v, p[..., :48, 2:50], p[..., 4:, 2:50], p[..., 2:50, :48], p[..., 2:50, 4:]]
    views = T.views_of(T.DEFAULT_SET)(x)
    assert len(views) == 10
    assert all(torch.equal(a, b) for a, b in zip(views, by_hand, strict=True))


def test_unknown_set_is_refused_with_the_known_names():
    with pytest.raises(SystemExit, match="unknown TTA set 'nope'.*flip_shift5"):
        T.views_of("nope")


@needs_data
@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped weights")
def test_comparison_agrees_with_evaluate():
    from training.evaluate import main as evaluate

    common = ["--data", str(DATA), "--limit", "100", "--json"]
    report = T.main(common)
    assert set(report["sets"]) == set(T.VIEW_SETS) and report["n"] == 100
    for name in ("plain", T.DEFAULT_SET, "flip_shift5_zoom"):
        args = common + ([] if name == "plain" else ["--tta", name])
        assert report["sets"][name]["accuracy"] == evaluate(args)["accuracy"]
    assert report["sets"][T.DEFAULT_SET]["views"] == 10


def test_the_inference_service_augments_with_the_default_set():
    """services/inference/scoring.py keeps its own copy (TorchServe's archive ships that file alone)."""
    from services.inference import scoring

    x = torch.rand(3, 1, 48, 48, generator=torch.Generator().manual_seed(2))
    served, measured = scoring.tta_variants(x), T.views_of(T.DEFAULT_SET)(x)
    assert len(served) == scoring.TTA_VIEWS == len(measured)
    assert all(torch.equal(a, b) for a, b in zip(served, measured, strict=True))
