"""Ensembles and distillation: the ensemble's logits and soft targets (training/ensemble.py), and real
trainer runs that follow a teacher's targets (train.py `teacher`, `kd_weight`), teacher models scoring each
batch online (`teacher_models`) or the FER+ annotators' votes (`ferplus_weight`) instead of the labels."""

import json

import numpy as np
import pytest
import torch

from tests.training.tiny import TINY, saved_tiny_model, tiny_csv
from training import ensemble as E
from training import train
from training.evaluate import logits_for
from training.models import load_shipped_model
from training.provenance import file_sha256

torch.set_num_threads(1)


def test_ensemble_averages_member_logits_and_writes_aligned_targets(tmp_path):
    csv = tiny_csv(tmp_path)
    a = saved_tiny_model(tmp_path / "a.pt", 0)
    b = saved_tiny_model(tmp_path / "b.pt", 1, mean=0.4, std=0.3)  # each member keeps its own normalisation
    out = tmp_path / "teacher" / "targets.npz"
    report = E.main(
        ["--weights", str(a), str(b), "--data", str(csv), "--targets", str(out), "--tta", "--tta-targets"]
    )

    assert set(report["members"]) == {str(a), str(b)} and report["n"] == 21
    assert {"ensemble_accuracy", "ensemble_accuracy_tta"} <= set(report)
    t = np.load(out)
    assert list(t["rows"]) == list(range(64))  # Training rows of the CSV, by data-row index
    assert t["probs"].shape == (64, 7) and np.allclose(t["probs"].sum(1), 1, atol=1e-5)

    from training import data as D

    x = D.parse_csv(csv).split("Training")[0]
    members = [load_shipped_model(p) for p in (a, b)]
    by_hand = [
        logits_for(m, torch.from_numpy(D.normalize(x, mt["mean"], mt["std"])), tta=True) for m, mt in members
    ]
    expected = torch.stack(by_hand).mean(0).softmax(1).numpy()
    assert np.allclose(t["probs"], expected, atol=1e-5)


def test_subsets_score_each_smaller_ensemble_as_if_run_alone(tmp_path):
    csv = tiny_csv(tmp_path)
    paths = [str(saved_tiny_model(tmp_path / f"{i}.pt", i)) for i in range(3)]
    report = E.main(["--weights", *paths, "--data", str(csv), "--tta", "--subsets"])

    a, b, c = paths
    assert set(report["subsets"]) == {f"{a}+{b}", f"{a}+{c}", f"{b}+{c}"}  # the full set is the ensemble
    for pair in ((a, b), (a, c), (b, c)):
        alone = E.main(["--weights", *pair, "--data", str(csv), "--tta"])
        scored = report["subsets"]["+".join(pair)]
        assert scored["accuracy"] == alone["ensemble_accuracy"]
        assert scored["accuracy_tta"] == alone["ensemble_accuracy_tta"]
    assert "subsets" not in E.main(["--weights", a, b, "--data", str(csv)])


def test_ensemble_written_as_one_model_reproduces_the_ensemble_and_names_its_members(tmp_path):
    csv = tiny_csv(tmp_path)
    a, b = saved_tiny_model(tmp_path / "a.pt", 0), saved_tiny_model(tmp_path / "b.pt", 1)
    out = tmp_path / "ens" / "ensemble.pt"
    E.main(["--weights", str(a), str(b), "--data", str(csv), "--out", str(out)])

    model, meta = load_shipped_model(out)  # the loader the service and training.export use
    assert meta["arch"] == "logit_ensemble"
    assert [m["weights"] for m in meta["ensemble_of"]] == [str(a), str(b)]
    x = torch.randn(5, 1, 48, 48)
    members = [load_shipped_model(p)[0] for p in (a, b)]
    with torch.no_grad():
        expected = torch.stack([m(x) for m in members]).mean(0)
        assert torch.allclose(model(x), expected, atol=1e-6)
        assert torch.allclose(model.forward_head(model.forward_features(x)), expected, atol=1e-6)


