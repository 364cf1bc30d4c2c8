"""The social core on ONE server.py process: the feed and swipes under wrk, with the feed query's plan.

    .venv/bin/python -m bench.social [--duration S] [--connections C] [--profile [S]] [--only feed|swipes] ...

With the data set of ``bench.fixtures`` (100,000 robots by default), one ``server.py`` of this tree (run by the
interpreter that runs this module) and ``wrk --latency``:
  1. GET /api/v1/recommendations?limit=10 for a viewer who has swiped the 5,000 users his feed would show first
     (so every request steps over all of them), at C connections, then at 1 connection (service time);
  2. POST /api/v1/swipes, each request a new (swiper, target) pair (bench/lua/swipes.lua; swipers are level-2
     users: unlimited likes; targets are robots, each read cold from MySQL on its first swipe), at C
     connections, then at 1 connection.
Checks first that the feed answers 200 with 10 items, none of them a swiped user; after each swipe run, that the
new swipe rows in MySQL equal the 2xx answers (up to the number of connections in flight when wrk stopped).
Prints the feed query's plan, a markdown table (path | conns | req/s | p50 | p99 | errors | non-2xx | CPU per
request | other CPU), the machine and the command; with --profile, py-spy's view of one more run of each.
The server runs with SWIPER_SMS_BACKEND=console and the bench settings of bench/lib/data.py.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench import social_plan
from bench.lib import data, pyspy, report, wrk
from bench.lib.session import Session, main_guard
from bench.lib.stack import fetch, wait_for_200
from bench.lib.system import (ROOT, BenchError, CpuMeter, describe_tree, find_port_block, listener_pid, require,
                              wait_quiet)

PROG = "bench.social"
FEED = "`GET /api/v1/recommendations?limit=10`"
SWIPES = "`POST /api/v1/swipes`"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.social", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", metavar="S", type=int, default=15, help="seconds per measured run (default 15)")
    p.add_argument("--warmup", metavar="S", type=int, default=3, help="warm-up before the C-connection runs (3)")
    p.add_argument("--connections", metavar="C", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("--threads", metavar="T", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--port", metavar="P", type=int, help="server.py's port (default: a free one below the "
                   "ephemeral range, from 19000 up)")
    p.add_argument("--robots", metavar="N", type=int, default=100_000, help="robots (default 100000)")
    p.add_argument("--viewer-swipes", metavar="N", type=int, default=5000, help="the viewer's swipes (5000)")
    p.add_argument("--swipers", metavar="N", type=int, default=100, help="users posting the swipes (100)")
    p.add_argument("--no-single", action="store_true", help="skip the 1-connection runs")
    p.add_argument("--profile", metavar="S", type=int, nargs="?", const=10, default=0,
                   help="afterwards one more C-connection run of each endpoint with py-spy recording the server "
                        "for S seconds (default 10); implies --keep-logs")
    p.add_argument("--wait-quiet", metavar="S", type=int, default=0, help="before each measured run wait up to S "
                   "seconds for 2 s with the CPUs at least 85%% idle (default 0)")
    p.add_argument("--only", choices=("feed", "swipes"), help="run only the feed or only the swipe benchmark")
    p.add_argument("--keep-logs", action="store_true", help="keep the work directory (under var/bench/)")
    a = p.parse_args(argv)
    for ok, message in [(1 <= a.duration <= 600, "--duration must be 1..600 s"),
                        (1 <= a.warmup <= 60, "--warmup must be 1..60 s"),
                        (0 <= a.profile <= 600, "--profile is capped at 600 s"),
                        (1 <= a.threads <= a.connections, "--threads must be 1..--connections"),
                        (a.threads <= a.swipers <= 9999, "--swipers must be between --threads and 9999"),
                        (a.robots >= 1000, "--robots must be at least 1000"), (a.wait_quiet >= 0, "--wait-quiet")]:
        if not ok:
            p.error(message)
    a.keep_logs = a.keep_logs or a.profile > 0
    return a


class SocialBench:
    def __init__(self, args: argparse.Namespace, session: Session, db: data.BenchDb) -> None:
        self.args, self.session, self.db = args, session, db
        self.rows: list[list[str]] = []
        self.notes: list[str] = []
        self.results: dict[str, wrk.Result] = {}
        self.ok = True  # every swipe run's rows matched its 2xx answers

    def setup(self) -> None:
        a, s = self.args, self.session
        require("wrk", "ss", self.db.admin[0])
        self.pyspy = pyspy.find_pyspy() if a.profile else ""
        runs = 3 * (a.warmup + a.duration) + 2 * a.profile
        self.settings = data.settings(self.db, token_ttl=6 * runs + 1200, SWIPER_SMS_BACKEND="console")
        self.db.ensure()
        data.migrate(s, [ROOT], self.settings)
        self.world = data.make_world(s, self.db, self.settings, robots=a.robots, viewer_swipes=a.viewer_swipes,
                                     swipers=a.swipers)
        self.slices = data.Slices(self.world.targets, 4)  # warm-up, C connections, 1 connection, profile
        self.plan = social_plan.plan_lines(self.db, self.world.dir, self.world.viewer_id, a.viewer_swipes)
        port = a.port if a.port else find_port_block(1) + 1
        if a.port:
            find_port_block(1, a.port - 1)  # free and below the ephemeral range (server.py binds SO_REUSEPORT)
        self.url = f"http://127.0.0.1:{port}"
        self.server = s.spawn("server", [sys.executable, str(ROOT / "server.py"), "--port", str(port)],
                              env=data.step_env(self.settings))
        wait_for_200(self.url + "/healthz", self.server, "server.py")
        self.pids = {"server.py": self.server.pid, "mariadbd": listener_pid(self.db.mysql_port),
                     "redis": listener_pid(self.db.redis_port)}
        if not (self.pids["mariadbd"] and self.pids["redis"]):
            s.say("cannot find the MariaDB or Redis process (ss); their CPU reads 0")
        self.precheck()

    def precheck(self) -> None:
        w, viewer = self.world, self.world.viewer_id
        for _ in range(20):
            status, body = fetch(self.url + "/api/v1/recommendations?limit=10",
                               {"Authorization": f"Bearer {w.viewer_token}"})
            page = json.loads(body) if status == 200 else {}
            if page.get("code") != 0 or len(page["data"]["items"]) != 10:
                raise BenchError(f"pre-run: the feed answered {status}, not 10 items: {body[:300]!r}")
        ids = ",".join(str(item["id"]) for item in page["data"]["items"])
        shown = self.db.count(f"SELECT COUNT(*) FROM swipe WHERE user_id = {viewer} AND target_id IN ({ids})")
        if shown:
            raise BenchError(f"pre-run: the feed showed {shown} users the viewer has swiped ({ids})")
        self.viewer_swiped = self.db.count(f"SELECT COUNT(*) FROM swipe WHERE user_id = {viewer}")
        stepped = self.db.count(
            f"SELECT COUNT(*) FROM swipe s JOIN user u ON u.id = s.target_id WHERE s.user_id = {viewer} AND "
            f"u.last_active_at >= (SELECT MAX(last_active_at) FROM user WHERE id IN ({ids}))")
        if stepped != self.viewer_swiped:
            raise BenchError(f"pre-run: only {stepped} of the viewer's {self.viewer_swiped} swiped users are ahead "
                             "of the page (not the worst case)")
        self.session.say(f"pre-run: the feed answers 200 with 10 items ({ids}), none swiped; the viewer ({viewer}) "
                         f"has swiped {self.viewer_swiped} users, all more recently active than the page")

    def load(self, name: str, url: str, seconds: int, conns: int, threads: int, **kw) -> wrk.Result:
        if "warm" not in name:
            wait_quiet(self.args.wait_quiet, self.session.say)
            self.session.say(f"load average before {name}: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
        meter = CpuMeter(self.pids)
        result = wrk.run(self.session, name, url, seconds=seconds, connections=conns, threads=threads,
                         watch=[self.server.pid], **kw)
        result.cpu = meter.stop(seconds)
        self.results[name] = result
        return result

    def add_row(self, label: str, conns: int, r: wrk.Result) -> None:
        cpu, n = r.cpu, max(r.requests, 1)

        def per_request(name: str) -> str:
            return "n/a" if cpu.used[name] < 0 else f"{1e6 * cpu.used[name] / n:.0f} µs"
        cpu_text = (f"server.py {per_request('server.py')} ({100 * cpu.used['server.py'] / r.seconds:.0f}% of a "
                    f"core), mariadbd {per_request('mariadbd')}, redis {per_request('redis')}")
        other = "n/a" if cpu.other_share is None else f"{100 * cpu.other_share:.0f}%"
        self.rows.append([label, str(conns), f"{r.rps:.2f}", report.fmt_ms(r.p50), report.fmt_ms(r.p99),
                          ", ".join(f"{k} {v}" for k, v in r.socket_errors.items()) or "0", str(r.non2xx),
                          cpu_text, other])

    def swipe_run(self, name: str, conns: int, threads: int, seconds: int | None = None,
                  check: bool = True) -> wrk.Result:
        w = self.world
        before = data.settled_swipe_rows(self.db, w)
        r = self.load(name, self.url + "/api/v1/swipes", seconds or self.args.duration, conns, threads,
                      script="swipes.lua", script_args=[w.tokens_file, w.ranges_file, *self.slices.take(), threads])
        rows = data.settled_swipe_rows(self.db, w) - before
        ok, wrapped = r.counter("swipes-lua", "ok"), r.counter("swipes-lua", "wrapped")
        if wrapped:
            raise BenchError(f"wrk {name}: {wrapped} requests repeated a pair (too few targets for this rate)")
        diff = rows - ok
        if not check:
            return r
        verdict = ("requests in flight when wrk stopped, finished by the server" if 0 <= diff <= conns
                   else "UNEXPECTED")
        self.notes.append(f"swipes {name}: wrk counted {r.requests} responses, {ok} 2xx with code 0 (Lua), "
                          f"{r.counter('swipes-lua', 'non2xx')} non-2xx; new swipe rows in MySQL: {rows} (difference "
                          f"{diff}: {verdict}); {r.counter('swipes-lua', 'generated')} pairs generated, one of them "
                          "by wrk's check of the script, never sent")
        self.ok = self.ok and 0 <= diff <= conns
        return r

    def run(self) -> None:
        a, w = self.args, self.world
        feed = dict(url=self.url + "/api/v1/recommendations?limit=10",
                    headers=[f"Authorization: Bearer {w.viewer_token}"])
        self.session.say("running wrk ...")
        if a.only != "swipes":
            self.load("feed-warm", seconds=a.warmup, conns=a.connections, threads=a.threads, **feed)
            self.add_row(FEED, a.connections, self.load("feed", seconds=a.duration, conns=a.connections,
                                                        threads=a.threads, **feed))
            if not a.no_single:
                self.add_row(FEED, 1, self.load("feed-single", seconds=a.duration, conns=1, threads=1, **feed))
        if a.only != "feed":
            warm = self.swipe_run("swipe-warm", a.connections, a.threads, a.warmup, check=False)
            if warm.non2xx or warm.counter("swipes-lua", "badbody") or not warm.counter("swipes-lua", "ok"):
                raise BenchError(f"the swipe warm-up had failures:\n{warm.text}")
            self.add_row(SWIPES, a.connections, self.swipe_run("swipe", a.connections, a.threads))
            if not a.no_single:
                self.add_row(SWIPES, 1, self.swipe_run("swipe-single", 1, 1))
        self.profiles = []
        if a.profile:
            self.session.say(f"profiling (py-spy, {a.profile} s per endpoint) ...")
            if a.only != "swipes":
                self.profiled("feed", lambda s: self.load("prof-feed", seconds=s, conns=a.connections,
                                                          threads=a.threads, **feed))
            if a.only != "feed":
                self.profiled("swipe", lambda s: self.swipe_run("prof-swipe", a.connections, a.threads, s))

    def profiled(self, name: str, load) -> None:
        proc, out = pyspy.record(self.session, self.pyspy, name, self.server.pid, self.args.profile)
        result = load(self.args.profile + 4)
        try:
            proc.popen.wait(30)
        except subprocess.TimeoutExpired:
            raise BenchError("py-spy did not finish") from None
        if proc.popen.returncode != 0:
            raise BenchError(f"py-spy failed: {proc.err.read_text()[-500:]}")
        self.profiles.append((name, result, pyspy.summarise(out)))

    def report(self, argv: list[str]) -> int:
        a = self.args
        for name in ("feed", "feed-single", "swipe", "swipe-single"):
            if name in self.results:
                print(f"--- wrk: {name} ---\n{self.results[name].text.rstrip()}")
        print()
        versions = [row[0] for row in self.db.sql("SELECT VERSION()", database=False)]
        redis = subprocess.run(["redis-cli", "-v"], capture_output=True, text=True).stdout.strip() or "redis"
        commands = [f"  {self.results[n].command}" for n in ("feed", "swipe") if n in self.results]
        report.preamble(PROG, argv, [describe_tree()], [
            f"Databases: MariaDB {', '.join(versions)}; {redis}", *commands,
            f"  (the {a.connections}-connection runs after a {a.warmup} s warm-up; 1-connection runs: -t 1 -c 1; "
            f"one server.py, SWIPER_LOG_LEVEL={self.settings['SWIPER_LOG_LEVEL']}; tokens as $TOKEN)",
            f"Fixtures: {self.world.summary}"])
        print("\n".join(self.plan) + "\n")
        print(report.table(["path", "conns", "req/s", "p50", "p99", "errors", "non-2xx", "CPU per request",
                            "other CPU"], self.rows, "lrrrrlrlr"))
        print("\nCPU per request: CPU time each process used during the run / requests answered (mariadbd and "
              "redis-server count\nany other client's work too). other CPU: share of all CPUs busy in processes "
              "other than those three\nduring the run (wrk itself plus anything else running on the machine).\n")
        print("\n".join(self.notes))
        errors = self.server.err.read_text(errors="replace").splitlines()
        print(f"server.py stderr: {len(errors)} lines")
        print("\n".join(errors[-10:]))
        for name, result, lines in self.profiles:
            print(f"\npy-spy, {name} ({a.profile} s at 100 Hz while wrk -c {a.connections} ran: {result.rps:.2f} "
                  f"req/s):\n" + "\n".join(lines))
        if self.profiles:
            print(f"(collapsed stacks: {self.session.work}/prof-*.txt)")
        if not self.ok:
            self.session.say("failed: the new swipe rows do not match the 2xx answers (see the notes)")
        return 0 if self.ok else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)

    def body() -> int:
        with Session(PROG, keep_logs=args.keep_logs) as session:
            bench = SocialBench(args, session, data.BenchDb.from_env())
            try:
                bench.setup()
                bench.run()
            except BaseException:
                if hasattr(bench, "server"):
                    session.tail(bench.server.err)
                raise
            return bench.report(argv)

    return main_guard(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
