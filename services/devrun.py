"""`make run`: start all four services on localhost, wait until each reports
SERVING, print where they listen, and stop them all cleanly on Ctrl-C.

Development defaults: SQLite files and a dev signing key under var/, the
in-process model, and a random service secret shared by auth and gateway
(kept in var/ so restarts keep working). Variables already set in the
environment win, so the same launcher runs against MariaDB or PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

from services.common.config import VAR_DIR
from services.common.health import wait_serving

SERVICES = [  # (module, env prefix, default gRPC port)
    ("services.auth", "AUTH", 50051),
    ("services.history", "HISTORY", 50052),
    ("services.inference", "INFERENCE", 50053),
    ("services.gateway", "GATEWAY", 50050),
]
START_TIMEOUT_S = 60.0


def dev_service_secret() -> str:
    path = VAR_DIR / "dev_service_secret"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def port_of(prefix: str, default: int) -> int:
    return int(os.environ.get(f"{prefix}_PORT", default))


def main() -> int:
    secret = dev_service_secret()
    env = {
        "AUTH_SERVICE_SECRETS": f"gateway={secret}",
        "GATEWAY_SERVICE_SECRET": secret,
        # The gateway forwards each client's address; auth trusts it only from the gateway's.
        "AUTH_TRUSTED_PROXIES": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **os.environ,
    }
    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def stop_all(*_args) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nstopping services ...", flush=True)
        for _, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)

    started = time.monotonic()
    for module, _prefix, _port in SERVICES:
        procs.append((module, subprocess.Popen([sys.executable, "-m", module], env=env)))
    try:
        for (_module, prefix, port), (_, proc) in zip(SERVICES, procs, strict=True):
            wait_serving(
                f"127.0.0.1:{port_of(prefix, port)}", START_TIMEOUT_S, lambda p=proc: p.poll() is None
            )
    except (TimeoutError, RuntimeError) as exc:
        print(f"startup failed: {exc}", file=sys.stderr, flush=True)
        stop_all()
        for _, proc in procs:
            proc.wait()
        return 1

    http_port = os.environ.get("GATEWAY_HTTP_PORT", "8000")
    elapsed = time.monotonic() - started
    lines = [
        f"All four services SERVING after {elapsed:.1f}s:",
        f"  web app          http://127.0.0.1:{http_port}/",
        f"  HTTP/JSON API    http://127.0.0.1:{http_port}/api/v1  (OpenAPI: /openapi.json, docs: /docs)",
    ]
    for module, prefix, port in SERVICES:
        metrics = os.environ.get(
            f"{prefix}_METRICS_PORT",
            {"AUTH": 9151, "HISTORY": 9152, "INFERENCE": 9153, "GATEWAY": 9150}[prefix],
        )
        lines.append(
            f"  {module.split('.')[-1]:<16} grpc 127.0.0.1:{port_of(prefix, port)}   metrics http://127.0.0.1:{metrics}/metrics"
        )
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)

    # Run until a signal, or until any service dies (then stop the rest: a half-up system misleads).
    while not stopping:
        for module, proc in procs:
            if proc.poll() is not None:
                print(
                    f"{module} exited with {proc.returncode}; stopping the others",
                    file=sys.stderr,
                    flush=True,
                )
                stop_all()
                break
        time.sleep(0.5)
    codes = [proc.wait() for _, proc in procs]
    print("all services stopped", flush=True)
    return 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
