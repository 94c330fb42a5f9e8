"""Test helpers: free ports, throwaway databases on the real servers, and
services started as real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from services.common import health

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# Admin URLs of the database servers that run on this machine and on CI's.
MYSQL_ADMIN = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root:@127.0.0.1:3306/test")
POSTGRES_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DATABASES = ("sqlite", "mariadb", "postgresql")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database(kind: str, tmp_dir: Path) -> tuple[str, callable]:
    """Create an empty database of `kind`; return (url, drop)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_dir / (name + '.db')}", lambda: None
    if kind == "mariadb":
        import pymysql
        from sqlalchemy.engine import make_url

        admin = make_url(MYSQL_ADMIN)

        def sql(statement: str) -> None:
            conn = pymysql.connect(
                host=admin.host, port=admin.port or 3306, user=admin.username, password=admin.password or ""
            )
            try:
                conn.cursor().execute(statement)
            finally:
                conn.close()

        sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return str(admin.set(database=name).render_as_string(hide_password=False)), lambda: sql(
            f"DROP DATABASE IF EXISTS {name}"
        )
    if kind == "postgresql":
        import asyncpg
        from sqlalchemy.engine import make_url

        admin = make_url(POSTGRES_ADMIN)

        def sql(statement: str) -> None:
            async def go() -> None:
                conn = await asyncpg.connect(
                    host=admin.host, port=admin.port or 5432, user=admin.username, database=admin.database
                )
                try:
                    await conn.execute(statement)
                finally:
                    await conn.close()

            asyncio.run(go())

        sql(f"CREATE DATABASE {name}")
        return str(admin.set(database=name).render_as_string(hide_password=False)), lambda: sql(
            f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )
    raise ValueError(kind)


def wait_serving(port: int, timeout_s: float = 60.0, proc=None) -> None:
    """Block until the gRPC health service on `port` reports SERVING."""
    alive = (lambda: proc.poll() is None) if proc is not None else (lambda: True)
    health.wait_serving(f"127.0.0.1:{port}", timeout_s, is_alive=alive)


class ServiceProcess:
    """A service started as `python -m <module>` with its own env, logging to a file."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path, port: int) -> None:
        self.module, self.port, self.log_path = module, port, log_path
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **env}
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_serving(self, timeout_s: float = 60.0) -> ServiceProcess:
        try:
            wait_serving(self.port, timeout_s, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"{self.module} failed to serve; log:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
