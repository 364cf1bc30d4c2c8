"""The feed by distance at 100,000 and 1,000,000 users, next to the city feed, on the whole stack (issue 14).

    .venv/bin/python -m bench.distance [--users 100000,1000000] [--duration S] [--connections C] ...

For each size, a data set of its own (database ``<bench database>_users<N>``, by default ``swiper_bench_users<N>``, on the bench server, made once and kept:
the robots of ``services.robots`` spread around eight real cities' centres; ``bench.distance_fixtures``: a
positioned viewer in the centre of 北京 looking for women within ``--radius`` km, who has swiped the 5,000 people
his feed would show first; ``bench.fixtures``: the city-feed viewer, 5,000 swipes too). Then, like ``bench.full``,
a private copy of this tree brought up by its own ``scripts/start.sh`` (supervisord + N ``server.py`` + nginx)
with the bare Tornado ceiling behind the same nginx, and through nginx ``wrk --latency``: the ceiling, the feed by
distance and the city feed (each after a warm-up). Prints one table (size, path, req/s, p50, p99, errors, ratio to
the ceiling measured next to it), the flatness (each path's figure at the largest size over the smallest) and the
SQL figures the fixtures recorded (rows touched per walk and per page). Everything started is stopped on exit.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.lib import data, report, wrk
from bench.lib.report import Measurement
from bench.lib.session import Session, main_guard
from bench.lib.stack import PYTHON, Layout, Stack, copy_tree, stop_stacks
from bench.lib.system import describe_tree, find_port_block, require

PROG = "bench.distance"
PATHS = {"ceiling": "ceiling: bare Tornado `GET /` (same nginx)",
         "distance": "feed by distance (viewer with a position, {swipes:,} swipes, {radius} km)",
         "city": "city feed (viewer without a position, {swipes:,} swipes)"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.distance", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", default="100000,1000000", help="data set sizes (default 100000,1000000; each made "
                   "once and kept: the 1,000,000 set takes about 8 minutes the first time)")
    for name, default, what in (("--duration", 15, "seconds per measured wrk run"),
                                ("--warmup", 3, "seconds of warm-up before each run"),
                                ("--connections", 100, "wrk connections"), ("--threads", 2, "wrk threads"),
                                ("--procs", 2, "server processes (and bare ones)"),
                                ("--radius", 50, "the positioned viewer's max_distance in km"),
                                ("--viewer-swipes", 5000, "swipes of each viewer (the feed steps over them)")):
        p.add_argument(name, type=int, default=default, help=f"{what} (default {default})")
    p.add_argument("--keep-logs", action="store_true", help="keep the work directory under var/bench/")
    args = p.parse_args(argv)
    try:
        args.sizes = sorted({int(n) for n in args.users.split(",") if n.strip()})
    except ValueError:
        p.error("--users takes sizes like 100000,1000000")
    if not args.sizes or args.sizes[0] < 10 * args.viewer_swipes:
        p.error("--users: each size must be at least 10 × --viewer-swipes (their feeds need a page after them)")
    if not (1 <= args.threads <= args.connections and 1 <= args.duration <= 600 and 1 <= args.procs <= 16):
        p.error("--threads 1..connections, --duration 1..600, --procs 1..16")
    return args


def size_database(base: str, size: int) -> str:
    """The kept database of one size, named after the bench database (``swiper_bench_users100000`` by default), so
    a bench pointed at a scratch database keeps its data sets beside it, where whoever made it can drop them."""
    return f"{base}_users{size}"


def make_data_set(session: Session, size: int, args: argparse.Namespace, values: dict[str, str]) -> dict[str, str]:
    """The size's robots and both viewers; returns their tokens and the SQL figures."""
    out = session.work / f"users{size}"
    env = data.step_env(values)
    session.say(f"data set of {size} users (robots are made once and kept) ...")
    session.run(f"distance-fixtures-{size}", [PYTHON, "-m", "bench.distance_fixtures", "--out", str(out / "distance"),
                                              "--robots", str(size), "--radius", str(args.radius),
                                              "--swipes", str(args.viewer_swipes)], env=env,
                timeout=3600)
    session.run(f"city-fixtures-{size}", [PYTHON, "-m", "bench.fixtures", "--out", str(out / "city"), "--robots",
                                          str(size), "--viewer-swipes", str(args.viewer_swipes), "--swipers", "1"],
                env=env, timeout=3600)
    return {"distance": (out / "distance" / "viewer.token").read_text().strip(),
            "city": (out / "city" / "viewer.token").read_text().strip(),
            "sql": (out / "distance" / "sql.txt").read_text().strip(),
            "summary": (out / "distance" / "summary.txt").read_text().strip()}


