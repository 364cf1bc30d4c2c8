"""One benchmark run: its work directory, every process it starts, and the cleanup of all of it.

Whatever a benchmark starts goes through its ``Session`` (``spawn``, ``run``) or registers its own stop with
``defer``; leaving the ``with`` block, for any reason (an error, Ctrl-C, SIGTERM), undoes it all, last first. A
second signal during the cleanup does not cut it short. Children run in their own session (a terminal's Ctrl-C
reaches the benchmark only, which then stops them in order) and get SIGTERM if the benchmark itself is killed.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.lib.system import ROOT, BenchError, alive

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: unwinds through every ``finally`` so the cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _die_with_parent() -> None:
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Proc:
    """A long-lived child (a server, a stub) with its output in the session's ``out/NAME.out`` / ``.err``."""

    def __init__(self, name: str, popen: subprocess.Popen, out: Path, err: Path) -> None:
        self.name, self.popen, self.out, self.err = name, popen, out, err

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, up to ``grace`` seconds, then SIGKILL."""
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            print(f"{self.name} (pid {self.pid}) ignored SIGTERM for {grace:.0f} s; killing it", file=sys.stderr)
            self.popen.kill()
            self.popen.wait()


class Session:
    def __init__(self, prog: str, *, keep_logs: bool = False) -> None:
        self.prog = prog
        self.keep_logs = keep_logs
        # Under the repository's var/ (git-ignored), not /tmp: a shared machine's /tmp gets swept by others.
        base = ROOT / "var" / "bench"
        base.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix=f"{prog}.", dir=base))
        self.out = self.work / "out"
        self.out.mkdir()
        self._cleanups: list[tuple[str, Callable[[], None]]] = []
        self._old_handlers: dict[int, object] = {}
        self.failed = False

    # --- lifetime ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Session:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, self._interrupt)
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.failed = kind is not None
        for sig in self._old_handlers:
            signal.signal(sig, self._during_cleanup)
        while self._cleanups:
            what, fn = self._cleanups.pop()
            try:
                fn()
            except Exception as exc:  # one failed stop must not leave the rest running
                self.say(f"cleanup ({what}) failed: {exc}")
        if self.keep_logs:
            self.say(f"logs kept in {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)

    @staticmethod
    def _interrupt(signum: int, _frame) -> None:
        raise Interrupted(signum)

    def _during_cleanup(self, signum: int, _frame) -> None:
        self.say(f"{signal.Signals(signum).name} during the cleanup: finishing it first")

    def defer(self, what: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the session ends (last registered, first run)."""
        self._cleanups.append((what, fn))

    # --- messages ---------------------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        print(f"{self.prog}: {message}", file=sys.stderr, flush=True)

    def tail(self, path: Path, lines: int = 20) -> None:
        """The end of a log, on stderr (after a failure)."""
        try:
            text = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return
        if text:
            print(f"--- {path} (last {len(text)} lines) ---", file=sys.stderr)
            print("\n".join(text), file=sys.stderr, flush=True)

    # --- processes --------------------------------------------------------------------------------------------
    def spawn(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
              cwd: Path = ROOT) -> Proc:
        """Start a long-lived child; it is stopped (SIGTERM, then SIGKILL) when the session ends."""
        out, err = self.out / f"{name}.out", self.out / f"{name}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            popen = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=stderr, start_new_session=True, preexec_fn=_die_with_parent)
        proc = Proc(name, popen, out, err)
        self.defer(f"stop {name}", proc.stop)
        return proc

    def run(self, name: str, argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None,
            cwd: Path = ROOT) -> str:
        """Run a step to its end; its stdout is returned and kept in ``out/NAME.out``; a failure or timeout
        shows its stderr and raises BenchError. An interruption kills it."""
        out, err = self.out / f"{name}.out", self.out / f"{name}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            popen = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=stderr, start_new_session=True, preexec_fn=_die_with_parent)
            try:
                code = popen.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                if popen.poll() is None:
                    popen.kill()
                    popen.wait()
        if code != 0:
            self.tail(err, 30)
            self.tail(out, 30)
            raise BenchError(f"{name} {'timed out after %.0f s' % timeout if code is None else f'exited {code}'}")
        return out.read_text(errors="replace")


def kill_leftovers(name: str, pids: Sequence[int], say: Callable[[str], None]) -> None:
    """SIGKILL whichever of ``pids`` (recorded when they started) outlived their orderly stop."""
    for pid in pids:
        if alive(pid):
            say(f"{name} pid {pid} still running: SIGKILL")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def exit_code(exc: BaseException) -> int:
    """The exit status for how a benchmark ended: 130/143 after a signal, 1 after a failure."""
    if isinstance(exc, Interrupted):
        return 128 + exc.signum
    return 1


def main_guard(prog: str, body: Callable[[], int]) -> int:
    """Run a benchmark's main body and turn its failures into one line and an exit status."""
    try:
        return body()
    except BenchError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"{prog}: interrupted ({exc})", file=sys.stderr)
        return exit_code(exc)
