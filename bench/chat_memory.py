"""Where a server process's memory goes when sockets come and go: ``python -m bench.chat_memory [--sockets N]``.

A bench-only probe (nothing in the app): it runs Swiper's application in ITS OWN process, set up as
``server.py`` sets it up (``make_app``, ``start_listeners``, ``settle_memory``: the frozen start-up objects and the
raised collector thresholds), on the bench database, and drives it with one ``bench.chat_load`` worker for
``--cycles`` rounds of: open the sockets, send for ``--duration`` s, close them. After each phase it reads,
from inside: RSS (``/proc/self/status``), the collector's counts, the live objects of the types that belong to a
socket (``EventsHandler``, ``WebSocketProtocol13``, ``IOStream``, ``Feed``, futures, tasks), and the object count
by type; then, after the close, it runs ``gc.collect()`` and reads them again. So a socket's objects still alive
after a close (a leak) are told apart from garbage waiting for the collector (delayed collection) and from
memory the allocator keeps after the objects are gone (retention); after the first close it also shows what
still refers to a closed socket's objects. ``--break-cycle`` patches, in the probe process only, the handler's
close to drop its ``Feed`` (which refers back to the handler): what the close frees then. Prints one table.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from bench.lib import data
from bench.lib.session import Session, main_guard
from bench.lib.stack import PYTHON
from bench.lib.system import ROOT, find_port_block

PROG = "bench.chat_memory"
WATCH = ("EventsHandler", "WebSocketProtocol13", "IOStream", "Feed", "Future", "Task", "HTTP1Connection",
         "HTTPServerRequest", "TokenClaims")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def census() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects())


def owner(obj: object) -> str:
    """What holds ``obj``: its type, and for a __dict__ or a cell, whose."""
    name = type(obj).__name__
    if isinstance(obj, dict):
        for holder in gc.get_referrers(obj):
            if getattr(holder, "__dict__", None) is obj:
                return f"{type(holder).__name__}.__dict__"
    if name in ("cell", "frame", "coroutine", "method"):
        code = getattr(obj, "cr_code", None)
        return f"{name} ({getattr(obj, '__qualname__', '') or getattr(code, 'co_qualname', '')})"
    return name


def show_referrers() -> None:
    """After the close (before any collection): what still refers to one closed socket's objects."""
    for kind in ("EventsHandler", "Feed", "IOStream", "Task"):
        objs = [o for o in gc.get_objects() if type(o).__name__ == kind]
        if not objs:
            continue
        target = objs[0]
        holders = Counter(owner(r) for r in gc.get_referrers(target) if r is not objs)
        extra = f" ({target.get_coro().__qualname__})" if kind == "Task" else ""
        print(f"  a closed socket's {kind}{extra} is referred to by: "
              + ", ".join(f"{n}× {h}" for h, n in holders.most_common(8)), flush=True)


