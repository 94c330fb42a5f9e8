"""The whole platform (auth, history, inference, gateway) as real processes on free ports.

    with running_stack(tmp_path) as stack:
        stack.http_url            # "http://127.0.0.1:PORT" (API, WebSocket, web app)
        stack.gateway_addr        # "127.0.0.1:PORT" (public gRPC)
        stack.auth_addr, stack.history_addr, stack.inference_addr
        stack.stop_service("history"); stack.start_service("history")   # same port, same database
        stack.create_counselor("dr_kim", "a long password 1", organization="Clinic")

Or, for a manual session (Ctrl-C stops everything):

    .venv/bin/python -m tests.stack [--dir var/stack] [--http-port 8000] [--grpc-port 50050]

Every service gets its own SQLite database in the stack's folder (or the URLs given), development keys
generated on first start, a shared gateway service secret, cheap Argon2 parameters (tests only: pass
`fast_passwords=False` for production cost), and a log file `<name>.log` in the folder. Inference serves
models/fer_vgg.pt, or a random stand-in of the same architecture until training has shipped it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import REPO_ROOT, ServiceProcess, free_port

SERVICES = ("auth", "history", "inference", "gateway")
MODULES = {name: f"services.{name}" for name in SERVICES}
FAST_ARGON2 = {"AUTH_ARGON2_TIME_COST": "1", "AUTH_ARGON2_MEMORY_KIB": "1024", "AUTH_ARGON2_PARALLELISM": "1"}


@dataclass
class Stack:
    """A running stack; addresses are host:port, `http_url` is the gateway's HTTP base URL."""

    directory: Path
    ports: dict[str, int]
    http_port: int
    service_secret: str
    envs: dict[str, dict[str, str]]
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    _starts: dict[str, int] = field(default_factory=dict)

    @property
    def auth_addr(self) -> str:
        return f"127.0.0.1:{self.ports['auth']}"

    @property
    def history_addr(self) -> str:
        return f"127.0.0.1:{self.ports['history']}"

    @property
    def inference_addr(self) -> str:
        return f"127.0.0.1:{self.ports['inference']}"

    @property
    def gateway_addr(self) -> str:
        return f"127.0.0.1:{self.ports['gateway']}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def auth_database_url(self) -> str:
        return self.envs["auth"]["AUTH_DATABASE_URL"]

    @property
    def history_database_url(self) -> str:
        return self.envs["history"]["HISTORY_DATABASE_URL"]

    @property
    def outbox_url(self) -> str:
        return self.envs["gateway"]["GATEWAY_OUTBOX_URL"]

    def log(self, name: str) -> str:
        """The service's latest log."""
        process = self.processes.get(name)
        path = process.log_path if process else self.directory / f"{name}.log"
        return path.read_text(errors="replace")

    def start_service(self, name: str, timeout_s: float = 90.0) -> None:
        """Start (or restart after stop_service) one service on its port and wait until it serves."""
        self._spawn(name)
        self._wait(name, timeout_s)

    def start_services(self, *names: str, timeout_s: float = 90.0) -> None:
        """Start several stopped services at once (they come up in parallel)."""
        for name in names:
            self._spawn(name)
        for name in names:
            self._wait(name, timeout_s)

    def stop_service(self, name: str) -> None:
        """Stop one service (SIGTERM, graceful); its port and data are kept for start_service."""
        process = self.processes.pop(name, None)
        if process is not None:
            process.stop()

    def restart_service(self, name: str) -> None:
        self.stop_service(name)
        self.start_service(name)

    def stop(self) -> None:
        """Stop every running service, all at once (each drains in parallel)."""
        running = [self.processes.pop(name) for name in reversed(SERVICES) if name in self.processes]
        with ThreadPoolExecutor(max_workers=len(running) or 1) as pool:
            list(pool.map(lambda process: process.stop(), running))

    def create_counselor(
        self, username: str, password: str, organization: str = "Test Clinic", phone: str = "+44 20 7946 0000"
    ) -> str:
        """Create a counsellor account with the operator command; returns its output."""
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.auth",
                "create-counselor",
                "--username",
                username,
                "--organization",
                organization,
                "--phone",
                phone,
                "--password-stdin",
            ],
            input=password + "\n",
            cwd=REPO_ROOT,
            env={**os.environ, **self.envs["auth"]},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"create-counselor failed ({result.returncode}): {result.stderr}{result.stdout}"
            )
        return result.stdout

    def _spawn(self, name: str) -> None:
        if name in self.processes:
            raise RuntimeError(f"{name} is already running")
        self._starts[name] = self._starts.get(name, 0) + 1
        suffix = "" if self._starts[name] == 1 else f"-{self._starts[name]}"  # keep the earlier runs' logs
        self.processes[name] = ServiceProcess(
            MODULES[name], self.envs[name], self.directory / f"{name}{suffix}.log", self.ports[name]
        )

    def _wait(self, name: str, timeout_s: float) -> None:
        try:
            self.processes[name].wait_serving(timeout_s)
        except Exception:
            self.processes.pop(name, None)
            raise
        if name == "gateway":
            wait_http(f"{self.http_url}/readyz", timeout_s)


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout_s}s")
        time.sleep(0.1)


def model_weights(directory: Path) -> Path:
    """The shipped classifier (models/fer_vgg.pt) when present; otherwise a randomly initialised model of the
    same architecture, saved as training ships weights (so the stack runs before training has shipped)."""
    shipped = REPO_ROOT / "models" / "fer_vgg.pt"
    if shipped.exists() and shipped.with_suffix(".json").exists():
        return shipped
    weights = directory / "model" / "fer_vgg.pt"
    if weights.exists():
        return weights
    import torch

    from training.models import create_model

    config = json.loads((REPO_ROOT / "training" / "configs" / "fer_vgg.json").read_text())
    torch.manual_seed(0)
    model = create_model(config["model"], verbose=False, **config["model_cfg"]).eval()
    return save_stand_in_model(model, config, weights)


