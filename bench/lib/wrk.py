"""Load runs with wrk, and what they measured.

``Result`` is what every load run yields, whatever makes the load: ``parse`` reads it from ``wrk --latency``
output (including the ``NAME-lua: key=N ...`` lines our Lua scripts print in ``done()``); a load client in
Python (a WebSocket benchmark, say) fills the same fields, so the table and the comparison take either.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

from bench.lib.session import Session
from bench.lib.system import ROOT, BenchError, CpuMeter, alive

LUA_DIR = ROOT / "bench" / "lua"
_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER_UNIT = r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)"


@dataclass
class Result:
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[int, float]  # percentile -> milliseconds (50, 75, 90, 99 from wrk --latency)
    socket_errors: dict[str, int] = field(default_factory=dict)  # connect/read/write/timeout, only those > 0
    non2xx: int = 0
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # "swipes-lua" -> {"ok": N, ...}
    command: str = ""
    text: str = ""
    cpu: Any = None  # what a benchmark measured of the processes' CPU during the run (system.CpuMeter)

    @property
    def p50(self) -> float:
        return self.latency_ms[50]

    @property
    def p99(self) -> float:
        return self.latency_ms[99]

    @property
    def cpu_us_per_request(self) -> float | None:
        """CPU of the watched processes (the servers under test) over the run, per answer: steadier than req/s
        on a shared machine, where other work takes turns on the same cores."""
        used = getattr(self.cpu, "used", None)
        if not used or not self.requests or any(v < 0 for v in used.values()):
            return None
        return 1e6 * sum(used.values()) / self.requests

    @property
    def errors(self) -> str:
        """Socket errors and non-2xx answers, as the table shows them ("0" when there were none)."""
        parts = [f"{kind} {n}" for kind, n in self.socket_errors.items()]
        if self.non2xx:
            parts.append(f"non-2xx {self.non2xx}")
        return ", ".join(parts) or "0"

    @classmethod
    def from_samples(cls, latencies_ms: Sequence[float], seconds: float, *, socket_errors: dict[str, int] | None = None,
                     non2xx: int = 0, command: str = "") -> Result:
        """The figures of a load client of our own (every answer's latency), in wrk's terms: percentiles by the
        nearest-rank method, req/s of the answers received."""
        ordered = sorted(latencies_ms)
        if not ordered or seconds <= 0:
            raise BenchError("no answers to make figures of")
        latency = {p: ordered[max(0, -(-p * len(ordered) // 100) - 1)] for p in (50, 75, 90, 99)}
        return cls(requests=len(ordered), seconds=seconds, rps=len(ordered) / seconds, latency_ms=latency,
                   socket_errors={k: v for k, v in (socket_errors or {}).items() if v}, non2xx=non2xx,
                   command=command)

    def counter(self, script: str, name: str) -> int:
        try:
            return self.counters[script][name]
        except KeyError:
            raise BenchError(f"no {name}= in the {script}: line of wrk's output:\n{self.text}") from None


def to_ms(number: str, unit: str) -> float:
    return float(number) * _TIME_UNITS[unit]


def parse(text: str) -> Result:
    """The figures of one ``wrk --latency`` output; BenchError if it is not one."""
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    total = re.search(rf"^\s*([0-9]+) requests in {_NUMBER_UNIT}", text, re.M)
    if not rps or not total:
        raise BenchError(f"not a wrk output:\n{text[-2000:]}")
    latency = {int(p): to_ms(n, u) for p, n, u in re.findall(rf"^\s+(50|75|90|99)%\s+{_NUMBER_UNIT}\s*$", text, re.M)}
    if set(latency) != {50, 75, 90, 99}:
        raise BenchError(f"no latency distribution in wrk's output (was --latency given?):\n{text[-2000:]}")
    socket_errors = {}
    errors = re.search(r"^\s*Socket errors: (.*)$", text, re.M)
    if errors:
        for kind, n in re.findall(r"(\w+) ([0-9]+)", errors.group(1)):
            if int(n):
                socket_errors[kind] = int(n)
    non2xx = re.search(r"^\s*Non-2xx or 3xx responses: ([0-9]+)", text, re.M)
    counters = {name: {k: int(v) for k, v in re.findall(r"(\w+)=(-?[0-9]+)", rest)}
                for name, rest in re.findall(r"^([\w-]+-lua): (.*)$", text, re.M)}
    return Result(requests=int(total.group(1)), seconds=float(total.group(2)) * _SECONDS[total.group(3)],
                  rps=float(rps.group(1)), latency_ms=latency, socket_errors=socket_errors,
                  non2xx=int(non2xx.group(1)) if non2xx else 0, counters=counters, text=text)


def run(session: Session, name: str, url: str, *, seconds: int, connections: int, threads: int,
        script: str | None = None, script_args: Sequence[object] = (), headers: Sequence[str] = (),
        watch: Sequence[int] = ()) -> Result:
    """One wrk run (output kept in ``out/wrk-NAME.out``); BenchError if wrk fails or a process in ``watch``
    (the servers under test) died meanwhile."""
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "10s"]
    for header in headers:
        argv += ["-H", header]
    if script:
        argv += ["-s", str(LUA_DIR / script)]
    argv.append(url)
    if script_args:
        argv += ["--", *map(str, script_args)]
    session.say(f"wrk {name}: -t {threads} -c {connections} -d {seconds}s")
    meter = CpuMeter({str(pid): pid for pid in watch})
    try:
        text = session.run(f"wrk-{name}", argv, timeout=seconds + 30)
    except BenchError:
        raise BenchError(f"wrk failed ({name})") from None
    for pid in watch:
        if not alive(pid):
            raise BenchError(f"pid {pid} died during wrk {name}")
    result = parse(text)
    result.cpu = meter.stop(result.seconds or seconds)
    result.command = readable(argv, session.work)
    return result


def readable(argv: list[str], work: Path) -> str:
    """The command as a report prints it: tokens as $TOKEN, the session's files under $WORK (its work directory,
    kept by --keep-logs), the repository's relative to its root."""
    out = []
    for arg in argv:
        arg = re.sub(r"Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", "Bearer $TOKEN", arg)
        path = Path(arg)
        if path.is_absolute() and path.is_relative_to(work):
            arg = "$WORK/" + str(path.relative_to(work))
        elif path.is_absolute() and path.is_relative_to(ROOT):
            arg = str(path.relative_to(ROOT))
        out.append(arg)
    return " ".join(a if a.startswith("$WORK/") else shlex.quote(a) for a in out)
