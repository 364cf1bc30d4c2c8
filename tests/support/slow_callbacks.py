"""The suite runs with asyncio debug on; a loop step of the app's that burns over 50 ms of CPU fails the run.

asyncio's own slow-callback log measures wall time, which on a shared 2-core machine also counts the process
being descheduled and the garbage collector (debug mode keeps tracebacks alive, so collections are large). What
blocks the loop in this app is CPU work (SSL contexts, JSON of big lists, image decoding), so each step is also
timed in thread CPU time minus GC time, and only that decides. Blocking I/O is kept out by design and by the
pre-stop scan for blocking calls.
"""
from __future__ import annotations

import asyncio
import gc
import re
import time
from asyncio import base_events, events

SLOW_CALLBACK_SECONDS = 0.050
_APP_MARKERS = re.compile(r"tornado/(web|http1connection|httpserver|iostream)\.py|/(handlers|services|models)/"
                          r"|server\.py")
_TEST_MARKERS = re.compile(r"/tests/|_pytest|pytest_asyncio")


class StepTimer:
    """Wraps ``Handle._run`` to measure each loop step's CPU time, less what the garbage collector took."""

    def __init__(self, threshold: float = SLOW_CALLBACK_SECONDS) -> None:
        self.threshold = threshold
        self.app: list[str] = []
        self.other: list[str] = []
        self._gc_cpu = 0.0
        self._gc_started = 0.0
        self._original = events.Handle._run

    def _on_gc(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._gc_started = time.thread_time()
        else:
            self._gc_cpu += time.thread_time() - self._gc_started

    def install(self) -> None:
        timer, original = self, self._original

        def timed_run(handle: events.Handle) -> None:
            started, gc_before = time.thread_time(), timer._gc_cpu
            original(handle)
            spent = time.thread_time() - started - (timer._gc_cpu - gc_before)
            if spent > timer.threshold:
                owner = base_events._format_handle(handle)
                entry = f"{owner} used {spent * 1000:.0f} ms of CPU"
                is_app = _APP_MARKERS.search(owner) and not _TEST_MARKERS.search(owner)
                (timer.app if is_app else timer.other).append(entry)

        events.Handle._run = timed_run  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        events.Handle._run = self._original  # type: ignore[method-assign]
        gc.callbacks.remove(self._on_gc)


def enable_debug(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK_SECONDS


# What asyncio's debug mode logs for a slow step (base_events: "Executing %s took %.3f seconds"), through
# server.configure_logging's format; tests/test_support.py checks it against a real server process's output.
_SLOW_STEP = re.compile(r" WARNING asyncio Executing .+ took \d+\.\d{3} seconds$")


def from_app(log_text: str) -> list[str]:
    """The slow-callback lines in a server process's log (server.py logs them when SWIPER_SLOW_CALLBACK_MS is set,
    which tests/support/processes.py does for every process it starts)."""
    return [line for line in log_text.splitlines() if _SLOW_STEP.search(line)]
