"""A watch on the event loop's steps, for hunting blocking calls (``SWIPER_SLOW_CALLBACK_MS`` > 0, and the tests).

asyncio's own slow-callback log measures wall time, which on a shared, busy machine also counts the process
being descheduled and the garbage collector: on 2 cores with a load of 5, ordinary steps took 150–200 ms of wall
time, and under heavier load a step using no CPU at all was seen taking 549 ms. So each step is timed in thread
CPU time minus the collector's share (what a CPU-bound blocking step costs: SSL contexts, JSON of big lists,
image decoding). A blocking sleep or synchronous network call uses no CPU: the server's watch also reports a step
over a wall-time bound far above any descheduling seen (2 s for the default 50 ms), and the pre-stop scan for
blocking calls (sleep, requests, urlopen, sync drivers) keeps them out of the code.
"""
from __future__ import annotations

import gc
import logging
import time
from asyncio import base_events, events
from collections.abc import Callable

log = logging.getLogger("swiper.loop")


class StepTimer:
    """Wraps ``asyncio.Handle._run`` (the standard loop; uvloop has its own handles) and reports slow steps."""

    def __init__(self, *, cpu_threshold: float, wall_threshold: float,
                 report: Callable[[str, float, float], None],
                 describe: Callable[[events.Handle], str] | None = None) -> None:
        self.describe = describe  # what a step was about, taken before it runs (its task may finish in it)
        self.cpu_threshold = cpu_threshold
        self.wall_threshold = wall_threshold
        self.report = report
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
            about = timer.describe(handle) if timer.describe is not None else ""
            started, wall_started, gc_before = time.thread_time(), time.monotonic(), timer._gc_cpu
            original(handle)
            cpu = time.thread_time() - started - (timer._gc_cpu - gc_before)
            wall = time.monotonic() - wall_started - (timer._gc_cpu - gc_before)
            if cpu > timer.cpu_threshold or wall > timer.wall_threshold:
                timer.report(base_events._format_handle(handle) + about, cpu, wall)

        events.Handle._run = timed_run  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        events.Handle._run = self._original  # type: ignore[method-assign]
        gc.callbacks.remove(self._on_gc)


SLOW_STEP_FORMAT = "slow loop step: %s used %.0f ms of CPU in %.0f ms"


def log_slow_steps(threshold_ms: int) -> StepTimer:
    """The server's watch: a step over ``threshold_ms`` of CPU, or over 40× that of wall time, is logged."""
    def report(owner: str, cpu: float, wall: float) -> None:
        log.warning(SLOW_STEP_FORMAT, owner, cpu * 1000, wall * 1000)
    timer = StepTimer(cpu_threshold=threshold_ms / 1000, wall_threshold=40 * threshold_ms / 1000, report=report)
    timer.install()
    return timer
