"""The scripts the images run, exercised for real: docker/healthcheck.py against a real gRPC health service
and HTTP server, and docker/torchserve/entrypoint.py starting, draining and stopping a real TorchServe."""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.manifests import DOCKER_DIR
from tests.support import free_port

HEALTHCHECK = DOCKER_DIR / "healthcheck.py"


def run_healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def health_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(0)


def test_grpc_check_follows_the_serving_status_on_the_port_from_the_environment(health_server):
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    result = run_healthcheck("grpc", "TEST_SERVICE_PORT", "1", env={"TEST_SERVICE_PORT": str(port)})
    assert result.returncode == 1 and "NOT_SERVING" in result.stderr
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert (
        run_healthcheck("grpc", "TEST_SERVICE_PORT", "1", env={"TEST_SERVICE_PORT": str(port)}).returncode
        == 0
    )
    # Without the variable, the default port (the image's) is used.
    assert run_healthcheck("grpc", "TEST_SERVICE_PORT_UNSET", str(port)).returncode == 0


def test_grpc_check_fails_when_nothing_listens():
    result = run_healthcheck("grpc", "TEST_SERVICE_PORT_UNSET", str(free_port()))
    assert result.returncode == 1 and "UNAVAILABLE" in result.stderr


def test_http_check_accepts_only_success_and_usage_errors_exit_2():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(200 if self.path == "/ping" else 500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert run_healthcheck("http", f"{base}/ping").returncode == 0
        assert run_healthcheck("http", f"{base}/broken").returncode == 1
        assert run_healthcheck("http", f"http://127.0.0.1:{free_port()}/ping").returncode == 1
        assert run_healthcheck("tcp", "1").returncode == 2
    finally:
        server.shutdown()


def wait_for(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.25)
    return False


@pytest.mark.torchserve
@pytest.mark.skipif(shutil.which("java") is None, reason="TorchServe needs Java 17")
def test_torchserve_entrypoint_forwards_sigterm_and_exits_with_the_jvm(tmp_path):
    """The image's PID 1 starts TorchServe (here with an empty model store, on free ports), and SIGTERM
    stops the JVM cleanly instead of orphaning it."""
    ports = {name: free_port() for name in ("inference", "management", "metrics", "grpc", "grpc_management")}
    config = tmp_path / "config.properties"
    config.write_text(
        "\n".join(
            [
                f"inference_address=http://127.0.0.1:{ports['inference']}",
                f"management_address=http://127.0.0.1:{ports['management']}",
                f"metrics_address=http://127.0.0.1:{ports['metrics']}",
                "grpc_inference_address=127.0.0.1",
                f"grpc_inference_port={ports['grpc']}",
                "grpc_management_address=127.0.0.1",
                f"grpc_management_port={ports['grpc_management']}",
                "disable_token_authorization=true",
                "metrics_mode=prometheus",
                "vmargs=-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1",
            ]
        )
    )
    (tmp_path / "store").mkdir()
    env = {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        "TMPDIR": str(tmp_path),  # the pid file, as /tmp in the image
        "LOG_LOCATION": str(tmp_path / "logs"),
        "METRICS_LOCATION": str(tmp_path / "logs"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            str(DOCKER_DIR / "torchserve" / "entrypoint.py"),
            "--ncs",
            "--disable-token-auth",
            "--ts-config",
            str(config),
            "--model-store",
            str(tmp_path / "store"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    jvm = None
    try:
        assert wait_for(f"http://127.0.0.1:{ports['inference']}/ping", time.monotonic() + 90), "no /ping"
        jvm = int((tmp_path / ".model_server.pid").read_text())
        assert process.poll() is None, "the entrypoint must stay up while TorchServe runs"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(jvm, 0)  # gone and reaped: the entrypoint waited for the JVM
    finally:
        if process.poll() is None:
            process.kill()
        if jvm is not None:
            try:
                os.kill(jvm, signal.SIGKILL)
            except ProcessLookupError:
                pass
