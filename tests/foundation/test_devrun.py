"""`make run`'s launcher: all four services up and reported, Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support import REPO_ROOT, free_port


def test_devrun_starts_reports_and_stops_everything(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    for prefix in ("AUTH", "HISTORY", "INFERENCE", "GATEWAY"):
        env[f"{prefix}_PORT"] = str(free_port())
        env[f"{prefix}_METRICS_PORT"] = str(free_port())
        env[f"{prefix}_DATABASE_URL"] = f"sqlite:///{tmp_path / prefix.lower()}.db"
    env["GATEWAY_HTTP_PORT"] = str(free_port())
    for prefix in ("AUTH", "HISTORY", "INFERENCE", "GATEWAY"):
        for other in ("AUTH", "HISTORY", "INFERENCE"):
            env[f"{prefix}_{other}_ADDR"] = f"127.0.0.1:{env[other + '_PORT']}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.devrun"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        started = time.monotonic()
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        assert any(ln.startswith("All four services SERVING") for ln in lines), lines
        assert time.monotonic() - started < 60
        text = "".join(lines)
        for name in ("auth", "history", "inference", "gateway"):
            assert name in text
        assert f"http://127.0.0.1:{env['GATEWAY_HTTP_PORT']}/" in text
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        assert proc.wait(30) == 0
        assert "all services stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
