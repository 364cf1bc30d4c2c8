"""The report of ``bench.full``: what it prints after the runs."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from bench.lib import report
from bench.lib.report import Measurement

if TYPE_CHECKING:
    from bench.full import FullBench


def labels(args: argparse.Namespace) -> dict[str, str]:
    return {"ceiling": f"ceiling: bare Tornado `GET /` ({args.procs} procs, same nginx)",
            "profile": "`GET /api/v1/profile`",
            "feed": f"`GET /api/v1/recommendations?limit=10` (viewer with {args.viewer_swipes} swipes)",
            "swipes": "`POST /api/v1/swipes` (new pair each)",
            "login": "login: `POST /api/v1/sms-codes` + `POST /api/v1/sessions` (both kinds; new phone each)"}


def print_report(bench: FullBench, results: dict[tuple[str, str, int], Measurement], argv: list[str]) -> int:
    """Every measured wrk output, then the preamble, the table, the memory and the checks; 1 if a check failed."""
    a = bench.args
    for (row, label, rnd), m in results.items():
        print(f"--- wrk: {row} ({label}, round {rnd}) ---")
        print(m.result.text.rstrip())
    print()
    stacks = [f"Stack{' ' + s.label if a.compare else ''}: supervisord + {a.procs} server.py "
              f"(127.0.0.1:{s.layout.base + 1}..{s.layout.base + a.procs}) behind nginx 127.0.0.1:"
              f"{s.layout.http_port}; ceiling: {a.procs} bench/bare.py ({s.layout.bare_ports[0]}.."
              f"{s.layout.bare_ports[-1]}) behind the same nginx, 127.0.0.1:{s.layout.bare_http_port}"
              for s in bench.stacks]
    report.preamble("bench.full", argv, bench.code_lines, [
        *stacks,
        f"wrk -t {a.threads} -c {a.connections} -d {a.duration}s --latency --timeout 10s, each after a "
        f"{a.warmup} s warm-up; SWIPER_LOG_LEVEL={bench.settings['SWIPER_LOG_LEVEL']}, rate limits off; event "
        f"loop: {bench.settings['SWIPER_EVENT_LOOP']} (server.py and the ceiling alike)",
        "SMS: SWIPER_SMS_BACKEND=aliyun (the real SDK) to tests/stubs/aliyun_sms.py "
        f"({bench.settings['SWIPER_ALIYUN_SMS_ENDPOINT']}, http, signatures verified); SMS limits raised",
        f"Fixtures: {bench.world.summary}",
        *([f"Rounds: {a.repeat}, each {' then '.join(s.label for s in bench.stacks)}; every ratio is to the "
           "ceiling of the same stack in the same round"] if a.compare else [])])
    names = labels(a)
    paths = [(row, names[row]) for row in ("ceiling", *a.rows)]
    if a.compare:
        print(report.compare_tables(paths, [s.label for s in bench.stacks], a.repeat,
                                    lambda row, label, rnd: results[row, label, rnd]))
    else:
        label = bench.stacks[0].label
        print(report.results_table([(names[row], rnd if a.repeat > 1 else None, results[row, label, rnd])
                                    for row, _ in paths for rnd in range(1, a.repeat + 1)]))
    print(f"\nwrk commands ({bench.stacks[0].label + ', the other stack on its own ports; ' if a.compare else ''}"
          "tokens as $TOKEN, $WORK the session's directory):")
    for row, _ in paths:
        print(f"  {row}: {bench.commands[row]}")
    print("\nResident memory (VmRSS), idle = after start-up before any load, after = after all the runs:\n")
    rss_rows = []
    for stack in bench.stacks:
        prefix = f"{stack.label}: " if a.compare else ""
        names_by_pid = {pid: f"server.py swiper_{n:02d}" for n, pid in enumerate(stack.server_pids, 1)}
        names_by_pid.update({p.pid: f"bench/bare.py {n}" for n, p in enumerate(stack.bare, 1)})
        for pid, name in names_by_pid.items():
            rss_rows.append([prefix + name, pid, mb(stack.rss_idle.get(pid)), mb(stack.rss_after.get(pid))])
    print(report.table(["process", "pid", "idle", "after"], rss_rows, "lrrr"))
    print()
    for ok, line in bench.checks:
        print(line.replace(" check (", " check: OK (" if ok else " check: FAILED (", 1))
    for stack in bench.stacks:
        lines = stack.stderr_lines()
        print(f"server.py stderr during the run ({stack.label}): {len(lines)} lines")
        for line in lines[-10:]:
            print("  " + line)
    sys.stdout.flush()
    failed = [line.split(":")[0] for ok, line in bench.checks if not ok]
    if failed:
        bench.session.say("failed: " + "; ".join(failed))
        return 1
    return 0


def mb(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} MB"