def test_an_ensemble_written_as_one_model_goes_through_the_release_export(tmp_path):
    """training.export takes a logit_ensemble like any model: the release weights, TorchScript and the
    ONNX files all compute the ensemble's logits."""
    pytest.importorskip("onnxruntime")
    from training import export
    from training import onnx_export as X

    csv = tiny_csv(tmp_path, n_train=1100)  # the int8 calibration draws 1,024 Training faces
    a, b = saved_tiny_model(tmp_path / "a.pt", 0), saved_tiny_model(tmp_path / "b.pt", 1)
    ens, out = tmp_path / "ens.pt", tmp_path / "release" / "fer_vgg.pt"
    E.main(["--weights", str(a), str(b), "--data", str(csv), "--out", str(ens)])
    export.main(["--weights", str(ens), "--out", str(out), "--data", str(csv), "--version", "0"])

    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["arch"] == "logit_ensemble" and meta["version"] == "0"
    x = torch.randn(6, 1, 48, 48)
    members = [load_shipped_model(p)[0] for p in (a, b)]
    released = load_shipped_model(out)[0]
    scripted = torch.jit.load(str(out.with_name("fer_vgg.torchscript.pt")))
    with torch.no_grad():
        expected = torch.stack([m(x) for m in members]).mean(0)
        assert torch.allclose(released(x), expected, atol=1e-6)
        assert torch.allclose(scripted(x), expected, atol=1e-5)
    onnx = X.onnx_logits(X.session(out.with_suffix(".onnx")), x.numpy())
    assert np.abs(onnx - expected.numpy()).max() < 1e-4
    assert meta["onnx"]["onnx_int8"]["size_mb"] < meta["onnx"]["onnx_fp32"]["size_mb"]


def test_ensemble_of_members_with_different_normalisation_is_not_written_as_one_model(tmp_path):
    csv = tiny_csv(tmp_path)
    a, b = saved_tiny_model(tmp_path / "a.pt", 0), saved_tiny_model(tmp_path / "b.pt", 1, mean=0.4)
    out = tmp_path / "ensemble.pt"
    with pytest.raises(SystemExit, match="normalisation"):
        E.main(["--weights", str(a), str(b), "--data", str(csv), "--out", str(out)])
    assert not out.exists()


def _train(tmp_path, csv, *settings):
    run = tmp_path / "run"
    args = ["--data", str(csv), "--cache-dir", "none", "--run-dir", str(run), "--no-progress", "--no-plots"]
    args += ["--set", f"model_cfg={json.dumps(TINY)}", "epochs=6", "batch_size=16", "lr=0.05"]
    args += ["ema_decay=0", "label_smoothing=0", "warmup_epochs=0", 'aug={"erase_p": 0}', *settings]
    train.main(args)
    return load_shipped_model(run / "best.pt")


def test_distillation_follows_the_teacher_not_the_labels(tmp_path):
    """Every label says 'angry', the teacher calls every face 'happy': with kd_weight 1 the trained model
    answers 'happy' for nearly every face, so the teacher's targets (not the labels) are what it learns."""
    csv = tiny_csv(tmp_path, label=0)
    teacher = tmp_path / "happy.npz"
    np.savez(teacher, rows=np.arange(64)[::-1], probs=np.tile(np.eye(7, dtype=np.float32)[3], (64, 1)))
    model, meta = _train(tmp_path, csv, f'teacher="{teacher}"', "kd_weight=1.0")
    pred = _predictions(model, meta, csv)
    assert (pred == 3).float().mean() > 0.9, pred


def _predictions(model, meta, csv):
    from training import data as D

    x = D.parse_csv(csv).split("PublicTest")[0]
    return logits_for(model, torch.from_numpy(D.normalize(x, meta["mean"], meta["std"]))).argmax(1)


def test_ferplus_votes_as_targets_override_the_labels(tmp_path):
    """Labels say 'angry'; the FER+ annotators beside the CSV say 'happy' (plus contempt votes, which have no
    FER-2013 class and are left out), except for two faces nobody gave one of the seven expressions. With
    ferplus_weight 1 the model learns the votes; best.json names its accuracy by the precision it ran at."""
    csv = tiny_csv(tmp_path, label=0)
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    votes = [f"Training,{i}.png,0,{0 if i < 2 else 7},0,0,0,0,0,3,0,0" for i in range(64)]
    votes += [f"PublicTest,{i}.png,0,0,0,0,10,0,0,0,0,0" for i in range(21)]
    (tmp_path / "ferplus_training_publictest.csv").write_text("\n".join([header, *votes]) + "\n")

    targets = train.ferplus_targets(train.D.parse_csv(csv), np.arange(64), np.zeros(64, np.int64))
    assert torch.equal(targets[0], torch.eye(7)[0]) and torch.equal(targets[2], torch.eye(7)[3])

    model, meta = _train(tmp_path, csv, "ferplus_weight=1.0", "bf16=false")
    assert (_predictions(model, meta, csv) == 3).float().mean() > 0.9
    assert set(meta["metrics"]) == {"PublicTest_accuracy", "epoch", "ema"}


