"""The suite runs with asyncio debug on; a loop step of the app's that burns over 50 ms of CPU fails the run.

asyncio's own slow-callback log measures wall time, which on a shared 2-core machine also counts the process
being descheduled and the garbage collector (debug mode keeps tracebacks alive, so collections are large). What
blocks the loop in this app is CPU work (SSL contexts, JSON of big lists, image decoding), so each step is also
timed in thread CPU time minus GC time, and only that decides. Blocking I/O is kept out by design and by the
pre-stop scan for blocking calls.
"""
from __future__ import annotations

import asyncio
import re

from services.loop_watch import SLOW_STEP_FORMAT, StepTimer

SLOW_CALLBACK_SECONDS = 0.050
_APP_MARKERS = re.compile(r"tornado/(web|http1connection|httpserver|iostream)\.py|/(handlers|services|models)/"
                          r"|server\.py")
_TEST_MARKERS = re.compile(r"/tests/|_pytest|pytest_asyncio")


class SuiteStepTimer:
    """The suite's watch (``services.loop_watch.StepTimer``, CPU time only: the suite's loop shares the machine
    with the processes it starts), sorting slow steps into the app's and the test code's own."""

    def __init__(self, threshold: float = SLOW_CALLBACK_SECONDS) -> None:
        self.app: list[str] = []
        self.other: list[str] = []
        self._timer = StepTimer(cpu_threshold=threshold, wall_threshold=float("inf"), report=self._report)

    def _report(self, owner: str, cpu: float, _wall: float) -> None:
        entry = f"{owner} used {cpu * 1000:.0f} ms of CPU"
        is_app = _APP_MARKERS.search(owner) and not _TEST_MARKERS.search(owner)
        (self.app if is_app else self.other).append(entry)

    def install(self) -> None:
        self._timer.install()

    def uninstall(self) -> None:
        self._timer.uninstall()


def enable_debug(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK_SECONDS


# What server.py logs for a slow step (services.loop_watch), through server.configure_logging's format;
# tests/test_support.py checks it against a real server process's output.
_SLOW_STEP = re.compile(r" WARNING swiper\.loop " + re.escape(SLOW_STEP_FORMAT.split(" %s")[0]) + r" .+ used \d+ ms of CPU"
                        r" in \d+ ms$")


def from_app(log_text: str) -> list[str]:
    """The slow-callback lines in a server process's log (server.py logs them when SWIPER_SLOW_CALLBACK_MS is set,
    which tests/support/processes.py does for every process it starts)."""
    return [line for line in log_text.splitlines() if _SLOW_STEP.search(line)]
