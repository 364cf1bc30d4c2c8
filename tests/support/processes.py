"""Real ``server.py`` processes for the tests that need more than one process, or a dependency to die."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from tests.support.slow_callbacks import from_app

ROOT = Path(__file__).resolve().parents[2]
# Every server process watches its loop (services.loop_watch) and logs each step over this many ms of CPU (or
# 40 times as much wall time); ``stop`` fails on any. CPU time, not wall time: on the shared 2-core machine an
# ordinary step can take 200-550 ms of wall time while other runs load it.
SLOW_CALLBACK_MS = "50"


def free_port() -> int:
    """A port nothing was bound to a moment ago: free to bind *unless someone else binds it first*, which for a
    server (``reuse_port=True``) can mean two processes sharing it silently; ``ServerProcess`` checks for that."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_sockets(port: int) -> set[int]:
    """Inodes of every socket listening on TCP ``port`` (any address, any process) in this network namespace."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(int(fields[9]))
    return inodes


def sockets_of(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` has open."""
    inodes = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


class PortTaken(RuntimeError):
    """The port is in use (the bind failed) or shared (another socket listens on it too)."""


class ServerProcess:
    """``server.py`` (or ``script``, which takes the same ``--port``) in a process of its own, output in a file.

    server.py binds with ``reuse_port=True``, so a port picked free and then taken by another process's server
    in between would be shared without an error, each process getting some of the connections. ``start`` waits
    until the child itself listens, and if anything else listens on the port too (or the bind failed) it starts
    the child again on another port (a port given explicitly is an error instead); ``stop`` checks again.
    """

    ATTEMPTS = 5

    def __init__(self, env: dict[str, str], port: int | None = None, script: Path = ROOT / "server.py",
                 pick_port: Callable[[], int] = free_port) -> None:
        self.fixed_port = port
        self.pick_port = pick_port
        self.port = port or pick_port()
        self.env = env
        self.script = script
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 15) -> None:
        """Start and wait for /healthz; a process that does not come up is killed, never left behind."""
        for attempt in range(self.ATTEMPTS):
            try:
                await self._start(timeout)
                return
            except PortTaken:
                self._kill()
                if self.fixed_port is not None or attempt == self.ATTEMPTS - 1:
                    raise
                self.port = self.pick_port()
            except BaseException:
                self._kill()
                raise

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    async def _start(self, timeout: float) -> None:
        env = {**os.environ, "SWIPER_SLOW_CALLBACK_MS": SLOW_CALLBACK_MS, **self.env, "PYTHONPATH": str(ROOT)}
        self.log = tempfile.NamedTemporaryFile(prefix="swiper-test-server-", suffix=".log")
        self.proc = subprocess.Popen([sys.executable, str(self.script), "--port", str(self.port)],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not listening_sockets(self.port) & sockets_of(self.proc.pid):  # until the child itself listens
            if self.proc.poll() is not None:
                output = self.output()
                if "Address already in use" in output:
                    raise PortTaken(f"port {self.port} is in use")
                raise RuntimeError(f"server exited: {output[-2000:]}")
            if loop.time() > deadline:
                raise RuntimeError("server did not start listening")
            await asyncio.sleep(0.05)
        self.check_port_is_mine()
        client = AsyncHTTPClient()
        while loop.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()[-2000:]}")
            try:
                resp = await client.fetch(self.base_url + "/healthz", raise_error=False, request_timeout=1)
                if resp.code == 200:
                    return
            except (OSError, HTTPClientError):
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    def check_port_is_mine(self) -> None:
        """Nothing but this process listens on its port (so every connection to it reaches this process)."""
        assert self.proc is not None
        others = listening_sockets(self.port) - sockets_of(self.proc.pid)
        if others:
            raise PortTaken(f"port {self.port} is shared with {len(others)} other listening socket(s)")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the process; a slow loop step it logged (asyncio debug, SLOW_CALLBACK_MS) fails the test, and so
        does another process having listened on its port meanwhile (the test's answers may have come from it)."""
        assert self.proc is not None
        shared = None
        if self.proc.poll() is None:
            try:
                self.check_port_is_mine()
            except PortTaken as exc:
                shared = exc
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        slow = from_app(self.output())
        assert not slow, "slow callbacks in server.py:\n" + "\n".join(slow)
        assert shared is None, str(shared)
        return code
