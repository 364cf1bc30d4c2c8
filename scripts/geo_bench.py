"""The feed-by-distance benchmark on one process: ``python scripts/geo_bench.py --fixtures DIR [DIR ...]``.

For each fixtures directory (written by ``scripts/geo_bench_setup.py``, or ``scripts/bench_social_setup.py`` for
the city feed: both leave ``viewer.token``), it runs ``wrk --latency`` against ``GET
/api/v1/recommendations?limit=10`` of one ``server.py`` process, next to the ceiling (``scripts/bench_bare.py``,
one process, the same event loop), at ``--connections`` (default 50) and at 1 connection, each run after a 3 s
warm-up, and prints a markdown table: req/s, p50, p99, non-2xx, ratio to the ceiling, and the CPU that
``server.py`` and ``mariadbd`` used per request. Both processes are stopped on exit. Uses the ``SWIPER_*``
settings from the environment (the fixtures' database and Redis) with the request-rate limits off.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def mariadb_pid() -> int | None:
    found = subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else None


def wait_ready(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"geo_bench: {url} did not come up")


def wrk(url: str, connections: int, duration: int, token: str | None) -> dict:
    args = ["wrk", "-t", "1" if connections == 1 else "2", "-c", str(connections), "-d", f"{duration}s", "--latency"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "p50": latency.get("50"), "p99": latency.get("99"), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": "Socket errors" in out}


def measured(url: str, connections: int, duration: int, token: str | None, pids: dict[str, int]) -> dict:
    wrk(url, connections, 3, token)  # warm-up
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = wrk(url, connections, duration, token)
    result["cpu_us"] = {name: (cpu_seconds(pid) - before[name]) / max(1, result["requests"]) * 1e6
                        for name, pid in pids.items()}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", nargs="+", required=True, help="directories with viewer.token")
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args(argv)
    env = {**os.environ, "SWIPER_RATE_LIMIT_ENABLED": "false", "SWIPER_LOG_LEVEL": "WARNING"}
    app_port, bare_port = free_port(), free_port()
    app = subprocess.Popen([PYTHON, str(ROOT / "server.py"), "--port", str(app_port)], cwd=ROOT, env=env)
    bare = subprocess.Popen([PYTHON, str(ROOT / "scripts" / "bench_bare.py"), "--port", str(bare_port)], cwd=ROOT,
                            env=env)
    rows = []
    try:
        wait_ready(f"http://127.0.0.1:{app_port}/healthz")
        wait_ready(f"http://127.0.0.1:{bare_port}/")
        database = mariadb_pid()
        for connections in (args.connections, 1):
            ceiling = measured(f"http://127.0.0.1:{bare_port}/", connections, args.duration, None,
                               {"bench_bare.py": bare.pid})
            rows.append(("ceiling: bare Tornado `GET /`", connections, ceiling, 1.0))
            for fixtures in args.fixtures:
                token = Path(fixtures, "viewer.token").read_text().strip()
                pids = {"server.py": app.pid, **({"mariadbd": database} if database else {})}
                result = measured(f"http://127.0.0.1:{app_port}/api/v1/recommendations?limit=10", connections,
                                  args.duration, token, pids)
                rows.append((f"feed `{Path(fixtures).name}`", connections, result, result["rps"] / ceiling["rps"]))
    finally:
        for proc in (app, bare):
            proc.send_signal(signal.SIGTERM)
        for proc in (app, bare):
            proc.wait(timeout=20)
    print(f"command: {' '.join([Path(PYTHON).name, 'scripts/geo_bench.py', *(argv or sys.argv[1:])])}")
    print("| path | conns | req/s | p50 | p99 | non-2xx | ratio to ceiling | CPU per request |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, connections, result, ratio in rows:
        cpu = ", ".join(f"{proc} {us:.0f} µs" for proc, us in result["cpu_us"].items())
        print(f"| {name} | {connections} | {result['rps']:.2f} | {result['p50']} | {result['p99']} | "
              f"{result['non2xx']}{' (socket errors)' if result['errors'] else ''} | {ratio:.2f} | {cpu} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
