"""PID 1 of the TorchServe image: start TorchServe's JVM, pass SIGTERM on to it, exit when it exits.

`torchserve --foreground` would leave a Python launcher as PID 1 that dies on SIGTERM without telling the
JVM, which the kernel then kills mid-request. Here the launcher starts the JVM and returns; as a child
subreaper this process adopts the JVM, forwards SIGTERM/SIGINT so TorchServe finishes in-flight requests,
and exits with the JVM's status. Arguments are passed to `torchserve --start`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PID_FILE = Path(tempfile.gettempdir()) / ".model_server.pid"  # where the torchserve launcher writes it


def main(argv: list[str]) -> int:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    jvm: int | None = None
    stop_signals: list[int] = []

    def forward(signum: int, _frame) -> None:
        stop_signals.append(signum)
        if jvm is not None:
            try:
                os.kill(jvm, signum)
            except ProcessLookupError:
                pass

    # Installed before anything starts: a SIGTERM during startup must still reach the JVM.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    # /tmp is an emptyDir that outlives a container restart; a stale pid there makes the launcher refuse.
    PID_FILE.unlink(missing_ok=True)
    subprocess.run(["torchserve", "--start", *argv], check=True)
    for _ in range(100):  # the launcher writes the file right after spawning the JVM
        if PID_FILE.exists() and PID_FILE.read_text().strip():
            break
        time.sleep(0.1)
    else:
        print(f"TorchServe did not start: no {PID_FILE}", file=sys.stderr)
        return 1
    jvm = int(PID_FILE.read_text())
    if stop_signals:
        forward(stop_signals[0], None)

    while True:  # also reaps the model workers the JVM leaves behind
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if pid == jvm:
            code = os.waitstatus_to_exitcode(status)
            if code < 0:  # killed by a signal it did not handle: the shell's 128+N
                return 128 - code
            # The JVM ends with 128+N after running its shutdown hooks on signal N: the stop we asked for.
            return 0 if stop_signals and code == 128 + stop_signals[0] else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
