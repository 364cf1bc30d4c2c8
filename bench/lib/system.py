"""What a benchmark reads from the machine: free ports, memory and CPU of processes, the machine and the code."""
from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_BLOCK = 19000  # where the search for a free block of ports starts
BLOCK_STEP = 20


class BenchError(Exception):
    """A failure the benchmark reports in one line (after its cleanup) and exits 1 for."""


def ephemeral_low() -> int:
    """The lowest local port the kernel hands to outgoing connections: every bench port stays below it, so no
    outgoing connection (nginx's, the app's) can take a port a bench process has to listen on."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_free(port: int) -> bool:
    """Nobody listens on it, on 127.0.0.1 or on every address (a bind is the one check that sees both)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT leftover is no listener
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def block_free(base: int, size: int, low: int) -> bool:
    return base + size < low and all(port_free(p) for p in range(base + 1, base + size + 1))


def find_port_block(size: int, base: int | None = None) -> int:
    """A base B such that B+1..B+size are free and below the ephemeral range: ``base`` if given, else the first
    such block from 19000 up, in steps of 20."""
    low = ephemeral_low()
    if base is not None:
        if not block_free(base, size, low):
            raise BenchError(f"ports {base + 1}..{base + size} are not all free and below the ephemeral range ({low})")
        return base
    for candidate in range(FIRST_BLOCK, low - size, BLOCK_STEP):
        if block_free(candidate, size, low):
            return candidate
    raise BenchError(f"no free block of {size} ports between {FIRST_BLOCK} and {low}")


def rss_mb(pid: int) -> float | None:
    """Resident memory (VmRSS) in MB, or None for a process that is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def cpu_ticks(pid: int | None) -> int:
    """utime + stime of a process in clock ticks (0 for none or a process that is gone)."""
    if not pid:
        return 0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


def busy_ticks() -> int:
    """Ticks all CPUs spent neither idle nor waiting for I/O."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return user + nice + system + irq + softirq + steal


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:port (to find MariaDB's or Redis's among several of their kind)."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"pid=(\d+)", out)
    return int(match.group(1)) if match else None


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child is gone for every purpose here
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def git(*args: str, cwd: Path = ROOT) -> str:
    out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {out.stderr.strip() or out.returncode}")
    return out.stdout.strip()


def describe_tree(path: Path = ROOT) -> str:
    """The commit a tree is at, and whether it has uncommitted changes (which a benchmark measures too)."""
    try:
        commit = git("rev-parse", "--short", "HEAD", cwd=path)
        dirty = git("status", "--porcelain", "--untracked-files=no", cwd=path)
    except (BenchError, OSError):
        return "unknown commit"
    return f"{commit} (plus uncommitted changes)" if dirty else commit


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kib / 1048576:.0f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    import tornado
    return (f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}{memory}; "
            f"Python {sys.version.split()[0]}, Tornado {tornado.version}; {nginx_version()}")


def nginx_version() -> str:
    try:
        out = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "nginx ?"
    return out.stderr.strip().replace("nginx version: ", "")


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def require(*tools: str) -> None:
    """Every tool a benchmark runs is there, or one line saying how to get it."""
    missing = [t for t in tools if not (shutil.which(t) or (t == "nginx" and os.access("/usr/sbin/nginx", os.X_OK)))]
    if missing:
        raise BenchError(f"{', '.join(missing)} required (apt-get install {' '.join(missing)}, or "
                         "bash scripts/bootstrap.sh)")
    if not os.access(ROOT / ".venv" / "bin" / "supervisord", os.X_OK):
        raise BenchError(f"no {ROOT}/.venv/bin/supervisord (run scripts/bootstrap.sh)")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


class CpuMeter:
    """CPU time of chosen processes over a stretch (a load run), and of everything else on the machine."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.before = {name: cpu_ticks(pid) for name, pid in pids.items()}
        self.busy_before = busy_ticks()
        self.used: dict[str, float] = {}
        self.other_share: float | None = None

    def stop(self, seconds: float) -> CpuMeter:
        """Seconds of CPU per process (negative if a counter went backwards), and the share of all CPUs busy in
        other processes (the load generator included) during ``seconds``."""
        ticks = {name: cpu_ticks(pid) - self.before[name] for name, pid in self.pids.items()}
        other = busy_ticks() - self.busy_before - sum(ticks.values())
        self.used = {name: t / CLOCK_TICKS for name, t in ticks.items()}
        ok = all(t >= 0 for t in ticks.values())
        self.other_share = max(other, 0) / (CLOCK_TICKS * (os.cpu_count() or 1) * seconds) if ok else None
        return self


def wait_quiet(limit: float, say) -> None:
    """Up to ``limit`` seconds for a 2 s stretch with the CPUs at least 85% idle (other work skews every figure)."""
    if limit <= 0:
        return
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = busy_ticks()
        time.sleep(2)
        if (busy_ticks() - before) <= 0.15 * 2 * CLOCK_TICKS * (os.cpu_count() or 1):
            return
    say(f"the machine did not go quiet within {limit:.0f} s; measuring anyway")