def measure(session: Session, stack: Stack, args: argparse.Namespace, name: str, url: str,
            token: str | None = None) -> wrk.Result:
    headers = [f"Authorization: Bearer {token}"] if token else []
    kw = dict(connections=args.connections, threads=args.threads, watch=stack.watched_pids, headers=headers)
    wrk.run(session, f"{name}-warm", url, seconds=args.warmup, **kw)
    return wrk.run(session, name, url, seconds=args.duration, **kw)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)

    def body() -> int:
        with Session(PROG, keep_logs=args.keep_logs) as session:
            require("wrk", "rsync", "nginx")
            code = describe_tree()
            results: list[tuple[str, int | None, Measurement]] = []
            figures: dict[tuple[int, str], Measurement] = {}
            sets: dict[int, dict[str, str]] = {}
            stacks: list[Stack] = []
            session.defer("stop the stacks", lambda: stop_stacks(stacks))
            for size in args.sizes:
                base = data.BenchDb.from_env()
                db = base.with_database(size_database(base.name, size))
                db.ensure()
                values = data.settings(db, token_ttl=3 * 3600)
                data.migrate(session, [Path(__file__).resolve().parents[1]], values)
                sets[size] = tokens = make_data_set(session, size, args, values)
                layout = Layout(find_port_block(Layout(0, args.procs).size), args.procs)
                stack = Stack(session, f"users{size}", f"{size} users", copy_tree(session, f"users{size}"), layout,
                              values)
                stacks.append(stack)
                stack.start()
                ceiling = measure(session, stack, args, f"ceiling-{size}", stack.bare_url)
                for path in ("ceiling", "distance", "city"):
                    result = ceiling if path == "ceiling" else measure(
                        session, stack, args, f"{path}-{size}", stack.url + "/api/v1/recommendations?limit=10",
                        tokens[path])
                    figures[size, path] = Measurement(result, ceiling.rps)
                    results.append((f"{size:,} users: {PATHS[path].format(radius=args.radius, swipes=args.viewer_swipes)}", None,
                                    figures[size, path]))
                stack.stop()
                stacks.remove(stack)
            report.preamble(PROG, argv, [code], [
                f"Stack: supervisord + {args.procs} server.py behind nginx, the ceiling ({args.procs} bench/bare.py) "
                f"behind the same nginx; wrk -t {args.threads} -c {args.connections} -d {args.duration}s --latency, "
                f"each after a {args.warmup} s warm-up; rate limits off",
                *[f"Data set {size:,}: {sets[size]['summary']}" for size in args.sizes]])
            print(report.results_table(results))
            print("\nCPU of the servers under test per answer (server.py and bench/bare.py, from /proc over each run; "
                  "steadier than req/s on a shared machine; MariaDB, Redis, nginx and wrk not included):\n")
            print(report.table(["path", "µs per answer"], [
                [label, f"{m.result.cpu_us_per_request:.0f}" if m.result.cpu_us_per_request is not None else "?"]
                for label, _, m in results], "lr"))
            if len(args.sizes) > 1:
                small, large = args.sizes[0], args.sizes[-1]
                print(f"\nFlatness ({large:,} users over {small:,}): " + "; ".join(
                    f"{path}: req/s {figures[large, path].result.rps / figures[small, path].result.rps:.2f}, "
                    f"p99 {figures[large, path].result.p99 / figures[small, path].result.p99:.2f}"
                    for path in ("distance", "city")))
            for size in args.sizes:
                print(f"\nSQL of the feed by distance at {size:,} users (bench.distance_fixtures):\n{sets[size]['sql']}")
            return 0

    return main_guard(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
