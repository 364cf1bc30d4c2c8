"""The production stack under test, privately: a copy of a tree brought up by its own ``scripts/start.sh``.

``copy_tree`` makes the copy of this working tree (rsync) and ``checkout_revision`` one of another git revision
(a temporary ``git worktree``, removed at the end); either shares this repository's ``.venv``. ``Stack`` starts
it (supervisord + N ``server.py`` + nginx, exactly as production does), with the ceiling, ``bench/bare.py`` as N
processes of this tree, behind the SAME nginx in a second server block copied from Swiper's. Everything the
stack writes (var/run, var/log, var/nginx) stays in the copy; the repository's own var/ and any stack running
from it are left alone. The bench code itself (ceiling, stub, fixtures, load) always comes from this tree.
"""
from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.lib.session import Proc, Session, kill_leftovers
from bench.lib.system import ROOT, BenchError, git, rss_mb

PYTHON = str(ROOT / ".venv" / "bin" / "python")
_COPY_EXCLUDES = ["/.venv", "/var", "/.git", "/tests", "/bench", "__pycache__", "/conf/swiper.env"]


def copy_tree(session: Session, name: str) -> Path:
    """A copy of this working tree as it is (uncommitted changes included)."""
    dest = session.work / name
    argv = ["rsync", "-a", *[f"--exclude={e}" for e in _COPY_EXCLUDES], f"{ROOT}/", f"{dest}/"]
    session.run(f"rsync-{name}", argv, timeout=120)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


def resolve_revision(rev: str) -> tuple[str, str]:
    """(full sha, short sha) of a revision, or BenchError naming it."""
    try:
        sha = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except BenchError:
        raise BenchError(f"--compare {rev}: not a commit in this repository") from None
    return sha, git("rev-parse", "--short", sha)


def checkout_revision(session: Session, name: str, sha: str) -> Path:
    """A temporary git worktree of ``sha`` (detached), removed when the session ends."""
    dest = session.work / name
    git("worktree", "add", "--detach", "--quiet", str(dest), sha)

    def remove() -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(dest)],
                       capture_output=True, timeout=120)
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True, timeout=120)

    session.defer(f"remove the worktree {dest}", remove)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    if not (dest / "scripts" / "start.sh").is_file():
        raise BenchError(f"{sha[:7]} has no scripts/start.sh: the stack cannot be brought up from it")
    return dest


@dataclass(frozen=True)
class Layout:
    """Ports of one stack: servers BASE+1..BASE+N, bare BASE+N+1..BASE+2N, then nginx, nginx's bare block and
    the (unused, TLS off) HTTPS port start.sh wants."""
    base: int
    procs: int

    SIZE_EXTRA = 3

    @property
    def size(self) -> int:
        return 2 * self.procs + self.SIZE_EXTRA

    @property
    def bare_ports(self) -> list[int]:
        return [self.base + self.procs + n for n in range(1, self.procs + 1)]

    @property
    def http_port(self) -> int:
        return self.base + 2 * self.procs + 1

    @property
    def bare_http_port(self) -> int:
        return self.base + 2 * self.procs + 2

    @property
    def https_port(self) -> int:
        return self.base + 2 * self.procs + 3


def add_bare_block(template: str, layout: Layout) -> str:
    """nginx.conf with a copy of Swiper's upstream and server block for the ceiling, before "# <<< site"."""
    upstream = re.search(r"^    upstream swiper \{\n.*?^    \}\n", template, re.M | re.S)
    server = re.search(r"^    server \{\n.*?^    \}\n", template, re.M | re.S)
    marker = re.search(r"^    # <<< site", template, re.M)
    if not (upstream and server and marker and "@@UPSTREAM_SERVERS@@" in upstream.group(0)):
        raise BenchError("nginx.conf has not the shape the ceiling's server block is copied from "
                         "(upstream swiper { @@UPSTREAM_SERVERS@@ }, server { }, # <<< site)")
    servers = "".join(f"        server 127.0.0.1:{p} max_fails=0;\n" for p in layout.bare_ports)
    up = upstream.group(0).replace("upstream swiper", "upstream bare", 1).replace("@@UPSTREAM_SERVERS@@\n", servers)
    srv = (server.group(0).replace("@@HTTP_LISTEN@@", f"127.0.0.1:{layout.bare_http_port}")
           .replace("http://swiper;", "http://bare;").replace("swiper.access.log", "bare.access.log")
           .replace("swiper.error.log", "bare.error.log"))
    block = f"    # bench: the bare Tornado ceiling (bench/bare.py) behind the same nginx\n{up}\n{srv}"
    return template[:marker.start()] + block + template[marker.start():]


