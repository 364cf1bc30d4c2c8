"""What a benchmark prints: its command, the code and the machine, then markdown tables of its figures.

Every benchmark prints through ``preamble`` (so each table comes with the command that reproduces it and the
commit it measured) and ``table``; a before/after session prints ``compare_tables``.
"""
from __future__ import annotations

import shlex
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.lib.system import ROOT, machine, utc_now
from bench.lib.wrk import Result


def fmt_ms(ms: float) -> str:
    """Latency as wrk writes it: milliseconds, or seconds from one second up."""
    return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{ms:.2f}ms"


def fmt_change(before: float, after: float) -> str:
    """The change from ``before`` to ``after``: absolute and relative."""
    delta = after - before
    if before == 0:
        return f"{delta:+.2f}"
    return f"{delta:+.2f} ({100 * delta / before:+.1f}%)"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str) -> str:
    """A markdown table; ``align`` has one letter per column: l(eft) or r(ight)."""
    if len(align) != len(header) or any(len(row) != len(header) for row in rows):
        raise ValueError("every row needs one cell per column, and align one letter per column")
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line(module: str, argv: Sequence[str]) -> str:
    """The exact command that reproduces a run, from the repository root (with the interpreter that ran it)."""
    python = Path(sys.executable)
    if python.parent == ROOT / ".venv" / "bin" or python.resolve() == (ROOT / ".venv/bin/python").resolve():
        python = Path(".venv/bin/python")
    return shlex.join([str(python), "-m", module, *argv])


def preamble(module: str, argv: Sequence[str], code: Sequence[str], details: Sequence[str] = ()) -> None:
    """Machine, date, the code measured (one line per tree), the command, then what the run consisted of."""
    print(f"Machine: {machine()}")
    print(f"Date: {utc_now()}")
    for line in code:
        print(f"Code: {line}")
    print(f"Command: {command_line(module, argv)}")
    for line in details:
        print(line)
    print()
    sys.stdout.flush()


@dataclass
class Measurement:
    """One measured row: its figures and the ceiling measured next to it (same stack, same round)."""
    result: Result
    ceiling_rps: float

    @property
    def ratio(self) -> float:
        return self.result.rps / self.ceiling_rps if self.ceiling_rps else 0.0


def figures(m: Measurement) -> list[str]:
    r = m.result
    return [f"{r.rps:.2f}", fmt_ms(r.p50), fmt_ms(r.p99), r.errors, f"{m.ratio:.2f}"]


def results_table(rows: Sequence[tuple[str, int | None, Measurement]]) -> str:
    """path | [round |] req/s | p50 | p99 | errors | ratio to ceiling; the round column only when given."""
    rounds = any(r is not None for _, r, _ in rows)
    header = ["path", *(["round"] if rounds else []), "req/s", "p50", "p99", "errors", "ratio to ceiling"]
    body = [[label, *([str(rnd)] if rounds else []), *figures(m)] for label, rnd, m in rows]
    return table(header, body, "l" + ("r" if rounds else "") + "rrrlr")


def compare_tables(paths: Sequence[tuple[str, str]], revisions: Sequence[str], repeat: int,
                   get: Callable[[str, str, int], Measurement], ceiling: str = "ceiling") -> str:
    """Before/after: per path and round both revisions' figures (each ratio against the ceiling of its own stack
    in the same round) and the change in ratio; with several rounds, then the medians of the ratios.
    ``paths``: (key, label), the ceiling's key among them; ``revisions``: (before, after);
    ``get(key, revision, round)``."""
    before, after = revisions
    header = ["path", "round"]
    for rev in revisions:
        header += [f"{rev}: req/s", "p50", "p99", "errors", "ratio"]
    header.append("change in ratio")
    rows = []
    for key, label in paths:
        for rnd in range(1, repeat + 1):
            a, b = get(key, before, rnd), get(key, after, rnd)
            change = "—" if key == ceiling else fmt_change(a.ratio, b.ratio)
            rows.append([label, str(rnd), *figures(a), *figures(b), change])
    out = table(header, rows, "lr" + "rrrlr" * 2 + "r")
    if repeat > 1:
        summary = []
        for key, label in paths:
            if key == ceiling:
                continue
            ra = [get(key, before, rnd).ratio for rnd in range(1, repeat + 1)]
            rb = [get(key, after, rnd).ratio for rnd in range(1, repeat + 1)]
            ma, mb = statistics.median(ra), statistics.median(rb)
            summary.append([label, _ratios(ra, ma), _ratios(rb, mb), fmt_change(ma, mb)])
        out += "\n\nMedian over the rounds:\n\n" + table(
            ["path", f"{before}: ratio", f"{after}: ratio", "change in ratio"], summary, "lrrr")
    cpu_rows = []
    for key, label in paths:
        costs = [(get(key, before, rnd).result.cpu_us_per_request, get(key, after, rnd).result.cpu_us_per_request)
                 for rnd in range(1, repeat + 1)]
        if any(a is None or b is None for a, b in costs):
            continue
        ma, mb = statistics.median(a for a, _ in costs), statistics.median(b for _, b in costs)
        cpu_rows.append([label, ", ".join(f"{a:.0f}" for a, _ in costs), ", ".join(f"{b:.0f}" for _, b in costs),
                         fmt_change(ma, mb)])
    if cpu_rows:
        out += ("\n\nCPU of the servers under test per answer, µs (each round; the change is of the medians; the "
                "load generator, nginx and the databases not included):\n\n" + table(
                    ["path", f"{before}", f"{after}", "change"], cpu_rows, "lrrr"))
    return out


def _ratios(values: Sequence[float], median: float) -> str:
    return f"{median:.3f} ({', '.join(f'{v:.2f}' for v in values)})"
