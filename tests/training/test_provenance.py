"""Records that identify weights by content: a soup's or ensemble's members, a run's start and teachers."""

import numpy as np
import torch

from tests.training.tiny import saved_tiny_model
from training.models import create_model
from training.provenance import file_sha256, ingredient_records, member_record
from training.train import save_weights


def test_member_records_identify_each_ingredient_by_content(tmp_path):
    torch.manual_seed(0)
    paths = []
    for i, (version, run) in enumerate((("0.2.0", "restart"), (None, "cont_b"))):
        path = tmp_path / f"m{i}.pt"
        meta = {"train_config": {"name": run}} | ({"version": version} if version else {})
        save_weights(path, create_model("fer_vgg", verbose=False, width=8), meta)
        paths.append((path, meta))
    first, second = (member_record(p, m) for p, m in paths)
    assert (first["version"], first["run"]) == ("0.2.0", "restart")
    assert (second["version"], second["run"]) == (None, "cont_b")
    assert first["sha256"] != second["sha256"] and len(first["sha256"]) == 64
    # the record follows the file's content, not its name: overwriting the file changes the hash
    save_weights(paths[0][0], create_model("fer_vgg", verbose=False, width=8), paths[0][1])
    assert member_record(*paths[0])["sha256"] != first["sha256"]


def test_a_run_records_its_start_and_teachers_by_path_as_configured_and_by_hash(tmp_path):
    """Paths stay as the config wrote them (relative to the repository), hashes are of the files there;
    the sidecar beside each file says which release or run it was."""
    (tmp_path / "models").mkdir()
    release = saved_tiny_model(tmp_path / "models" / "fer_vgg.pt", 0, version="0.3.0")
    run = saved_tiny_model(tmp_path / "best.pt", 1, train_config={"name": "cont_b"})
    np.savez(tmp_path / "targets.npz", rows=np.arange(3), probs=np.full((3, 7), 1 / 7, dtype=np.float32))

    records = ingredient_records(tmp_path, "best.pt", ["models/fer_vgg.pt", "best.pt"])
    assert set(records) == {"init", "teacher_models"}
    assert records["init"] == [
        {"weights": "best.pt", "sha256": file_sha256(run), "version": None, "run": "cont_b"}
    ]
    assert [(r["weights"], r["version"]) for r in records["teacher_models"]] == [
        ("models/fer_vgg.pt", "0.3.0"),
        ("best.pt", None),
    ]
    assert records["teacher_models"][0]["sha256"] == file_sha256(release)

    # soft targets computed once are recorded by hash too; a run from scratch without teachers has none
    assert ingredient_records(tmp_path, teacher="targets.npz") == {
        "teacher": {"targets": "targets.npz", "sha256": file_sha256(tmp_path / "targets.npz")}
    }
    assert ingredient_records(tmp_path) == {}