def save_stand_in_model(model, config: dict, weights: Path) -> Path:
    """Save an untrained `model` of training config `config` as training ships weights (state dict +
    metadata JSON); its scores are meaningless, its size and latency are the real model's."""
    import torch

    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    meta = {
        "arch": config["model"],
        "model_cfg": config["model_cfg"],
        "mean": 0.5,
        "std": 0.25,
        "labels": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
        "temperature": 1.5,
        "version": "test-random",
        "metrics": {"split": "FER-2013 PublicTest", "accuracy": 0.1},
    }
    weights.with_suffix(".json").write_text(json.dumps(meta))
    return weights


def start_stack(
    directory: Path,
    *,
    services: tuple[str, ...] = SERVICES,
    gateway_env: dict[str, str] | None = None,
    auth_env: dict[str, str] | None = None,
    history_env: dict[str, str] | None = None,
    inference_env: dict[str, str] | None = None,
    auth_database_url: str = "",
    history_database_url: str = "",
    fast_passwords: bool = True,
    gateway_grpc_port: int = 0,
    http_port: int = 0,
    timeout_s: float = 120.0,
) -> Stack:
    """Start `services` (all by default) on free ports and wait until each serves."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in SERVICES}
    if gateway_grpc_port:
        ports["gateway"] = gateway_grpc_port
    http_port = http_port or free_port()
    secret = secrets.token_urlsafe(24)
    addr = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    common = {"GRACE_SECONDS": "1"}

    def prefixed(prefix: str, values: dict[str, str]) -> dict[str, str]:
        return {f"{prefix}{key}": value for key, value in values.items()}

    envs = {
        "auth": {
            **prefixed("AUTH_", common),
            "AUTH_PORT": str(ports["auth"]),
            "AUTH_METRICS_PORT": "-1",
            "AUTH_DATABASE_URL": auth_database_url or f"sqlite:///{directory / 'auth.db'}",
            "AUTH_DEV_SIGNING_KEY_FILE": str(directory / "keys" / "auth_signing_key.pem"),
            "AUTH_SERVICE_SECRETS": f"gateway={secret}",
            "AUTH_HISTORY_ADDR": addr["history"],
            "AUTH_TRUSTED_PROXIES": "127.0.0.1",
            **(FAST_ARGON2 if fast_passwords else {}),
            **(auth_env or {}),
        },
        "history": {
            **prefixed("HISTORY_", common),
            "HISTORY_PORT": str(ports["history"]),
            "HISTORY_METRICS_PORT": "-1",
            "HISTORY_DATABASE_URL": history_database_url or f"sqlite:///{directory / 'history.db'}",
            "HISTORY_AUTH_ADDR": addr["auth"],
            **(history_env or {}),
        },
        "inference": {
            **prefixed("INFERENCE_", common),
            "INFERENCE_PORT": str(ports["inference"]),
            "INFERENCE_METRICS_PORT": "-1",
            **(inference_env or {}),
        },
        "gateway": {
            **prefixed("GATEWAY_", common),
            "GATEWAY_PORT": str(ports["gateway"]),
            "GATEWAY_HTTP_PORT": str(http_port),
            "GATEWAY_METRICS_PORT": "-1",
            "GATEWAY_AUTH_ADDR": addr["auth"],
            "GATEWAY_HISTORY_ADDR": addr["history"],
            "GATEWAY_INFERENCE_ADDR": addr["inference"],
            "GATEWAY_SERVICE_SECRET": secret,
            "GATEWAY_OUTBOX_URL": f"sqlite:///{directory / 'gateway_outbox.db'}",
            "GATEWAY_OUTBOX_POLL_S": "0.5",
            "GATEWAY_OUTBOX_MAX_BACKOFF_S": "2",
            # A loaded test machine can take seconds to write; only a stopped history should hit the outbox.
            "GATEWAY_RECORD_TIMEOUT_S": "10",
            **(gateway_env or {}),
        },
    }
    if "inference" in services and "INFERENCE_MODEL_PATH" not in envs["inference"]:
        envs["inference"]["INFERENCE_MODEL_PATH"] = str(model_weights(directory))
    stack = Stack(directory, ports, http_port, secret, envs)
    try:
        for name in SERVICES:  # start all at once: they come up in parallel
            if name in services:
                stack._spawn(name)
        for name in SERVICES:
            if name in services:
                stack._wait(name, timeout_s)
    except BaseException:
        stack.stop()
        raise
    return stack


@contextlib.contextmanager
def running_stack(directory: Path, **options) -> Iterator[Stack]:
    """start_stack() as a context manager: everything is stopped on exit."""
    stack = start_stack(directory, **options)
    try:
        yield stack
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the whole stack locally until Ctrl-C.")
    parser.add_argument("--dir", default="", help="data and logs folder (default: a temporary one)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=50050)
    args = parser.parse_args()
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="emotion-stack-"))
    with running_stack(directory, gateway_grpc_port=args.grpc_port, http_port=args.http_port) as stack:
        print(f"web app and API: {stack.http_url}  (OpenAPI: {stack.http_url}/docs)")
        print(f"gateway gRPC:    {stack.gateway_addr}")
        print(f"auth {stack.auth_addr}  history {stack.history_addr}  inference {stack.inference_addr}")
        print(f"data and logs:   {directory}")
        try:
            while all(p.proc.poll() is None for p in stack.processes.values()):
                time.sleep(1)
            print("a service exited; see its log", file=sys.stderr)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
