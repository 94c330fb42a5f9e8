"""What identifies a set of weights later. A path can be overwritten (models/fer_vgg.pt is replaced by each
release), so a record keeps the file's hash beside it, the release version (None for a run's weights) and
the run that made it. Soups and ensembles record their members this way, and a training run records the
weights it starts from (`init`) and learns from (`teacher`, `teacher_models`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def member_record(path, meta: dict | None = None, root: Path = Path(".")) -> dict:
    """Record of the weights at root / path (meta: their .json sidecar, read if not given). A release that
    is itself a soup was made by no single run (its train_config is only its first member's), so it names
    its own members instead."""
    file = Path(root) / path
    if meta is None:
        sidecar = file.with_suffix(".json")
        meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    record = {"weights": str(path), "sha256": file_sha256(file), "version": meta.get("version")}
    if "soup_of" in meta:
        record["run"] = None
        record["soup_of"] = [m.get("run") or m.get("version") for m in meta["soup_of"]]
    else:
        record["run"] = meta.get("train_config", {}).get("name")
    return record


def ingredient_records(root: Path, init=None, teacher_models=(), teacher=None) -> dict:
    """Records of the files a run starts from and learns from, by role; the trainer passes only what it
    uses (teachers of a run with kd_weight 0 are not ingredients)."""
    records = {}
    if init:
        records["init"] = [member_record(init, root=root)]
    if teacher_models:
        records["teacher_models"] = [member_record(p, root=root) for p in teacher_models]
    if teacher:  # soft targets computed once
        records["teacher"] = {"targets": teacher, "sha256": file_sha256(Path(root) / teacher)}
    return records
