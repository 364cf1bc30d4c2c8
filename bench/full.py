"""THE benchmark: the whole production stack under load against a bare Tornado ceiling behind the same nginx.

    .venv/bin/python -m bench.full [--duration S] [--connections C] [--only ROW,...] [--compare REV --repeat N] ...

A private copy of this working tree is brought up by its own ``scripts/start.sh`` (supervisord + N ``server.py``
+ nginx, see ``bench.lib.stack``), with ``bench/bare.py`` as N processes behind the same nginx as the ceiling, and
the Aliyun SMS stub (``tests/stubs/aliyun_sms.py``, which verifies every signature) as the SMS provider of the
real SDK. The data set is ``bench.fixtures``'. Through nginx, ``wrk --latency`` with C connections (each measured
run after a warm-up): the ceiling ``GET /``, then the rows ``profile`` (``GET /api/v1/profile``), ``feed`` (the
viewer who has swiped the first 5,000 of his feed), ``swipes`` (``bench/lua/swipes.lua``: a new pair each; the
new rows in MySQL must equal the 2xx answers, up to C in flight when wrk stopped) and ``login``
(``bench/lua/login.lua``: a code for a new phone, then the session with the code the stub received; every
answer 2xx with the expected body). Prints one markdown table (req/s, p50, p99, errors, ratio to the ceiling of
the same round), the resident memory of every process idle and after the runs, and the checks; exits 1 after
printing if a check failed. Everything started is stopped on exit, on failure and on Ctrl-C/SIGTERM.

``--compare REV`` also brings up the stack of git revision REV (a temporary worktree of it, sharing .venv; only
the server's tree comes from REV, the bench code is this tree's) and runs the selected rows on both, alternating
(REV, this tree, REV, this tree, ... for ``--repeat N`` rounds) so that noise hits both; each row's ratio is to
its own stack's ceiling measured in the same round, and the table shows the change in ratio.
"""
from __future__ import annotations

import argparse
import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.full_report import print_report
from bench.lib import data, wrk
from bench.lib.report import Measurement
from bench.lib.session import Session, main_guard
from bench.lib.stack import (Layout, SmsStub, Stack, checkout_revision, copy_tree, fetch, resolve_revision,
                             stop_stacks)
from bench.lib.system import ROOT, BenchError, describe_tree, find_port_block, require

ROWS = ("profile", "feed", "swipes", "login")
PROG = "bench.full"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.full", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="The data set and its settings: bench/lib/data.py (SWIPER_BENCH_MYSQL_URL, "
                                       "SWIPER_BENCH_REDIS_URL, ...). More in BENCH.md.")
    def option(name: str, metavar: str, help: str, **kw) -> None:
        p.add_argument(name, metavar=metavar, type=int, help=help, **kw)

    option("--duration", "S", "seconds per measured wrk run (default 15; max 600)", default=15)
    option("--warmup", "S", "seconds of warm-up before each measured run (default 3)", default=3)
    option("--connections", "C", "wrk connections (default 100, issue 5's)", default=100)
    option("--threads", "T", "wrk threads (default 2)", default=2)
    option("--procs", "N", "server processes, and bare processes (default 2)", default=2)
    option("--base-port", "P", "first port of the block used (default: the first free block from 19000 up; "
           "every port lies below the kernel's ephemeral range)")
    option("--robots", "N", "robots in the bench database (default 100000; only missing ones are made)",
           default=100_000)
    option("--viewer-swipes", "N", "swipes of the feed viewer (default 5000)", default=5000)
    option("--swipers", "N", "users that post the swipes (default 100)", default=100)
    p.add_argument("--only", metavar="ROW[,ROW]",
                   help=f"rows to run, of {','.join(ROWS)} (default: all; the ceiling always runs)")
    p.add_argument("--compare", metavar="REV", help="also bring up the stack of git revision REV and run the rows "
                   "on both, alternating; the table shows both and the change in ratio")
    option("--repeat", "N", "rounds (default 1); each round runs every stack once", default=1)
    p.add_argument("--keep-logs", action="store_true", help="keep the work directory (logs, wrk outputs, fixtures; "
                   "under var/bench/, printed at the end)")
    args = p.parse_args(argv)
    args.rows = [r.strip() for r in args.only.split(",") if r.strip()] if args.only else list(ROWS)
    bad = [r for r in args.rows if r not in ROWS]
    checks = [
        (not bad, f"--only: unknown rows {','.join(bad)} (rows: {','.join(ROWS)})"),
        (1 <= args.duration <= 600, "--duration must be 1..600 s"),
        (1 <= args.warmup <= 60, "--warmup must be 1..60 s"),
        (1 <= args.threads <= args.connections, "--threads must be at least 1 and not exceed --connections"),
        (1 <= args.procs <= 16, "--procs must be 1..16"),
        (args.threads <= args.swipers <= 9999, "--swipers must be between --threads and 9999"),
        (args.robots >= 1000, "--robots must be at least 1000"),
        (args.viewer_swipes >= 1, "--viewer-swipes must be at least 1"),
        (1 <= args.repeat <= 20, "--repeat must be 1..20"),
        (args.base_port is None or 1 <= args.base_port < 65000, "--base-port must be a port"),
    ]
    for ok, message in checks:
        if not ok:
            p.error(message)
    args.rows = [r for r in ROWS if r in args.rows]
    return args


