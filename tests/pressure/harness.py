"""The whole stack (tests/stack.py) plus what pressure needs: kill -9 and restart, a TCP proxy between
the gateway and history that delays or cuts that traffic (bench/tcp_proxy.py), per-process RSS and open
file descriptors, the real databases, and auth's signing key so tests can forge tokens.

    with pressure_stack(tmp_dir, history_db="postgresql", proxy_history=True) as stack:
        stack.http_url, stack.addr("inference"), stack.kill("history"), stack.start("history")
        stack.proxy.set("delay 2")
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from services.common.keys import key_id, public_pem_of
from tests.stack import SERVICES, Stack, start_stack
from tests.stack import model_weights as stack_model_weights
from tests.support import REPO_ROOT, create_database, free_port


class PressureStack:
    def __init__(self, stack: Stack, proxy=None, drops=()) -> None:
        self.stack = stack
        self.proxy = proxy
        self._drops = list(drops)

    # -- addresses and state ---------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return self.stack.http_url

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.stack.ports[name]}"

    @property
    def history_database_url(self) -> str:
        return self.stack.history_database_url

    @property
    def auth_database_url(self) -> str:
        return self.stack.auth_database_url

    @property
    def outbox_url(self) -> str:
        return self.stack.outbox_url

    def signing_key(self) -> tuple[str, str]:
        """(private PEM, kid) of auth's signing key, to forge tokens exactly as auth signs them."""
        pem = Path(self.stack.envs["auth"]["AUTH_DEV_SIGNING_KEY_FILE"]).read_text()
        return pem, key_id(public_pem_of(pem))

    def pid(self, name: str) -> int:
        return self.stack.processes[name].proc.pid

    def alive(self, name: str) -> bool:
        process = self.stack.processes.get(name)
        return process is not None and process.proc.poll() is None

    def rss_mib(self, name: str) -> float:
        """Resident memory of the service process and its children (TorchServe workers, if any)."""
        proc = psutil.Process(self.pid(name))
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total / 2**20

    def open_fds(self, name: str) -> int:
        return psutil.Process(self.pid(name)).num_fds()

    def log(self, name: str) -> str:
        return self.stack.log(name)

    # -- faults ----------------------------------------------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one service (SIGKILL by default: no drain, no cleanup); its port and data stay."""
        process = self.stack.processes.pop(name)
        process.stop(sig)

    def start(self, name: str, timeout_s: float = 90.0) -> float:
        """Start a killed service again; seconds until it is SERVING."""
        started = time.monotonic()
        self.stack.start_service(name, timeout_s)
        return time.monotonic() - started

    def create_counselor(self, username: str, password: str, organization: str = "Pressure Clinic") -> None:
        self.stack.create_counselor(username, password, organization)

    def close(self) -> None:
        self.stack.stop()
        if self.proxy is not None:
            self.proxy.stop()
        for drop in self._drops:
            try:
                drop()
            except Exception as exc:  # e.g. the database server is restarting under a fault scenario
                print(f"dropping a test database failed: {exc}")


def model_weights(directory: Path) -> Path | None:
    """None when the shipped model exists (inference's default); otherwise the stack's stand-in model,
    so the stack runs before a model is shipped. Its scores are meaningless; latency and robustness
    figures are not (same architecture and size)."""
    weights = stack_model_weights(directory)
    return None if weights == REPO_ROOT / "models" / "fer_vgg.pt" else weights


@contextlib.contextmanager
def pressure_stack(
    directory: Path,
    *,
    history_db: str = "sqlite",
    auth_db: str = "sqlite",
    proxy_history: bool = False,
    rate_limits: bool = True,
    fast_passwords: bool = True,
    env: dict[str, dict[str, str]] | None = None,
) -> Iterator[PressureStack]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    env = {name: dict((env or {}).get(name, {})) for name in SERVICES}
    drops = []
    urls = {}
    for name, kind in (("history", history_db), ("auth", auth_db)):
        if kind != "sqlite":
            urls[name], drop = create_database(kind, directory)
            drops.append(drop)
    stand_in = model_weights(directory)
    if stand_in is not None:
        env["inference"].setdefault("INFERENCE_MODEL_PATH", str(stand_in))
    if proxy_history:
        # Link faults are about the product's fallback: keep its 2 s history-write deadline (the test stack
        # otherwise waits 10 s, longer than a 3 s delay, so nothing would go to the outbox).
        env["gateway"].setdefault("GATEWAY_RECORD_TIMEOUT_S", "2")
    if not rate_limits:
        env["gateway"].setdefault("GATEWAY_RATE_LIMIT_USER_PER_S", "0")
        env["gateway"].setdefault("GATEWAY_RATE_LIMIT_ADDRESS_PER_S", "0")
    proxy = None
    try:
        # The gateway starts last, once the proxy in front of history is listening.
        stack = start_stack(
            directory,
            services=("auth", "history", "inference"),
            gateway_env=env["gateway"],
            auth_env=env["auth"],
            history_env=env["history"],
            inference_env=env["inference"],
            auth_database_url=urls.get("auth", ""),
            history_database_url=urls.get("history", ""),
            fast_passwords=fast_passwords,
        )
        try:
            if proxy_history:
                from bench.tcp_proxy import ProxyProcess

                proxy = ProxyProcess(free_port(), stack.history_addr, directory / "proxy.log")
                proxy.start()
                stack.envs["gateway"]["GATEWAY_HISTORY_ADDR"] = f"127.0.0.1:{proxy.listen_port}"
            stack.start_service("gateway")
        except BaseException:
            stack.stop()
            raise
    except BaseException:
        if proxy is not None:
            proxy.stop()
        for drop in drops:
            drop()
        raise
    pressure = PressureStack(stack, proxy, drops)
    try:
        yield pressure
    finally:
        pressure.close()
