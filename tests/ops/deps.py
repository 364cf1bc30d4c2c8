"""Private MariaDB and Redis servers for the fault runs: stopping them never disturbs the machine's own.

``PrivateMariaDB`` initialises its own datadir with ``mariadb-install-db`` and runs ``mariadbd`` on a free
loopback port and its own socket; ``PrivateRedis`` runs ``redis-server`` without persistence. Both can be
stopped and started again on the same port (MariaDB keeps its data), or frozen with SIGSTOP (a black hole:
connections are accepted by the kernel and never answered).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pymysql

from tests.ops.stack import free_port


def _which(*names: str) -> str:
    for name in names:
        for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
    raise RuntimeError(f"none of {', '.join(names)} is installed")


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


class PrivateMariaDB:
    def __init__(self, root: Path, server_args: tuple[str, ...] = ("--skip-log-bin",)) -> None:
        self.root = root
        self.server_args = server_args  # e.g. a server id and a binary log, for replication
        self.datadir = root / "mysql-data"
        self.socket = root / "mysql.sock"
        self.log = root / "mysql.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"mysql://swiper:swiper@127.0.0.1:{self.port}/swiper"

    def initialise(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [_which("mariadb-install-db", "mysql_install_db"), "--no-defaults", f"--datadir={self.datadir}",
               "--auth-root-authentication-method=normal", "--skip-test-db"]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        self.start()
        conn = pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE swiper CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            for host in ("localhost", "127.0.0.1"):
                cur.execute(f"CREATE USER 'swiper'@'{host}' IDENTIFIED BY 'swiper'")
                cur.execute(f"GRANT ALL ON swiper.* TO 'swiper'@'{host}'")
        conn.close()

    def start(self) -> None:
        cmd = [_which("mariadbd", "mysqld"), "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
               f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.root / 'mysql.pid'}",
               f"--log-error={self.log}", "--skip-name-resolve", "--innodb-buffer-pool-size=64M",
               "--max-connections=300", *self.server_args]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        _wait(self.answers, 60, "private mariadbd")

    def answers(self) -> bool:
        try:
            conn = pymysql.connect(host="127.0.0.1", port=self.port, user="swiper", password="swiper",
                                   connect_timeout=1) if self._has_user() else \
                pymysql.connect(unix_socket=str(self.socket), user="root", connect_timeout=1)
            conn.close()
            return True
        except pymysql.MySQLError:
            return False

    def _has_user(self) -> bool:
        return (self.datadir / "swiper").exists()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [_which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--logfile", str(self.root / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait(self.answers, 20, "private redis-server")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
