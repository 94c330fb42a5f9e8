"""Tiny data and models for training-tool tests: random faces in the Kaggle CSV layout and a width-4
fer_vgg saved as a run's best.pt (+ .json), so the tools' real entry points run in seconds."""

import numpy as np
import torch

from training import train
from training.models import create_model

TINY = {"width": 4, "depths": [1, 1, 1, 1], "hidden": 16, "dropout": 0.0}


def tiny_csv(tmp_path, n_train=64, n_val=21, label=None):
    """Random faces labelled i % 7 (or all `label`)."""
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for usage, n in (("Training", n_train), ("PublicTest", n_val)):
        rows += [
            f"{i % 7 if label is None else label},{' '.join(map(str, rng.integers(0, 256, 2304)))},{usage}"
            for i in range(n)
        ]
    path = tmp_path / "tiny.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def saved_tiny_model(path, seed, mean=0.5, std=0.25, model_cfg=TINY, **meta):
    torch.manual_seed(seed)
    model = create_model("fer_vgg", verbose=False, **model_cfg).eval()
    meta = (
        dict(arch="fer_vgg", model_cfg=model_cfg, mean=mean, std=std, labels=list("abcdefg"), temperature=1.0)
        | meta
    )
    train.save_weights(path, model, meta)
    return path