class Stack:
    def __init__(self, session: Session, name: str, label: str, tree: Path, layout: Layout,
                 settings: dict[str, str]) -> None:
        """``name``: for file names ("this", "base"); ``label``: for the tables ("base 5406119")."""
        self.session, self.name, self.label, self.tree = session, name, label, tree
        self.layout, self.settings = layout, settings
        self.rss_idle: dict[int, float | None] = {}
        self.rss_after: dict[int, float | None] = {}
        self.bare: list[Proc] = []
        self.server_pids: list[int] = []
        self._daemon_pids: list[int] = []
        self.url = f"http://127.0.0.1:{layout.http_port}"
        self.bare_url = f"http://127.0.0.1:{layout.bare_http_port}/"

    def start(self) -> None:
        """Bring the stack and its ceiling up and wait until both answer through nginx. The caller has registered
        its stop (``stop_stacks``) with the session before."""
        lines = [f"# bench: the private instance's env file ({self.label})",
                 *[f"{k}={v}" for k, v in self.settings.items()]]
        (self.tree / "conf" / "bench.env").write_text("\n".join(lines) + "\n")
        nginx_conf = self.tree / "nginx.conf"
        nginx_conf.write_text(add_bare_block(nginx_conf.read_text(), self.layout))
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "SWIPER_EVENT_LOOP": self.settings["SWIPER_EVENT_LOOP"], "PYTHONDONTWRITEBYTECODE": "1"}
        for n, port in enumerate(self.layout.bare_ports, 1):
            self.bare.append(self.session.spawn(f"bare-{self.name}-{n}", [PYTHON, "-m", "bench.bare", "--port",
                                                                        str(port)], env=env))
        self.session.say(f"starting the stack {self.label} from {self.tree}: {self.layout.procs} processes on "
                         f"127.0.0.1:{self.layout.base + 1}..{self.layout.base + self.layout.procs}, nginx on "
                         f"127.0.0.1:{self.layout.http_port} (bare: {self.layout.bare_http_port})")
        start_env = {**env, "SWIPER_ENV_FILE": str(self.tree / "conf" / "bench.env"),
                     "SWIPER_PROCS": str(self.layout.procs), "SWIPER_BASE_PORT": str(self.layout.base),
                     "SWIPER_LISTEN_ADDR": "127.0.0.1", "SWIPER_HTTP_PORT": str(self.layout.http_port),
                     "SWIPER_HTTPS_PORT": str(self.layout.https_port), "SWIPER_TLS": "off"}
        try:
            out = self.session.run(f"start-{self.name}", ["bash", str(self.tree / "scripts" / "start.sh"),
                                                          "--timeout", "60"], env=start_env, timeout=150)
        finally:
            self._daemon_pids = self._pid_files()
        print("\n".join("  " + line for line in out.splitlines()), file=sys.stderr)
        for n in range(1, self.layout.procs + 1):
            pid = self._supervisorctl("pid", f"swiper:swiper_{n:02d}").strip()
            if not pid.isdigit() or pid == "0":
                raise BenchError(f"no pid for server process {n} of {self.label} (supervisorctl said {pid!r})")
            self.server_pids.append(int(pid))
        wait_for_200(self.bare_url, self.bare[0], f"bench/bare.py behind {self.label}'s nginx")

    def stop(self) -> None:
        """scripts/stop.sh (drains every process), then SIGKILL for whatever it could not stop."""
        pids = sorted(set(self._daemon_pids + self._pid_files()))
        if (self.tree / "scripts" / "stop.sh").is_file():
            try:
                self.session.run(f"stop-{self.name}", ["bash", str(self.tree / "scripts" / "stop.sh")], timeout=120)
            except BenchError as exc:
                self.session.say(f"scripts/stop.sh of {self.label} failed: {exc}")
        kill_leftovers(f"{self.label}: supervisord/nginx", pids, self.session.say)
        kill_leftovers(f"{self.label}: server", self.server_pids, self.session.say)

    def _pid_files(self) -> list[int]:
        pids = []
        for path in (self.tree / "var/run/supervisord.pid", self.tree / "var/nginx/run/nginx.pid"):
            try:
                pids.append(int(path.read_text().strip()))
            except (OSError, ValueError):
                pass
        return pids

    def _supervisorctl(self, *args: str) -> str:
        out = subprocess.run([str(self.tree / ".venv/bin/supervisorctl"), "-c", str(self.tree / "supervisor.conf"),
                              *args], capture_output=True, text=True, timeout=30)
        return out.stdout

    @property
    def watched_pids(self) -> list[int]:
        """The processes a load run must not kill."""
        return self.server_pids + [p.pid for p in self.bare]

    def rss(self) -> dict[int, float | None]:
        return {pid: rss_mb(pid) for pid in self.watched_pids}

    def stderr_lines(self) -> list[str]:
        """What the server processes wrote to stderr (a clean run writes nothing at SWIPER_LOG_LEVEL=WARNING)."""
        lines = []
        for path in sorted((self.tree / "var" / "log").glob("swiper_*.err.log")):
            lines += path.read_text(errors="replace").splitlines()
        return lines

    def show_logs(self) -> None:
        self.session.tail(self.tree / "var/log/swiper_01.err.log")
        self.session.tail(self.tree / "var/nginx/logs/error.log", 10)


