"""Every loop step of the suite is timed; a step of the app's that burns over 50 ms of CPU fails the run.

Wall time on a shared 2-core machine also counts the process being descheduled, so each step is timed in thread
CPU time minus GC time (``services.loop_watch``), and only that decides. asyncio's debug mode is off: it
records a stack trace per future and handle, which multiplied a step's CPU several times. Blocking I/O is kept
out by design and by the pre-stop scan for blocking calls.
"""
from __future__ import annotations

import asyncio
import re

from services.loop_watch import SLOW_STEP_FORMAT, StepTimer

SLOW_CALLBACK_SECONDS = 0.050
_APP_MARKERS = re.compile(r"tornado/(web|http1connection|httpserver|iostream)\.py|/(handlers|services|models)/"
                          r"|server\.py")
_TEST_MARKERS = re.compile(r"/tests/|_pytest|pytest_asyncio")


def _request_of(handle: object) -> str:
    """For a step of a Tornado handler's task, the request it was serving (so a report names the endpoint)."""
    task = getattr(getattr(handle, "_callback", None), "__self__", None)
    frame = getattr(getattr(task, "get_coro", lambda: None)(), "cr_frame", None)
    handler = frame.f_locals.get("self") if frame is not None else None
    request = getattr(handler, "request", None)
    if request is None or not hasattr(request, "uri"):
        return ""
    return f" [{request.method} {request.uri[:120]}, body {getattr(handler, '_body_size', 0)} bytes]"


class SuiteStepTimer:
    """The suite's watch (``services.loop_watch.StepTimer``, CPU time only: the suite's loop shares the machine
    with the processes it starts), sorting slow steps into the app's and the test code's own."""

    def __init__(self, threshold: float = SLOW_CALLBACK_SECONDS) -> None:
        self.app: list[str] = []
        self.other: list[str] = []
        self.current_test = ""  # set by conftest for every test, so a report says where it happened
        self._timer = StepTimer(cpu_threshold=threshold, wall_threshold=float("inf"), report=self._report,
                                describe=_request_of)

    def _report(self, owner: str, cpu: float, _wall: float) -> None:
        entry = f"{owner} used {cpu * 1000:.0f} ms of CPU (during {self.current_test or 'set-up'})"
        is_app = _APP_MARKERS.search(owner) and not _TEST_MARKERS.search(owner)
        (self.app if is_app else self.other).append(entry)

    def install(self) -> None:
        self._timer.install()

    def uninstall(self) -> None:
        self._timer.uninstall()


# What server.py logs for a slow step (services.loop_watch), through server.configure_logging's format;
# tests/test_support.py checks it against a real server process's output.
_SLOW_STEP = re.compile(r" WARNING swiper\.loop " + re.escape(SLOW_STEP_FORMAT.split(" %s")[0]) + r" .+ used \d+ ms of CPU"
                        r" in \d+ ms$")


def from_app(log_text: str) -> list[str]:
    """The slow-callback lines in a server process's log (server.py logs them when SWIPER_SLOW_CALLBACK_MS is set,
    which tests/support/processes.py does for every process it starts)."""
    return [line for line in log_text.splitlines() if _SLOW_STEP.search(line)]
