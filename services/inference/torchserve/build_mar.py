"""Build the TorchServe model archive (.mar) of the expression classifier.

    .venv/bin/python -m services.inference.torchserve.build_mar [--weights models/fer_vgg.pt] \
        [--export-path model_store] [--model-name fer_expression]

Stages the handler, training's model definitions (as fer_models.py), the shared scoring routine, the
weights' metadata (as model_meta.json) and a model-config.yaml (TorchServe batching: batchSize and
maxBatchDelay; one worker), then runs torch-model-archiver. model_store/ is gitignored.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
DEFAULT_WEIGHTS = REPO_ROOT / "models" / "fer_vgg.pt"
DEFAULT_MODEL_NAME = "fer_expression"


def build(
    weights: Path,
    export_path: Path,
    model_name: str = DEFAULT_MODEL_NAME,
    batch_size: int = 32,
    max_batch_delay_ms: int = 5,
) -> Path:
    weights = Path(weights).resolve()
    meta_path = weights.with_suffix(".json")
    if not weights.exists() or not meta_path.exists():
        raise FileNotFoundError(f"need {weights} and its metadata {meta_path}")
    meta = json.loads(meta_path.read_text())
    export_path = Path(export_path).resolve()
    export_path.mkdir(parents=True, exist_ok=True)
    archiver = Path(sys.executable).with_name("torch-model-archiver")
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        shutil.copy(HERE / "handler.py", stage / "handler.py")
        shutil.copy(REPO_ROOT / "training" / "models.py", stage / "fer_models.py")
        shutil.copy(REPO_ROOT / "services" / "inference" / "scoring.py", stage / "scoring.py")
        shutil.copy(meta_path, stage / "model_meta.json")
        (stage / "model-config.yaml").write_text(
            f"minWorkers: 1\nmaxWorkers: 1\nbatchSize: {batch_size}\nmaxBatchDelay: {max_batch_delay_ms}\n"
            "responseTimeout: 60\n"
        )
        command = [
            str(archiver) if archiver.exists() else "torch-model-archiver",
            "--model-name",
            model_name,
            "--version",
            str(meta.get("version", "1.0")).replace(" ", "_") or "1.0",
            "--serialized-file",
            str(weights),
            "--handler",
            str(stage / "handler.py"),
            "--extra-files",
            ",".join(str(stage / f) for f in ("fer_models.py", "scoring.py", "model_meta.json")),
            "--config-file",
            str(stage / "model-config.yaml"),
            "--export-path",
            str(export_path),
            "--force",
        ]
        subprocess.run(command, check=True)
    mar = export_path / f"{model_name}.mar"
    print(f"built {mar} from {weights} (version {meta.get('version')})")
    return mar


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--weights", type=Path, default=DEFAULT_WEIGHTS, help="fp32 state_dict with .json meta"
    )
    parser.add_argument("--export-path", type=Path, default=REPO_ROOT / "model_store")
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--batch-size", type=int, default=32, help="TorchServe batchSize")
    parser.add_argument("--max-batch-delay-ms", type=int, default=5, help="TorchServe maxBatchDelay")
    args = parser.parse_args()
    build(args.weights, args.export_path, args.model_name, args.batch_size, args.max_batch_delay_ms)


if __name__ == "__main__":
    main()
