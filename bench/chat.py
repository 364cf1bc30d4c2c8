"""Chat over WebSocket on the whole stack against a bare Tornado relay (issue 12).

    .venv/bin/python -m bench.chat [--sockets N] [--devices D] [--workers W] [--senders S] [--duration S] ...

Like ``bench.full``: a private copy of this tree brought up by its own ``scripts/start.sh`` (supervisord + N
``server.py`` + nginx), the bench database and Redis db. ``bench.chat_fixtures`` makes ``N / (2 D)`` matched pairs
with a token each. Load-client processes (``bench.chat_load``, ``--workers`` of them, each a whole number of
pairs) open ``D`` sockets per user (``GET /api/v1/events``, Bearer header), straight to the processes' ports so
that each socket's process is known: user u's device d on process (u + d) mod N, so a pair's users and a user's
devices sit on different processes. Then ``--senders`` closed-loop senders post messages (``POST
/api/v1/matches/{id}/messages``) for ``--duration`` seconds, each to the process of the device it sends from, and
every socket reads. Measured:

- sockets held, refused (by reason), closed early, and what each process's ``/metrics`` says is open;
- RSS (``/proc/<pid>/status``) of every server process idle, with the sockets, after the messages, and after the
  close (then again a few seconds later), and the memory per socket;
- messages acknowledged per second and deliveries per second; the REST answer's p50/p99; send → delivery p50/p99
  for deliveries to a socket on another process than the one that took the send (the pub/sub hop) and on the same
  one; CPU seconds of the servers, Redis and MariaDB;
- exactly once: every acknowledged message reaches every socket of both users once (the recipient's devices and
  the sender's, the sending device's own socket included: a REST call belongs to no socket), nothing twice,
  nothing unacknowledged or unknown; each conversation's seqs are 1..n.

The same load, sockets and senders then run against the ceiling, ``bench.bare_chat`` (one Tornado process
relaying between its sockets, no database, no Redis, no auth), in the same session. Prints the tables and the
checks; exits 1 if an exactly-once check failed. Everything started is stopped on exit, failure and Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.chat_report import print_report
from bench.lib import data
from bench.lib.session import Proc, Session, main_guard
from bench.lib.stack import PYTHON, Layout, Stack, copy_tree, fetch, stop_stacks, wait_for_200
from bench.lib.system import (BenchError, CpuMeter, describe_tree, find_port_block, listener_pid, require,
                              rss_mb)
from bench.lib.wrk import Result

PROG = "bench.chat"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chat", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="The database and Redis: bench/lib/data.py (SWIPER_BENCH_MYSQL_URL, ...). "
                                       "Figures in BENCH.md.")

    def option(name: str, default: int, help: str) -> None:
        p.add_argument(name, type=int, default=default, metavar="N", help=f"{help} (default {default})")

    option("--sockets", 2000, "sockets to open (rounded up to whole pairs: 2 × --devices per pair)")
    option("--devices", 2, "sockets per user")
    option("--workers", 2, "load-client processes")
    option("--senders", 64, "concurrent senders, over all workers (closed loop)")
    option("--duration", 15, "seconds of sending")
    option("--warmup", 3, "seconds of sending before the measured stretch (counted for exactly-once only)")
    option("--drain", 10, "seconds at most to wait for deliveries still owed after the last send")
    option("--settle", 3, "seconds between a phase and its RSS reading")
    option("--connect-parallel", 50, "handshakes in flight per worker")
    option("--procs", 2, "server processes")
    option("--rounds", 1, "rounds on the stack (connect, send, close; the ceiling runs once): whether the memory "
           "kept after a close is reused or grows")
    p.add_argument("--base-port", type=int, metavar="P", help="first port of the block used (default: the first "
                   "free block from 19000 up)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the bare relay")
    p.add_argument("--via-nginx", action="store_true", help="sockets and sends through nginx (two nginx connections "
                   "per socket), which picks the process: the latency is then not split by process")
    p.add_argument("--keep-logs", action="store_true", help="keep the work directory under var/bench/")
    args = p.parse_args(argv)
    checks = [(1 <= args.devices <= 8, "--devices 1..8"), (1 <= args.workers <= 32, "--workers 1..32"),
              (2 * args.devices <= args.sockets <= 100_000, "--sockets 2×devices..100000"),
              (args.workers <= args.senders <= 10_000, "--senders --workers..10000"),
              (1 <= args.duration <= 600, "--duration 1..600"), (0 <= args.warmup <= 60, "--warmup 0..60"),
              (1 <= args.rounds <= 20, "--rounds 1..20"), (1 <= args.procs <= 16, "--procs 1..16"),
              (0 <= args.drain <= 120 and 0 <= args.settle <= 60, "--drain 0..120, --settle 0..60"),
              (1 <= args.connect_parallel <= 1000, "--connect-parallel 1..1000")]
    for ok, message in checks:
        if not ok:
            p.error(message)
    args.pairs = -(-args.sockets // (2 * args.devices))
    if args.pairs < args.workers:
        p.error("--workers: at most one per pair")
    return args


def fd_limits(args: argparse.Namespace) -> str:
    """Raise this process's soft limit to the hard one (the workers and the relay inherit it) and check that the
    busiest process fits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sockets = args.pairs * 2 * args.devices
    per_worker = -(-sockets // args.workers) + args.senders * args.procs + 64
    ceiling = 0 if args.no_ceiling else sockets + args.senders + 64
    need = max(per_worker, ceiling)
    if need > hard:
        raise BenchError(f"{need} descriptors needed in one process (a load worker holds {per_worker}, the relay "
                         f"{ceiling}) but ulimit -Hn is {hard}: more --workers, fewer --sockets, or a higher limit")
    return f"ulimit -n {soft} (hard {hard}) raised to {hard} for the load workers and the relay"


def max_open_files(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return line.split()[3]
    except OSError:
        pass
    return "?"


def sockets_open(port: int) -> float | None:
    """``swiper_sockets_open`` from a process's /metrics (straight to its port; nginx does not expose it)."""
    try:
        status, body = fetch(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return None
    match = re.search(rb"^swiper_sockets_open(?:\{[^}]*\})? ([0-9.e+]+)$", body, re.M)
    return float(match.group(1)) if status == 200 and match else None


class Target:
    """What the load runs against: the stack's processes or the relay."""

    def __init__(self, name: str, label: str, ports: list[int], pids: dict[str, int], swiper: bool,
                 connect_ports: list[int] | None = None) -> None:
        """``ports``: the processes' own (their /metrics); ``connect_ports``: where the load goes (nginx's, with
        --via-nginx: then which process a socket or a send lands on is nginx's choice, not known here)."""
        self.name, self.label, self.ports, self.pids, self.swiper = name, label, ports, pids, swiper
        self.connect_ports = connect_ports or ports
        self.placement_known = self.connect_ports == ports
        self.rss: dict[str, dict[str, float | None]] = {}
        self.metrics_open: dict[str, list[float | None]] = {}

    def read_rss(self, phase: str) -> None:
        self.rss[phase] = {label: rss_mb(pid) for label, pid in self.pids.items()}

    def read_open(self, phase: str) -> list[float | None]:
        self.metrics_open[phase] = [sockets_open(p) for p in self.ports] if self.swiper else []
        return self.metrics_open[phase]


class ChatBench:
    def __init__(self, args: argparse.Namespace, session: Session, db: data.BenchDb) -> None:
        self.args, self.session, self.db = args, session, db
        self.stacks: list[Stack] = []
        self.runs: list[tuple[Target, int, dict[str, Any]]] = []  # (target, round, figures), in run order
        self.checks: list[tuple[bool, str]] = []

    def setup(self) -> None:
        a, s = self.args, self.session
        require("rsync", "nginx", self.db.admin[0])
        self.limits = fd_limits(a)
        self.code = describe_tree()
        layout_size = Layout(0, a.procs).size
        base = find_port_block(layout_size + 1, a.base_port)
        self.relay_port = base + layout_size + 1
        self.settings = data.settings(self.db, token_ttl=3 * 3600 + 2 * a.duration,
                                      SWIPER_MESSAGE_RATE_LIMIT="100000000")
        self.db.ensure()
        data.migrate(s, [Path(__file__).resolve().parents[1]], self.settings)
        out = s.work / "chat-fixtures"
        s.say(f"fixtures: {a.pairs} matched pairs ...")
        s.run("chat-fixtures", [PYTHON, "-m", "bench.chat_fixtures", "--out", str(out), "--pairs", str(a.pairs)],
              env=data.step_env(self.settings), timeout=1800)
        self.fixtures_summary = (out / "summary.txt").read_text().strip()
        self.pairs = [line.split() + [k] for k, line in enumerate((out / "pairs.tsv").read_text().splitlines())]
        if len(self.pairs) != a.pairs:
            raise BenchError(f"the fixtures wrote {len(self.pairs)} pairs, not {a.pairs}")
        s.defer("stop the stack", lambda: stop_stacks(self.stacks))
        stack = Stack(s, "this", f"this {self.code.split(' ')[0]}", copy_tree(s, "this"), Layout(base, a.procs),
                      self.settings)
        self.stacks.append(stack)
        stack.start()
        self.stack = stack
        ports = [base + n for n in range(1, a.procs + 1)]
        label = f"Swiper ({a.procs} procs" + (", via nginx)" if a.via_nginx else ")")
        self.swiper = Target("swiper", label, ports,
                             {f"server.py swiper_{n:02d}": pid for n, pid in enumerate(stack.server_pids, 1)},
                             swiper=True, connect_ports=[stack.layout.http_port] if a.via_nginx else None)
        self.server_limit = max_open_files(stack.server_pids[0])
        if not a.no_ceiling:
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
                   "SWIPER_EVENT_LOOP": self.settings["SWIPER_EVENT_LOOP"]}
            relay = s.spawn("bare-chat", [PYTHON, "-m", "bench.bare_chat", "--port", str(self.relay_port)], env=env)
            wait_for_200(f"http://127.0.0.1:{self.relay_port}/", relay, "bench/bare_chat.py")
            self.ceiling = Target("ceiling", "ceiling: bare Tornado relay (1 proc)", [self.relay_port],
                                  {"bench/bare_chat.py": relay.pid}, swiper=False)

    # --- one load run ------------------------------------------------------------------------------------------
    def wait_states(self, state: Path, name: str, procs: list[Proc], timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        paths = [state / f"worker-{w}.{name}.json" for w in range(len(procs))]
        while not all(p.exists() for p in paths):
            for proc, path in zip(procs, paths, strict=True):
                if not proc.running() and not path.exists():  # one that wrote its last state may have exited
                    self.session.tail(proc.err, 30)
                    raise BenchError(f"load worker {proc.name} exited ({proc.popen.returncode}) before '{name}'")
            if time.monotonic() > deadline:
                raise BenchError(f"the load workers did not reach '{name}' within {timeout:.0f} s")
            time.sleep(0.1)
        return [json.loads(p.read_text()) for p in paths]

    def run(self, target: Target, rnd: int = 1) -> None:
        a, s = self.args, self.session
        state = s.work / f"state-{target.name}-{rnd}"
        state.mkdir()
        target.rss, target.metrics_open = {}, {}
        plan = {"state": str(state), "host": "127.0.0.1", "ports": target.connect_ports,
                "target": "swiper" if target.swiper else "bare", "devices": a.devices,
                "pairs": [self.pairs[w::a.workers] for w in range(a.workers)], "senders": a.senders // a.workers,
                "duration": a.duration, "warmup": a.warmup, "drain": a.drain, "connect_parallel": a.connect_parallel,
                "connect_timeout": 30, "request_timeout": 10,
                "round": rnd, "fresh": rnd == 1}
        (state / "plan.json").write_text(json.dumps(plan))
        target.read_rss("idle")
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "SWIPER_EVENT_LOOP": self.settings["SWIPER_EVENT_LOOP"]}
        procs = [s.spawn(f"load-{target.name}-{rnd}-{w}", [PYTHON, "-m", "bench.chat_load", "--plan",
                                                    str(state / "plan.json"), "--worker", str(w)], env=env)
                 for w in range(a.workers)]
        label = self.label(target, rnd)
        s.say(f"{label}: opening {a.pairs * 2 * a.devices} sockets from {a.workers} workers ...")
        held = self.wait_states(state, "held", procs, 300)
        time.sleep(a.settle)
        target.read_rss("with sockets")
        target.read_open("held")
        s.say(f"{label}: {sum(h['held'] for h in held)} held; sending for {a.duration} s "
              f"({plan['senders'] * a.workers} senders) ...")
        meter = CpuMeter({**target.pids, "redis": listener_pid(self.db.redis_port),
                          "mariadbd": listener_pid(self.db.mysql_port),
                          **{f"load client {w}": proc.pid for w, proc in enumerate(procs)}})
        started = time.monotonic()
        (state / "go-send").touch()
        sent = self.wait_states(state, "sent", procs, a.duration + a.drain + 120)
        meter.stop(time.monotonic() - started)
        time.sleep(a.settle)
        target.read_rss("after the messages")
        (state / "go-close").touch()
        closed = self.wait_states(state, "closed", procs, 60)
        deadline = time.monotonic() + 20
        while target.swiper and any(n != 0 for n in target.read_open("closed")) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(a.settle)
        target.read_rss("after close")
        time.sleep(max(a.settle, 5))
        target.read_rss(f"after close +{a.settle + max(a.settle, 5)} s")
        for proc in procs:
            try:
                proc.popen.wait(30)
            except Exception:
                raise BenchError(f"load worker {proc.name} did not exit after the close") from None
        res = self.aggregate(label, held, sent, closed, meter)
        res["rss"], res["open"] = target.rss, target.metrics_open
        self.runs.append((target, rnd, res))

    def label(self, target: Target, rnd: int) -> str:
        return target.label + (f", round {rnd}" if target.swiper and self.args.rounds > 1 else "")

    def aggregate(self, label: str, held: list[dict], sent: list[dict], closed: list[dict],
                  meter: CpuMeter) -> dict[str, Any]:
        def total(rows: list[dict], key: str) -> int:
            return sum(r[key] for r in rows)

        def merged(rows: list[dict], key: str) -> dict[str, int]:
            out: dict[str, int] = {}
            for r in rows:
                for k, v in r[key].items():
                    out[k] = out.get(k, 0) + v
            return out

        seconds = max(r["seconds"] for r in sent)
        cross = [x for r in sent for x in r["cross_ms"]]
        same = [x for r in sent for x in r["same_ms"]]
        answers = [x for r in sent for x in r["answer_ms"]]
        res = {
            "asked": total(held, "asked"), "held": total(held, "held"), "refused": merged(held, "refused"),
            "held_per_port": merged(held, "held_per_port"), "connect_s": max(h["seconds"] for h in held),
            "seconds": seconds, "acked": total(sent, "acked"), "measured": total(sent, "measured"),
            "attempted": total(sent, "attempted"),
            "send_errors": merged(sent, "send_errors"), "closed_early": total(sent, "closed_early"),
            "frames_other": merged(sent, "frames_other"), "still_open": total(closed, "still_open"),
            "cpu": meter.used, "other_cpu": meter.other_share,
        }
        for key in ("expected", "once", "missing", "duplicated", "unexpected", "stray", "unacked_delivered",
                    "seq_gaps", "conversations"):
            res[key] = total(sent, key)
        res["delivered"] = len(cross) + len(same)
        res["answer"] = Result.from_samples(answers, seconds) if answers else None
        res["cross"] = Result.from_samples(cross, seconds) if cross else None
        res["same"] = Result.from_samples(same, seconds) if same else None
        ok = (res["acked"] > 0 and res["missing"] == 0 and res["duplicated"] == 0 and res["unexpected"] == 0
              and res["stray"] == 0 and res["seq_gaps"] == 0 and res["once"] == res["expected"])
        self.checks.append((ok, (
            f"Exactly-once check ({label}): {res['acked']} messages acknowledged of {res['attempted']} sent "
            f"({sum(res['send_errors'].values())} failed: {res['send_errors'] or 'none'}); {res['expected']} "
            f"deliveries owed to held sockets, {res['once']} delivered once, {res['missing']} missing, "
            f"{res['duplicated']} duplicated, {res['unexpected']} to a socket not owed, {res['stray']} of an "
            f"unknown client_id, {res['unacked_delivered']} of unacknowledged sends; {res['conversations']} "
            f"conversations, {res['seq_gaps']} whose seqs are not 1..n")))
        return res

    # --- the report --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)

    def body() -> int:
        with Session(PROG, keep_logs=args.keep_logs) as session:
            bench = ChatBench(args, session, data.BenchDb.from_env())
            try:
                bench.setup()
                if not args.no_ceiling:
                    bench.run(bench.ceiling)
                for rnd in range(1, args.rounds + 1):
                    bench.run(bench.swiper, rnd)
            except BaseException:
                for stack in bench.stacks:
                    stack.show_logs()
                raise
            return print_report(bench, argv)

    return main_guard(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
