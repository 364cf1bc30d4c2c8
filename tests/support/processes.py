"""Real ``server.py`` processes for the tests that need more than one process, or a dependency to die."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient

from tests.support.slow_callbacks import from_app

ROOT = Path(__file__).resolve().parents[2]
# Every server process runs asyncio's debug mode and logs each loop step slower than this (wall time, so it also
# counts being descheduled: generous next to the in-process check's 50 ms of CPU); ``stop`` fails on any.
SLOW_CALLBACK_MS = "50"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``server.py`` (or ``script``, which takes the same ``--port``) in a process of its own, output in a file."""

    def __init__(self, env: dict[str, str], port: int | None = None, script: Path = ROOT / "server.py") -> None:
        self.port = port or free_port()
        self.env = env
        self.script = script
        self.proc: subprocess.Popen | None = None
        self.base_url = f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 15) -> None:
        """Start and wait for /healthz; a process that does not come up is killed, never left behind."""
        try:
            await self._start(timeout)
        except BaseException:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            raise

    async def _start(self, timeout: float) -> None:
        env = {**os.environ, "SWIPER_SLOW_CALLBACK_MS": SLOW_CALLBACK_MS, **self.env, "PYTHONPATH": str(ROOT)}
        self.log = tempfile.NamedTemporaryFile(prefix="swiper-test-server-", suffix=".log")
        self.proc = subprocess.Popen([sys.executable, str(self.script), "--port", str(self.port)],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        client = AsyncHTTPClient()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()[-2000:]}")
            try:
                resp = await client.fetch(self.base_url + "/healthz", raise_error=False, request_timeout=1)
                if resp.code == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the process; a slow loop step it logged (asyncio debug, SLOW_CALLBACK_MS) fails the test."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        slow = from_app(self.output())
        assert not slow, "slow callbacks in server.py:\n" + "\n".join(slow)
        return code