def show_allocations(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int) -> None:
    """What the open sockets allocated, by the line that allocated it (outside tracemalloc and this probe)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    diff = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "lineno")
    total = sum(d.size_diff for d in diff)
    print(f"  traced growth with the sockets open: {total / 1048576:.1f} MB; the largest {top} lines:")
    for d in diff[:top]:
        frame = d.traceback[0]
        print(f"    {d.size_diff / 1024:9.1f} KiB  {d.count_diff:+7d} blocks  {frame.filename}:{frame.lineno}")


async def probe(args: argparse.Namespace) -> None:
    if args.trace:
        tracemalloc.start(1)
    sys.path.insert(0, str(ROOT))
    import server  # the app as server.py builds it
    from conf import load_settings_or_exit
    from handlers.base import InFlight
    from models import init_db
    from services import keys
    from services.redis_client import build_redis
    from services.sms import build_sms_sender
    from tornado.httpserver import HTTPServer

    if args.break_cycle:  # the experiment: what the close would free if the handler dropped its Feed
        from handlers.chat import EventsHandler
        closing = EventsHandler.on_close

        def on_close(self) -> None:
            closing(self)
            self.__dict__.pop("feed", None)

        EventsHandler.on_close = on_close
    settings = load_settings_or_exit(PROG)
    keys.configure(settings.redis_prefix)
    init_db(settings)
    redis = build_redis(settings)
    app = server.make_app(settings, redis=redis, sms=build_sms_sender(settings), in_flight=InFlight())
    http = HTTPServer(app, max_body_size=server.MAX_UPLOAD_BODY, idle_connection_timeout=75)
    http.listen(args.port, address="127.0.0.1")
    server.start_listeners(app)
    server.settle_memory()
    pairs = [line.split() + [k] for k, line in enumerate(Path(args.pairs).read_text().splitlines())]
    rows: list[tuple[str, float, tuple[int, int, int], dict[str, int], int]] = []
    base = census()

    def reading(phase: str) -> None:
        now = census()
        rows.append((phase, rss_mb(), gc.get_count(), {t: now.get(t, 0) for t in WATCH}, sum(now.values())))
        growth = [(t, n - base.get(t, 0)) for t, n in now.items() if n - base.get(t, 0) > 0]
        top = sorted(growth, key=lambda x: -x[1])[:8]
        print(f"  {phase}: most grown types since start-up: " + ", ".join(f"{t} +{n}" for t, n in top), flush=True)

    async def wait(path: Path, proc) -> None:
        while not path.exists():
            if proc.returncode is not None:
                raise SystemExit(f"{PROG}: the load worker exited ({proc.returncode}) before {path.name}")
            await asyncio.sleep(0.1)

    reading("idle")
    idle_snapshot = tracemalloc.take_snapshot() if args.trace else None
    for cycle in range(1, args.cycles + 1):
        state = Path(args.state) / f"cycle{cycle}"
        state.mkdir(parents=True)
        plan = {"state": str(state), "host": "127.0.0.1", "ports": [args.port], "target": "swiper",
                "devices": args.devices, "pairs": [pairs], "senders": args.senders, "duration": args.duration,
                "warmup": 0, "drain": 5, "connect_parallel": 50, "connect_timeout": 30, "request_timeout": 10,
                "round": cycle, "fresh": cycle == 1}
        (state / "plan.json").write_text(json.dumps(plan))
        proc = await asyncio.create_subprocess_exec(PYTHON, "-m", "bench.chat_load", "--plan",
                                                    str(state / "plan.json"), "--worker", "0", cwd=ROOT)
        await wait(state / "worker-0.held.json", proc)
        await asyncio.sleep(1)
        reading(f"cycle {cycle}: sockets open")
        if idle_snapshot is not None and cycle == 1:
            show_allocations(idle_snapshot, tracemalloc.take_snapshot(), args.trace)
        (state / "go-send").touch()
        await wait(state / "worker-0.sent.json", proc)
        sent = json.loads((state / "worker-0.sent.json").read_text())
        reading(f"cycle {cycle}: after {sent['acked']} messages")
        (state / "go-close").touch()
        await wait(state / "worker-0.closed.json", proc)
        await proc.wait()
        await asyncio.sleep(2)
        reading(f"cycle {cycle}: closed")
        if cycle == 1:
            show_referrers()
        start = time.monotonic()
        found = gc.collect()
        reading(f"cycle {cycle}: closed, after gc.collect() ({found} unreachable, {time.monotonic() - start:.2f} s)")
    header = ["phase", "RSS", "gc counts", *WATCH, "objects"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for phase, rss, counts, watched, total in rows:
        print(f"| {phase} | {rss:.1f} MB | {counts} | " + " | ".join(str(watched[t]) for t in WATCH)
              + f" | {total} |")
    print(f"\n(gc thresholds {gc.get_threshold()}, frozen at start-up: {gc.get_freeze_count()} objects)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=1000, help="sockets per cycle (default 1000)")
    p.add_argument("--devices", type=int, default=2, help="sockets per user (default 2)")
    p.add_argument("--cycles", type=int, default=3, help="connect/send/close cycles (default 3)")
    p.add_argument("--duration", type=int, default=5, help="seconds of sending per cycle (default 5)")
    p.add_argument("--senders", type=int, default=16, help="closed-loop senders (default 16)")
    p.add_argument("--break-cycle", action="store_true", help="an experiment in the probe process only: "
                   "EventsHandler.on_close also drops the handler's Feed (the Feed refers back to the handler)")
    p.add_argument("--trace", type=int, default=0, metavar="N", help="tracemalloc in the probe process: the N "
                   "lines that allocated most for the open sockets of the first cycle (slows the probe)")
    p.add_argument("--keep-logs", action="store_true")
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)  # the server side, in its own process
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--pairs", help=argparse.SUPPRESS)
    p.add_argument("--state", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe:
        import uvloop
        uvloop.run(probe(args))
        return 0

    def body() -> int:
        with Session(PROG, keep_logs=args.keep_logs) as session:
            db = data.BenchDb.from_env()
            values = data.settings(db, token_ttl=3 * 3600, SWIPER_MESSAGE_RATE_LIMIT="100000000")
            db.ensure()
            data.migrate(session, [ROOT], values)
            pairs = -(-args.sockets // (2 * args.devices))
            session.run("chat-fixtures", [PYTHON, "-m", "bench.chat_fixtures", "--out", str(session.work / "fx"),
                                          "--pairs", str(pairs)], env=data.step_env(values), timeout=600)
            port = find_port_block(1) + 1
            session.say(f"probing {pairs * 2 * args.devices} sockets × {args.cycles} cycles on one in-process app "
                        f"(port {port}) ...")
            out = session.run("probe", [PYTHON, "-m", PROG, "--probe", "--port", str(port), "--pairs",
                                        str(session.work / "fx" / "pairs.tsv"), "--state", str(session.work / "st"),
                                        "--cycles", str(args.cycles), "--devices", str(args.devices),
                                        "--duration", str(args.duration), "--senders", str(args.senders),
                                        *(["--break-cycle"] if args.break_cycle else []),
                                        "--trace", str(args.trace)],
                              env={**data.step_env(values), "PYTHONPATH": str(ROOT)},
                              timeout=120 + args.cycles * (args.duration + 120))
            print(f"Command: .venv/bin/python -m {PROG} {' '.join(argv)}\n")
            print(out)
            return 0

    return main_guard(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
