"""The report of ``bench.chat``: what it prints after the runs."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bench.lib import report
from bench.lib.wrk import Result

if TYPE_CHECKING:
    from bench.chat import ChatBench

PROG = "bench.chat"


def print_report(bench: ChatBench, argv: list[str]) -> int:
    """The preamble, the sockets, the memory, the messages, the CPU and the checks; 1 if a check failed."""
    a = bench.args
    report.preamble(PROG, argv, [bench.code], [
        f"Stack: supervisord + {a.procs} server.py + nginx (scripts/start.sh of a private copy); the server "
        f"processes' Max open files: {bench.server_limit}; {bench.limits}",
        f"Load: {a.workers} bench.chat_load processes (Tornado websocket_connect + keep-alive HTTP/1.1, "
        f"uvloop), {a.pairs * 2 * a.devices} sockets ({a.pairs} pairs × 2 users × {a.devices} devices) "
        + ("through nginx" if a.via_nginx else "straight to the processes' ports")
        + f", {a.senders // a.workers * a.workers} closed-loop senders for {a.duration} s after {a.warmup} s of "
        "warm-up; message rate limit raised for the run; the ceiling gets the same load on one process",
        f"Fixtures: {bench.fixtures_summary}"])
    rows = []
    for t, rnd, r in bench.runs:
        refused = ", ".join(f"{k} {v}" for k, v in r["refused"].items()) or "0"
        server = ""
        if t.swiper:
            server = " + ".join("?" if n is None else f"{n:.0f}" for n in r["open"].get("held", []))
        rows.append([bench.label(t, rnd), r["asked"], r["held"], refused, r["closed_early"], server or "—",
                     f"{r['connect_s']:.1f} s"])
    print(report.table(["target", "sockets asked", "held", "refused", "closed during the run",
                        "open per process (/metrics)", "time to connect"], rows, "lrrlrrr"))
    print()
    phases = list(bench.runs[0][2]["rss"])
    rows = []
    for t, rnd, r in bench.runs:
        for n, ((label, pid), port) in enumerate(zip(t.pids.items(), t.ports, strict=True)):
            if t.placement_known:
                on = r["held_per_port"].get(str(port), 0)
            else:  # nginx chose: the process's own count
                on = int(r["open"]["held"][n] or 0)
            rss = r["rss"]
            idle, with_ = rss["idle"][label], rss["with sockets"][label]
            per = f"{1024 * (with_ - idle) / on:.1f} KB" if on and idle and with_ else "—"
            rows.append([label + (f", round {rnd}" if t.swiper and a.rounds > 1 else ""), pid, on,
                         *[fmt_mb(rss[ph][label]) for ph in phases], per])
    print(report.table(["process", "pid", "sockets", *phases, "per socket (with − idle)"], rows,
                       "lrr" + "r" * len(phases) + "r"))
    print()
    rows = []
    ceiling = [r for t, _, r in bench.runs if not t.swiper]
    ceiling_rate = ceiling[0]["measured"] / ceiling[0]["seconds"] if ceiling else None
    for t, rnd, r in bench.runs:
        rate = r["measured"] / r["seconds"]
        cross, same, answer = r["cross"], r["same"], r["answer"]
        if not t.swiper:
            other = "— (one process)"
        else:
            other = ms_pair(cross) if t.placement_known else "— (unknown)"
        rows.append([bench.label(t, rnd), f"{rate:.1f}", f"{r['delivered'] / r['seconds']:.1f}",
                     ms_pair(answer), other, ms_pair(same) if t.placement_known else f"{ms_pair(same)} (all)",
                     sum(r["send_errors"].values()), f"{rate / ceiling_rate:.2f}" if ceiling_rate else "—"])
    print(report.table(["target", "messages/s (acknowledged)", "deliveries/s", "send answer p50 / p99",
                        "send → delivery, other process p50 / p99", "same process p50 / p99", "failed sends",
                        "ratio to ceiling"], rows, "lrrrrrrr"))
    print()
    for t, rnd, r in bench.runs:
        acked = r["acked"] or 1  # the CPU meter spans the warm-up too
        print(f"CPU during the sending ({bench.label(t, rnd)}): " + ", ".join(
            f"{name} {sec:.1f} s ({1e6 * sec / acked:.0f} µs/message)" for name, sec in r["cpu"].items() if sec)
            + (f"; everything else on the machine (other sessions) {100 * r['other_cpu']:.0f}%"
               " of it" if r["other_cpu"] is not None else ""))
    stderr = bench.stack.stderr_lines()
    print(f"server.py stderr during the run: {len(stderr)} lines" + (": " + stderr[-1][:200] if stderr else ""))
    failed = False
    for ok, text in bench.checks:
        print(("Exactly-once check: OK " if ok else "Exactly-once check: FAILED ") + text.split(" ", 2)[2])
        failed |= not ok
    return 1 if failed else 0


def fmt_mb(mb: float | None) -> str:
    return "gone" if mb is None else f"{mb:.1f} MB"


def ms_pair(result: Result | None) -> str:
    if result is None:
        return "—"
    return f"{report.fmt_ms(result.p50)} / {report.fmt_ms(result.p99)}"