def stop_stacks(stacks: list[Stack]) -> None:
    """Stop several stacks at once (each stop drains for seconds; one after the other would add them up)."""
    threads = [threading.Thread(target=stack.stop, name=f"stop {stack.label}") for stack in stacks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def wait_for_200(url: str, proc: Proc | None, name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.running():
            raise BenchError(f"{name} exited during start-up: {proc.err.read_text(errors='replace')[-500:]}")
        try:
            if fetch(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchError(f"{name} did not answer 200 on {url} within {timeout:.0f} s")


def fetch(url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, bytes]:
    """One request (a POST when there is a body); (status, body)."""
    match = re.match(r"http://([^:/]+):(\d+)(/.*)$", url)
    if not match:
        raise ValueError(url)
    conn = http.client.HTTPConnection(match.group(1), int(match.group(2)), timeout=10)
    try:
        conn.request("POST" if body is not None else "GET", match.group(3), body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class SmsStub:
    """tests/stubs/aliyun_sms.py in command-line mode: verifies every SendSms signature, writes each code to
    ``codes/<phone>`` for the login script."""

    def __init__(self, session: Session, port: int, key_id: str, key_secret: str) -> None:
        self.session, self.port = session, port
        self.codes = session.work / "sms-codes"
        self.codes.mkdir()
        self.proc = session.spawn("sms-stub", [PYTHON, "-m", "tests.stubs.aliyun_sms", "--port", str(port),
                                               "--access-key-id", key_id, "--access-key-secret", key_secret,
                                               "--codes-dir", str(self.codes)])
        deadline = time.monotonic() + 20
        while "listening on" not in self.proc.out.read_text(errors="replace"):
            if not self.proc.running():
                raise BenchError(f"the SMS stub exited during start-up: {self.proc.err.read_text()[-500:]}")
            if time.monotonic() > deadline:
                raise BenchError(f"the SMS stub did not listen on 127.0.0.1:{port} within 20 s")
            time.sleep(0.1)

    def rejected(self) -> int:
        """Requests the stub refused so far (a bad signature, a bad parameter)."""
        return self.proc.err.read_text(errors="replace").count("rejected (")

    def pop_code(self, phone: str) -> str | None:
        path = self.codes / phone
        try:
            code = path.read_text()
        except OSError:
            return None
        path.unlink()
        return code
