"""A TCP proxy on loopback that can delay, black-hole or reset the traffic to one backend.

The fault scripts put it between the gateway and history (GATEWAY_HISTORY_ADDR points at the proxy),
which is what a slow or partitioned network looks like to the gateway, without root or network
namespaces. Modes, switchable while connections are open:

    pass          forward bytes both ways (the default)
    delay S       deliver every chunk S seconds late, in each direction (a long link: RTT + 2 S)
    blackhole     accept, forward nothing (a partition: packets dropped, callers hit their deadlines);
                  like TCP after a healed partition, held bytes flow again on "pass"
    reset         close every connection and refuse new ones (a crashed or firewalled host: UNAVAILABLE)

As a process, it reads one command per line on stdin (the mode lines above, or "quit"):

    python bench/tcp_proxy.py --listen 127.0.0.1:6000 --target 127.0.0.1:50052

In a program: `ProxyProcess(listen_port, target, log_path).start(); .set("delay 2"); .stop()`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path

CHUNK = 64 * 1024


class TcpProxy:
    """The asyncio proxy itself; `mode` and `delay_s` may change at any time."""

    def __init__(self, listen_host: str, listen_port: int, target_host: str, target_port: int) -> None:
        self.listen = (listen_host, listen_port)
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.delay_s = 0.0
        self.connections: set[asyncio.Task] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.base_events.Server | None = None
        self.accepted = 0
        self.flowing = asyncio.Event()  # cleared while black-holed
        self.flowing.set()

    def set(self, command: str) -> None:
        word, _, arg = command.strip().partition(" ")
        if word == "delay":
            self.mode, self.delay_s = "delay", float(arg or 1.0)
        elif word in ("pass", "blackhole"):
            self.mode, self.delay_s = word, 0.0
        elif word == "reset":
            self.mode = "reset"
            for writer in list(self.writers):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        else:
            raise ValueError(f"unknown proxy command {command!r}")
        if self.mode == "blackhole":
            self.flowing.clear()
        else:
            self.flowing.set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, *self.listen, reuse_address=True)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        for task in list(self.connections):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "reset":
            writer.transport.abort()
            return
        task = asyncio.current_task()
        self.connections.add(task)
        self.writers.add(writer)
        upstream_writer = None
        try:
            await self.flowing.wait()  # a partition: the connection hangs, unanswered
            if self.mode == "reset":
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            self.writers.add(upstream_writer)
            await asyncio.gather(
                self._pump(reader, upstream_writer),
                self._pump(upstream_reader, writer),
                return_exceptions=True,
            )
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    self.writers.discard(w)
                    with contextlib.suppress(Exception):
                        w.close()
            self.connections.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward one direction. Delay is latency, not a bandwidth cap: each chunk is stamped when it
        arrives and sent `delay_s` later, in order, while later chunks keep arriving."""
        queue: asyncio.Queue = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer))
        try:
            while True:
                await self.flowing.wait()  # held (not read, not lost) while black-holed
                data = await reader.read(CHUNK)
                if not data or self.mode == "reset":
                    break
                queue.put_nowait((time.monotonic() + (self.delay_s if self.mode == "delay" else 0.0), data))
        finally:
            queue.put_nowait(None)
            await asyncio.gather(sender, return_exceptions=True)

    async def _send(self, queue: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        try:
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                await self.flowing.wait()
                if self.mode == "reset":
                    break
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort() if self.mode == "reset" else writer.write_eof()


async def _serve_stdin(proxy: TcpProxy) -> None:
    await proxy.start()
    print(
        f"proxy {proxy.listen[0]}:{proxy.listen[1]} -> {proxy.target[0]}:{proxy.target[1]} ready", flush=True
    )
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
        if not line.strip():
            continue
        try:
            proxy.set(line)
            print(f"{time.strftime('%H:%M:%S')} mode {proxy.mode} {proxy.delay_s}", flush=True)
        except ValueError as exc:
            print(exc, flush=True)
    await proxy.close()


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept on")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    args = parser.parse_args()
    proxy = TcpProxy(*_host_port(args.listen), *_host_port(args.target))
    asyncio.run(_serve_stdin(proxy))


class ProxyProcess:
    """The proxy as a child process (its own event loop and CPU), driven over its stdin."""

    def __init__(self, listen_port: int, target: str, log_path: Path) -> None:
        self.listen_port = listen_port
        self.target = target
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--listen",
                f"127.0.0.1:{self.listen_port}",
                "--target",
                self.target,
            ],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.listen_port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("tcp proxy did not start")

    def set(self, command: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((command.strip() + "\n").encode())
        self.proc.stdin.flush()
        time.sleep(0.05)  # let it switch before the caller measures

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.set("quit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


if __name__ == "__main__":
    main()
