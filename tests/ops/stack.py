"""The whole production stack in a scratch directory, run by the repository's own scripts and config files.

``Deployment`` deploys this working tree with ``scripts/deploy.sh`` into ``<scratch>/app`` (its ``.venv`` is a
link to the repository's, so nothing is installed), with an env file naming the database, Redis and free
loopback ports; ``deploy.sh`` migrates and runs ``scripts/start.sh`` there (supervisord + nginx). Everything it
starts lives under ``<scratch>/app/var`` and is stopped by ``scripts/stop.sh``.
"""
from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, read the way scripts/lib/common.sh reads them."""
    values: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ValueError(f"{path}: not KEY=VALUE: {line}")
        key, value = match.groups()
        quoted = re.fullmatch(r"'(.*)'\s*|\"(.*)\"\s*", value)
        values[key] = (quoted.group(1) if quoted.group(1) is not None else quoted.group(2)) if quoted else value.rstrip()
    return values


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_base_port(count: int) -> int:
    """A base B with B+1..B+count all free, below the ephemeral range.

    A port that a server gives up while it restarts (a process during a rolling restart, MySQL or Redis during an
    outage) must not be one the kernel hands out to outgoing connections: meanwhile nginx's or the app's own
    connections may take it, so the server cannot bind it again (EADDRINUSE), or a connection to it meets itself
    (a TCP self-connect: nginx read its own request as the answer). The first harness runs hit both.
    """
    low = ephemeral_range()[0]
    rng = random.SystemRandom()
    for _ in range(500):
        base = rng.randrange(10000, low - count - 1)
        if all(_port_free(base + n) for n in range(1, count + 1)):
            return base
    raise RuntimeError("no block of free ports below the ephemeral range")


def free_port() -> int:
    """A free loopback port below the ephemeral range (see ``free_base_port``)."""
    return free_base_port(1) + 1


def clean_env() -> dict[str, str]:
    """This process's environment without SWIPER_* (the stack must get its settings from its env file only)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SWIPER_")}


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class Deployment:
    def __init__(self, scratch: Path, settings: dict[str, str], procs: int = 2) -> None:
        self.scratch = scratch
        self.target = scratch / "app"
        self.procs = procs
        self.base_port = free_base_port(procs)
        self.http_port = free_port()
        self.settings = dict(settings)
        self.env_file = self.target / "conf" / "swiper.env"
        self.url = f"http://127.0.0.1:{self.http_port}"

    def port(self, n: int) -> int:
        return self.base_port + n

    def prepare(self) -> None:
        """The target before its first deploy: a link to the repository's .venv and the operator's env file."""
        (self.target / "conf").mkdir(parents=True, exist_ok=True)
        venv = self.target / ".venv"
        if not venv.exists():
            venv.symlink_to(ROOT / ".venv")
        layout = {"SWIPER_PROCS": str(self.procs), "SWIPER_BASE_PORT": str(self.base_port),
                  "SWIPER_HTTP_PORT": str(self.http_port)}
        lines = ["# written by tests/ops/stack.py"] + [f"{k}={v}" for k, v in {**layout, **self.settings}.items()]
        self.env_file.write_text("\n".join(lines) + "\n")

    # -- the scripts ----------------------------------------------------------------------------------------------
    def deploy(self, source: Path = ROOT, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(source / "scripts" / "deploy.sh"), "--source", str(source), *args,
                               str(self.target)], env=clean_env(), capture_output=True, text=True, timeout=timeout)

    def script(self, name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(self.target / "scripts" / name), *args], env=clean_env(),
                              capture_output=True, text=True, timeout=timeout)

    async def script_async(self, name: str, *args: str) -> tuple[int, str, float]:
        """Run a script without blocking the loop (the load goes on meanwhile): (exit status, output, seconds)."""
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            "bash", str(self.target / "scripts" / name), *args, env=clean_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode, out.decode(errors="replace"), time.monotonic() - started

    def supervisorctl(self, *args: str) -> str:
        result = subprocess.run([str(self.target / ".venv" / "bin" / "supervisorctl"), "-c",
                                 str(self.target / "supervisor.conf"), *args], env=clean_env(),
                                capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr

    def pid(self, n: int) -> int | None:
        out = self.supervisorctl("pid", f"swiper:swiper_{n:02d}").strip()
        return int(out) if out.isdigit() and out != "0" else None

    def ready(self, n: int) -> int:
        return http_status(f"http://127.0.0.1:{self.port(n)}/readyz")

    def stop(self) -> str:
        result = self.script("stop.sh", timeout=150)
        return result.stdout + result.stderr

    def logs(self, lines: int = 40) -> str:
        """The tail of every log of the stack, for a failure report."""
        out = []
        for path in sorted((self.target / "var").glob("**/*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"==> {path.relative_to(self.target)} <==\n" + "\n".join(text))
        return "\n".join(out)
