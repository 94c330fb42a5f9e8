"""bench/inference_load.py, the load testers' tool, run as they run it: it starts the real service, names
the model it measures (its records are compared across models), and scores labelled photos."""

import json
import re
import subprocess
import sys

from tests.inference.conftest import PHOTOS
from tests.support import REPO_ROOT


def test_accuracy_pass_names_the_served_model_and_scores_labelled_photos(model_weights):
    run = subprocess.run(
        [sys.executable, "bench/inference_load.py", "--spawn", "--accuracy", "--limit", "6"]
        + ["--photos", str(PHOTOS), "--env", f"INFERENCE_MODEL_PATH={model_weights}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    version = json.loads(model_weights.with_suffix(".json").read_text()).get("version") or "(no version)"
    assert re.fullmatch(rf"model \S+ {re.escape(version)} via inprocess", lines[0]), lines[0]
    found = re.match(r"photos 6  face found (\d+) ", lines[1])
    assert found and 1 <= int(found[1]) <= 6, lines[1]
    scored = re.match(r"accuracy vs labels\.csv \(largest face\): (\d+)/(\d+) = ", lines[2])
    assert scored and int(scored[1]) <= int(scored[2]) <= int(found[1]), lines[2]
