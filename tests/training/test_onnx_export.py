"""ONNX exports (fp32 and int8) agree with the torch model they came from, on real PublicTest faces."""

import numpy as np
import pytest
import torch

from tests.training.test_training import DATA, SHIPPED, needs_data
from training import data as D
from training.evaluate import logits_for
from training.models import load_shipped_model

pytest.importorskip("onnxruntime")
from training import onnx_export as X  # noqa: E402

pytestmark = [needs_data, pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped weights")]


@pytest.fixture(scope="module")
def faces():
    """(torch model, its logits, standardised PublicTest faces, labels) for the first 500 rows."""
    model, meta = load_shipped_model()
    x8, y = D.parse_csv(DATA, usages={"PublicTest"}, max_rows=None).split("PublicTest")
    x = D.normalize(x8[:500], meta["mean"], meta["std"])
    return model, logits_for(model, torch.from_numpy(x)).numpy(), x, y[:500]


def _check(fp32_path, int8_path, faces):
    _, reference, x, y = faces
    fp32 = X.onnx_logits(X.session(fp32_path), x)
    int8 = X.onnx_logits(X.session(int8_path), x)
    assert np.abs(fp32 - reference).max() < 1e-3
    # 7-bit weights keep ~99% agreement on every x86 CPU; full-range int8 fell to ~94.6% on AVX2 (saturation)
    assert (int8.argmax(1) == reference.argmax(1)).mean() >= 0.97
    # int8 may lose a little accuracy, not a lot
    assert (int8.argmax(1) == y).mean() >= (reference.argmax(1) == y).mean() - 0.02
    assert int8_path.stat().st_size < 0.35 * fp32_path.stat().st_size


def test_export_and_int8_quantisation(tmp_path, faces):
    model, _, x, _ = faces
    fp32_path = X.export_onnx(model, tmp_path / "m.onnx")
    int8_path = X.quantize_int8(fp32_path, tmp_path / "m.int8.onnx", x[:256])
    _check(fp32_path, int8_path, faces)


def test_shipped_onnx_files_match_shipped_weights(faces):
    fp32_path, int8_path = SHIPPED.with_suffix(".onnx"), SHIPPED.with_suffix(".int8.onnx")
    if not fp32_path.exists():
        pytest.skip("ONNX files not exported yet (python -m training.onnx_export)")
    _check(fp32_path, int8_path, faces)


def test_the_services_tta_scores_what_the_model_cards_tta_measures(faces):
    """The service's test_time_augmentation option (services/inference/scoring.py, every backend) gives the
    probabilities of `training.evaluate --tta`: its 10 views' mean logits at the model's temperature."""
    from services.inference import scoring

    model, _, x, _ = faces
    _, meta = load_shipped_model()
    crops = D.parse_csv(DATA, usages={"PublicTest"}, max_rows=None).split("PublicTest")[0][:64]
    assert np.allclose(D.normalize(crops, meta["mean"], meta["std"]), x[:64])
    served = scoring.probabilities(model, crops, meta["mean"], meta["std"], meta["temperature"], tta=True)
    measured = logits_for(model, torch.from_numpy(x[:64]), tta=True).double() / meta["temperature"]
    assert np.allclose(served, measured.softmax(1).numpy(), atol=1e-5)
    plain = scoring.probabilities(model, crops, meta["mean"], meta["std"], meta["temperature"])
    assert not np.allclose(served, plain, atol=1e-3)


def test_evaluate_scores_an_onnx_export_like_its_weights(faces):
    """`training.evaluate --onnx` runs the file under ONNX Runtime with the weights' normalisation: the fp32
    export gives the torch model's figures, with and without TTA; int8 gives its own, close ones."""
    from training.evaluate import main as evaluate

    common = ["--data", str(DATA), "--limit", "300", "--json"]
    plain = evaluate(common)
    for views in ([], ["--tta"]):
        torch_run = plain if not views else evaluate(common + views)
        onnx_run = evaluate(common + views + ["--onnx", str(SHIPPED.with_suffix(".onnx"))])
        assert onnx_run["model"].endswith("fer_vgg.onnx") and onnx_run["n"] == 300
        assert onnx_run["accuracy"] == torch_run["accuracy"]
        assert abs(onnx_run["loss"] - torch_run["loss"]) < 1e-4
    diagonal = evaluate(common + ["--tta", "flip_diag2"])
    assert diagonal["tta"] == "flip_diag2" and diagonal["loss"] not in (plain["loss"], torch_run["loss"])
    int8 = evaluate(common + ["--onnx", str(SHIPPED.with_suffix(".int8.onnx"))])
    assert abs(int8["accuracy"] - plain["accuracy"]) < 0.05 and int8["loss"] != plain["loss"]


def test_export_command_records_its_report_in_the_models_sidecar(tmp_path):
    """`python -m training.onnx_export --record` on a tiny model: both files written, the report (naming the
    CPU the int8 figures depend on) stored under "onnx" in the sidecar, the rest of the metadata kept."""
    import json

    from tests.training.tiny import saved_tiny_model, tiny_csv

    csv = tiny_csv(tmp_path, n_train=1100)  # the int8 calibration draws 1,024 Training faces
    weights = saved_tiny_model(tmp_path / "tiny.pt", 0, version="9.9.9")
    report = X.main(
        ["--model", str(weights), "--out-dir", str(tmp_path), "--data", str(csv), "--record", "--json"]
    )

    meta = json.loads(weights.with_suffix(".json").read_text())
    assert meta["onnx"] == report and meta["version"] == "9.9.9"
    assert (tmp_path / "tiny.onnx").exists() and (tmp_path / "tiny.int8.onnx").exists()
    # files are named relative to the sidecar, so the record stays true on another checkout
    assert [report[k]["file"] for k in ("onnx_fp32", "onnx_int8")] == ["tiny.onnx", "tiny.int8.onnx"]
    assert report["onnx_fp32"]["top1_agreement_with_torch"] == 1.0 and report["n"] == 21
    assert report["cpu"] and report["cpu"] == X.cpu_description()
