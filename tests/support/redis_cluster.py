"""A throw-away local Redis Cluster (3 masters, no replicas) from ``redis-server``, for the cluster test run.

``python -m tests.support.redis_cluster`` starts one and prints its startup URL until Ctrl-C (for trying things
by hand); the suite starts one per run when ``SWIPER_TEST_REDIS_CLUSTER=1`` (see tests/conftest.py).
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

MASTERS = 3


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port P with P + 10000 free too (a node's cluster bus), so P <= 55535."""
    while True:
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port


def _cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True,
                          timeout=30).stdout


@contextlib.contextmanager
def local_cluster(masters: int = MASTERS) -> Iterator[str]:
    """Start the cluster in a temporary directory; yield ``redis://127.0.0.1:<first port>/0``; remove it all."""
    workdir = Path(tempfile.mkdtemp(prefix="swiper-redis-cluster-"))
    ports = [cluster_port() for _ in range(masters)]
    servers: list[subprocess.Popen] = []
    try:
        for port in ports:
            servers.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000",
                 "--save", "", "--appendonly", "no", "--dir", str(workdir),
                 "--logfile", str(workdir / f"redis-{port}.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            _wait(lambda: _cli(port, "PING").strip() == "PONG", f"redis-server on :{port}")
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, text=True, timeout=60)
        for port in ports:
            _wait(lambda: "cluster_state:ok" in _cli(port, "CLUSTER", "INFO"), f"cluster_state:ok on :{port}")
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        if os.environ.get("SWIPER_KEEP_CLUSTER_DIR"):
            print(f"redis cluster files kept in {workdir}")
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if not os.environ.get("SWIPER_KEEP_CLUSTER_DIR"):  # set it to read the nodes' logs after a run
            shutil.rmtree(workdir, ignore_errors=True)


def _wait(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


if __name__ == "__main__":
    with local_cluster() as url:
        print(url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
