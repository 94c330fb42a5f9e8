"""The TorchServe backend against the in-process one: real TorchServe (Java) serving the .mar built by
services/inference/torchserve/build_mar.py, real inference services in front of each backend.

Run alone with `pytest -m torchserve tests/inference`; it is part of the normal suite too (~1 minute).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from emotion.v1 import inference_pb2, inference_pb2_grpc
from services.inference.torchserve.build_mar import build
from tests.inference.conftest import assert_same_analyses, square_photos
from tests.support import REPO_ROOT, ServiceProcess, free_port

pytestmark = [
    pytest.mark.torchserve,
    pytest.mark.timeout(600),
    pytest.mark.skipif(shutil.which("java") is None, reason="TorchServe needs Java 17"),
]

MODEL_NAME = "fer_expression"


class TorchServe:
    """TorchServe in the foreground on free loopback ports, configured by our config.properties."""

    def __init__(self, model_store: Path, work_dir: Path) -> None:
        self.grpc_port, self.metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "TS_TORCH_THREADS": "1",
            "LOG_LOCATION": str(work_dir / "logs"),
            "METRICS_LOCATION": str(work_dir / "logs"),
            "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{free_port()}",
            "TS_MANAGEMENT_ADDRESS": f"http://127.0.0.1:{free_port()}",
            "TS_METRICS_ADDRESS": f"http://127.0.0.1:{self.metrics_port}",
            "TS_GRPC_INFERENCE_PORT": str(self.grpc_port),
            "TS_GRPC_MANAGEMENT_PORT": str(free_port()),
            "TS_INITIAL_WORKER_PORT": str(free_port()),
        }
        self.log_path = work_dir / "torchserve.log"
        self._log = open(self.log_path, "wb")
        torchserve = Path(sys.executable).with_name("torchserve")
        self.proc = subprocess.Popen(
            [
                str(torchserve),
                "--start",
                "--foreground",
                "--ncs",
                "--model-store",
                str(model_store),
                "--ts-config",
                str(REPO_ROOT / "services/inference/torchserve/config.properties"),
                "--models",
                f"{MODEL_NAME}={MODEL_NAME}.mar",
            ],
            cwd=work_dir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, timeout_s: float = 150.0) -> None:
        """Until a real prediction succeeds (the worker has loaded the model)."""
        from services.inference.classify import TorchServeClassifier

        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                client = TorchServeClassifier(self.target, MODEL_NAME, timeout_s=5)
                try:
                    client.predict(np.zeros((1, 48, 48), np.uint8))
                    return
                finally:
                    client.close()
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"TorchServe not ready ({last}); log:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)  # its own session: the Java frontend and its Python worker
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def torchserve(tmp_path_factory, model_weights):
    work = tmp_path_factory.mktemp("torchserve")
    build(model_weights, work / "model_store", MODEL_NAME)
    server = TorchServe(work / "model_store", work)
    server.wait_ready()
    yield server
    server.stop()


@pytest.mark.parametrize("tta", [False, True])
def test_both_backends_score_the_same_crops_alike(torchserve, model_weights, crops, tta):
    from services.inference.classify import InProcessClassifier, ModelCard, TorchServeClassifier
    from training.models import load_shipped_model

    model, meta = load_shipped_model(str(model_weights))
    local = InProcessClassifier(model, ModelCard.from_meta(meta), bf16=False).predict(crops, tta)
    remote_client = TorchServeClassifier(torchserve.target, MODEL_NAME)
    try:
        remote = remote_client.predict(crops, tta)
    finally:
        remote_client.close()
    assert remote.shape == local.shape == (len(crops), 7)
    np.testing.assert_array_equal(remote.argmax(1), local.argmax(1))
    np.testing.assert_allclose(remote, local, atol=1e-4, rtol=0)


def test_services_on_either_backend_answer_alike(torchserve, model_weights, tmp_path):
    # Start both services first, then wait: their start-ups overlap.
    inprocess_port, remote_port = free_port(), free_port()
    common = {
        "INFERENCE_MODEL_PATH": str(model_weights),
        "INFERENCE_BF16": "off",
        "INFERENCE_LOG_LEVEL": "INFO",
    }
    processes = [
        ServiceProcess(
            "services.inference",
            {**common, "INFERENCE_PORT": str(inprocess_port), "INFERENCE_METRICS_PORT": "-1"},
            tmp_path / "inprocess.log",
            inprocess_port,
        ),
        ServiceProcess(
            "services.inference",
            {
                **common,
                "INFERENCE_PORT": str(remote_port),
                "INFERENCE_METRICS_PORT": "-1",
                "INFERENCE_BACKEND": "torchserve",
                "INFERENCE_TORCHSERVE_ADDR": torchserve.target,
            },
            tmp_path / "torchserve-backend.log",
            remote_port,
        ),
    ]
    try:
        for process in processes:
            process.wait_serving(timeout_s=180)
        stubs = [
            inference_pb2_grpc.InferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{p.port}"))
            for p in processes
        ]
        info = stubs[1].GetModelInfo(inference_pb2.GetModelInfoRequest(), timeout=10)
        assert info.backend == "torchserve"
        assert stubs[0].GetModelInfo(inference_pb2.GetModelInfoRequest(), timeout=10).version == info.version
        assert_same_analyses(stubs[0], stubs[1], square_photos(6), atol=1e-4)
    finally:
        for process in processes:
            process.stop()


def test_torchserve_exports_prometheus_metrics(torchserve):
    text = (
        urllib.request.urlopen(f"http://127.0.0.1:{torchserve.metrics_port}/metrics", timeout=10)
        .read()
        .decode()
    )
    assert "# TYPE" in text and "ts_" in text.lower()