@dataclass(frozen=True)
class Tree:
    name: str  # "this" or "base": the stack's files and logs
    path: Path
    label: str  # the table's: "this 29a8bf1", "base 5406119"
    code: str  # the "Code:" line


class FullBench:
    """One session's stacks, data set and load runs; ``measure`` runs one row on one stack."""

    def __init__(self, args: argparse.Namespace, session: Session, db: data.BenchDb) -> None:
        self.args, self.session, self.db = args, session, db
        self.stacks: list[Stack] = []
        self.checks: list[tuple[bool, str]] = []
        self.commands: dict[str, str] = {}
        runs = args.repeat * (2 if args.compare else 1)
        self.slices: data.Slices | None = None
        self.phones = data.PhoneBlocks(2 * runs)
        self.swipe_runs = 2 * runs
        self.round = 0

    def setup(self) -> None:
        a, s = self.args, self.session
        require("wrk", "rsync", "nginx", "git", self.db.admin[0])
        commit = describe_tree()
        trees = [Tree("this", copy_tree(s, "this"), f"this {commit.split(' ')[0]}", commit)]
        if a.compare:
            sha, short = resolve_revision(a.compare)
            trees.insert(0, Tree("base", checkout_revision(s, "base", sha), f"base {short}",
                                 f"{short} (--compare {a.compare}; only the stack's tree)"))
        self.code_lines = [f"{t.name}: {t.code}" if a.compare else t.code for t in trees]
        layout_size = Layout(0, a.procs).size
        base = find_port_block(len(trees) * layout_size + 1, a.base_port)
        stub_port = base + len(trees) * layout_size + 1
        runs = a.repeat * len(trees) * (1 + len(a.rows))
        key_id, key_secret = "LTAI-bench-stub", "bench-stub-" + secrets.token_hex(16)
        self.settings = data.settings(
            self.db, token_ttl=2 * runs * (a.duration + a.warmup) + 1800,
            SWIPER_SMS_BACKEND="aliyun", SWIPER_ALIYUN_ACCESS_KEY_ID=key_id,
            SWIPER_ALIYUN_ACCESS_KEY_SECRET=key_secret, SWIPER_ALIYUN_SMS_ENDPOINT=f"127.0.0.1:{stub_port}",
            SWIPER_ALIYUN_SMS_PROTOCOL="http", SWIPER_SMS_HOUR_LIMIT="1000000", SWIPER_SMS_DAY_LIMIT="1000000",
            SWIPER_SMS_IP_DAY_LIMIT="1000000000")
        self.db.ensure()
        data.migrate(s, [t.path for t in trees if t.name == "base"] + [ROOT], self.settings)
        self.world = data.make_world(s, self.db, self.settings, robots=a.robots, viewer_swipes=a.viewer_swipes,
                                     swipers=a.swipers, reset_logins=True)  # the pre-run checks log in too
        self.slices = data.Slices(self.world.targets, self.swipe_runs)
        self.stub = SmsStub(s, stub_port, key_id, key_secret)
        s.defer("stop the stacks", lambda: stop_stacks(self.stacks))
        for n, t in enumerate(trees):
            self.stacks.append(Stack(s, t.name, t.label, t.path, Layout(base + n * layout_size, a.procs),
                                     self.settings))
            self.stacks[-1].start()
        for n, stack in enumerate(self.stacks):
            stack.rss_idle = stack.rss()
            self.precheck(stack, f"155{n:08d}")

    # --- pre-run checks: success envelopes through nginx, every process serving --------------------------------
    def precheck(self, stack: Stack, phone: str) -> None:
        def expect(what: str, status: int, body: bytes, ok) -> None:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if status != 200 or not isinstance(parsed, dict) or parsed.get("code") != 0 or not ok(parsed["data"]):
                raise BenchError(f"pre-run ({stack.label}): {what} answered {status}: {body[:300]!r}")

        for _ in range(10):
            expect("the ceiling", *fetch(stack.bare_url), lambda d: True)
            expect("GET /api/v1/profile", *fetch(stack.url + "/api/v1/profile", self.auth(self.world.profile_token)),
                   lambda d: True)
        for _ in range(4):
            expect("the feed", *fetch(stack.url + "/api/v1/recommendations?limit=10",
                                    self.auth(self.world.viewer_token)), lambda d: len(d["items"]) == 10)
        json_type = {"Content-Type": "application/json"}
        expect("POST /api/v1/sms-codes", *fetch(stack.url + "/api/v1/sms-codes", json_type,
                                              json.dumps({"phone": phone}).encode()),
               lambda d: isinstance(d.get("resend_after"), (int, float)))
        code = self.stub.pop_code(phone)
        if code is None:
            raise BenchError(f"pre-run ({stack.label}): the SMS stub wrote no code for {phone}")
        expect("POST /api/v1/sessions", *fetch(stack.url + "/api/v1/sessions", json_type,
                                             json.dumps({"phone": phone, "code": code}).encode()),
               lambda d: isinstance(d.get("access_token"), str))

    def where(self, stack: Stack) -> str:
        return stack.label + (f", round {self.round}" if self.args.repeat > 1 else "")

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # --- the rows ----------------------------------------------------------------------------------------------
    def load(self, stack: Stack, name: str, url: str, seconds: int, **kw) -> wrk.Result:
        a = self.args
        return wrk.run(self.session, f"{name}-{stack.name}-{self.round}", url, seconds=seconds,
                       connections=a.connections, threads=a.threads, watch=stack.watched_pids, **kw)

    def warm_and_measure(self, stack: Stack, row: str, url: str, **kw) -> wrk.Result:
        self.load(stack, f"{row}-warm", url, self.args.warmup, **kw)
        return self.load(stack, row, url, self.args.duration, **kw)

    def measure(self, stack: Stack, row: str) -> wrk.Result:
        w = self.world
        if row == "ceiling":
            result = self.warm_and_measure(stack, row, stack.bare_url)
        elif row == "profile":
            result = self.warm_and_measure(stack, row, stack.url + "/api/v1/profile",
                                           headers=[f"Authorization: Bearer {w.profile_token}"])
        elif row == "feed":
            result = self.warm_and_measure(stack, row, stack.url + "/api/v1/recommendations?limit=10",
                                           headers=[f"Authorization: Bearer {w.viewer_token}"])
        elif row == "swipes":
            result = self.swipes(stack)
        else:
            result = self.login(stack)
        self.commands.setdefault(row, result.command)
        return result

    def swipes(self, stack: Stack) -> wrk.Result:
        a, w, url = self.args, self.world, stack.url + "/api/v1/swipes"

        def script_args() -> list[object]:
            return [w.tokens_file, w.ranges_file, *self.slices.take(), a.threads]

        warm = self.load(stack, "swipes-warm", url, a.warmup, script="swipes.lua", script_args=script_args())
        if warm.non2xx or warm.counter("swipes-lua", "badbody") or not warm.counter("swipes-lua", "ok"):
            raise BenchError(f"the swipe warm-up ({stack.label}) had failures:\n{warm.text}")
        before = data.settled_swipe_rows(self.db, w)
        result = self.load(stack, "swipes", url, a.duration, script="swipes.lua", script_args=script_args())
        rows = data.settled_swipe_rows(self.db, w) - before
        ok, wrapped = result.counter("swipes-lua", "ok"), result.counter("swipes-lua", "wrapped")
        diff = rows - ok
        self.checks.append((0 <= diff <= a.connections and wrapped == 0, (
            f"Swipe check ({self.where(stack)}): wrk counted {result.requests} responses, {ok} 2xx with code 0, "
            f"{result.counter('swipes-lua', 'non2xx')} non-2xx, {result.counter('swipes-lua', 'badbody')} bad "
            f"bodies, {wrapped} repeated pairs; new swipe rows in MySQL: {rows} (difference {diff}; "
            f"0..{a.connections} = requests in flight when wrk stopped)")))
        return result

    def login(self, stack: Stack) -> wrk.Result:
        a, url = self.args, stack.url + "/"
        warm = self.load(stack, "login-warm", url, a.warmup, script="login.lua",
                         script_args=[self.stub.codes, *self.phones.take(a.threads)])
        if warm.counter("login-lua", "non2xx") or warm.counter("login-lua", "badbody") \
                or not warm.counter("login-lua", "sessions"):
            raise BenchError(f"the login warm-up ({stack.label}) had failures:\n{warm.text}")
        rejected = self.stub.rejected()
        result = self.load(stack, "login", url, a.duration, script="login.lua",
                           script_args=[self.stub.codes, *self.phones.take(a.threads)])
        rejected = self.stub.rejected() - rejected
        n = {k: result.counter("login-lua", k) for k in ("codes", "sessions", "non2xx", "badbody", "pending",
                                                         "exhausted")}
        ok = n["non2xx"] == 0 and n["badbody"] == 0 and n["sessions"] > 0 and n["exhausted"] == 0 and not rejected
        self.checks.append((ok, (
            f"Login check ({self.where(stack)}): {n['sessions']} logins (sessions 2xx with an access token; "
            f"{n['sessions'] / result.seconds:.1f}/s), {n['codes']} codes sent (sms-codes 2xx), {n['non2xx']} "
            f"non-2xx, {n['badbody']} bad bodies, {n['pending']} phones still waiting for their login when wrk "
            f"stopped, {n['exhausted']} requests past a thread's phone range; the SMS stub rejected {rejected}")))
        return result

    # --- the session -------------------------------------------------------------------------------------------
    def run_rounds(self) -> dict[tuple[str, str, int], Measurement]:
        """Round after round, each stack in turn: its ceiling, then the rows, each against that ceiling."""
        results = {}
        self.session.say(f"running wrk ({self.args.warmup} s warm-up + {self.args.duration} s per path) ...")
        for rnd in range(1, self.args.repeat + 1):
            self.round = rnd
            for stack in self.stacks:
                ceiling = self.measure(stack, "ceiling")
                results["ceiling", stack.label, self.round] = Measurement(ceiling, ceiling.rps)
                for row in self.args.rows:
                    results[row, stack.label, self.round] = Measurement(self.measure(stack, row), ceiling.rps)
        for stack in self.stacks:
            stack.rss_after = stack.rss()
        return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)

    def body() -> int:
        with Session(PROG, keep_logs=args.keep_logs) as session:
            bench = FullBench(args, session, data.BenchDb.from_env())
            try:
                bench.setup()
                results = bench.run_rounds()
            except BaseException:
                for stack in bench.stacks:
                    stack.show_logs()
                if hasattr(bench, "stub"):
                    session.tail(bench.stub.proc.err, 10)
                raise
            return print_report(bench, results, argv)

    return main_guard(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