def test_distillation_refuses_a_teacher_without_every_face(tmp_path):
    csv = tiny_csv(tmp_path)
    teacher = tmp_path / "partial.npz"
    np.savez(teacher, rows=np.arange(60), probs=np.full((60, 7), 1 / 7, dtype=np.float32))
    with pytest.raises(SystemExit, match="no targets for 4 of 64"):
        _train(tmp_path, csv, f'teacher="{teacher}"', "kd_weight=0.5")
    with pytest.raises(SystemExit, match="needs a teacher"):
        _train(tmp_path, csv, "kd_weight=0.5")


def _happy_teacher(path):
    """A tiny model that calls every face 'happy', saved like a run's best.pt."""
    saved_tiny_model(path, 0)
    model, meta = load_shipped_model(path)
    last = model.head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(10 * torch.eye(7)[3])
    train.save_weights(path, model, meta)
    return path


def test_online_distillation_follows_the_teacher_models_not_the_labels(tmp_path):
    """As above, but the teacher is a model scoring each augmented batch during training."""
    csv = tiny_csv(tmp_path, label=0)
    teacher = _happy_teacher(tmp_path / "happy.pt")
    model, meta = _train(tmp_path, csv, f'teacher_models=["{teacher}"]', "kd_weight=1.0", "bf16=false")
    assert (_predictions(model, meta, csv) == 3).float().mean() > 0.9
    assert meta["train_config"]["teacher_models"] == [str(teacher)]
    # the teacher is recorded by content too: a path like models/fer_vgg.pt is overwritten by each release
    assert [r["sha256"] for r in meta["ingredients"]["teacher_models"]] == [file_sha256(teacher)]


def test_teacher_probabilities_average_logits_of_members_each_with_its_own_normalisation(tmp_path):
    paths = [
        saved_tiny_model(tmp_path / "a.pt", 0),
        saved_tiny_model(tmp_path / "b.pt", 1, mean=0.4, std=0.3),
    ]
    teachers = train.load_teacher_models(paths)
    assert all(not p.requires_grad for m, _, _ in teachers for p in m.parameters())
    pixels = torch.rand(5, 1, 48, 48)
    members = [load_shipped_model(p) for p in paths]
    with torch.no_grad():
        expected = torch.stack([m((pixels - mt["mean"]) / mt["std"]) for m, mt in members]).mean(0).softmax(1)
    assert torch.allclose(train.teacher_probabilities(teachers, pixels, bf16=False), expected, atol=1e-5)


def test_mirrored_teacher_target_averages_each_face_with_its_mirror_image(tmp_path):
    teachers = train.load_teacher_models([saved_tiny_model(tmp_path / "a.pt", 0)])
    model, mean, std = teachers[0]
    pixels = torch.rand(5, 1, 48, 48)
    with torch.no_grad():
        views = [model((v - mean) / std) for v in (pixels, pixels.flip(-1))]
    flipped = train.teacher_probabilities(teachers, pixels, bf16=False, flip=True)
    assert torch.allclose(flipped, torch.stack(views).mean(0).softmax(1), atol=1e-5)
    # so a face and its mirror image get one target, which a single view does not give them
    assert torch.allclose(
        flipped, train.teacher_probabilities(teachers, pixels.flip(-1), bf16=False, flip=True), atol=1e-5
    )
    assert not torch.allclose(flipped, train.teacher_probabilities(teachers, pixels, bf16=False), atol=1e-4)


def test_distillation_takes_one_kind_of_teacher(tmp_path):
    csv = tiny_csv(tmp_path)
    teacher = tmp_path / "uniform.npz"
    np.savez(teacher, rows=np.arange(64), probs=np.full((64, 7), 1 / 7, dtype=np.float32))
    both = [f'teacher="{teacher}"', f'teacher_models=["{_happy_teacher(tmp_path / "happy.pt")}"]']
    with pytest.raises(SystemExit, match="not both"):
        _train(tmp_path, csv, *both, "kd_weight=0.5")
