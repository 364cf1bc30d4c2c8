"""The operations harness: the whole stack under load through restarts, deploys and faults, with figures.

    .venv/bin/python -m tests.ops.harness                      # every scenario, about 5 minutes
    .venv/bin/python -m tests.ops.harness --only restart,kill  # some of them
    .venv/bin/python -m tests.ops.harness --help

It starts a private MariaDB (own datadir, free port) and a private Redis, deploys this working tree with
scripts/deploy.sh into a scratch directory (which starts supervisord + nginx there from the repository's own
supervisor.conf and nginx.conf, on free loopback ports), seeds users, then runs each scenario under a bounded
load through nginx (an asyncio keep-alive client recording every request, no retries) and prints the figures
as JSON and as Markdown. Scenarios:
  restart       scripts/restart.sh under load: failed requests (want 0: every request answered below 5xx within
                the drain timeout) and writes answered 2xx == rows in MySQL (--repeat N runs it N times;
                --write-heavy makes 80% of the requests POSTs; --workload profile is GET+PATCH /profile and
                GET /vip/levels instead of the swipes mix)
  deploy        scripts/deploy.sh of this tree into the running target under load: the same checks
  kill          kill -9 of one process under load: failed requests by method, time until supervisor has it ready
                (--repeat N kills it N times)
  mysql         MySQL stopped for --outage seconds: statuses, 503 latency, /healthz and /readyz, recovery time
  mysql-freeze  MySQL frozen (SIGSTOP: connections hang) for --outage/2 seconds: the same
  redis         Redis stopped for --outage seconds: the same
Everything it starts is stopped at the end (also on Ctrl-C); nothing outside loopback is ever contacted.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.ops.deps import PrivateMariaDB, PrivateRedis  # noqa: E402
from tests.ops.load import Record, dumps, percentile, run_load, summarize, timeline  # noqa: E402
from tests.ops.stack import Deployment, http_status  # noqa: E402
from tests.ops.workload import (WRITE_HEAVY, ProfileWorkload, Workload, answered_writes, seed,  # noqa: E402
                                stored_writes)

SCENARIOS = ("restart", "deploy", "kill", "mysql", "mysql-freeze", "redis")
DRAIN_TIMEOUT = 10.0  # the stack's SWIPER_DRAIN_TIMEOUT (the default): a restart must answer every request within it


class Harness:
    def __init__(self, scratch: Path, *, procs: int, rate: float, connections: int,
                 write_heavy: bool = False, workload: str = "swipes", client_timeout: float = 60.0,
                 settings: dict[str, str] | None = None) -> None:
        self.scratch = scratch
        self.write_heavy = write_heavy
        self.workload_name = workload
        self.client_timeout = client_timeout
        self.extra_settings = settings or {}
        self.procs, self.rate, self.connections = procs, rate, connections
        self.mysql = PrivateMariaDB(scratch / "mysql")
        self.redis = PrivateRedis(scratch / "redis")
        self.dep: Deployment | None = None
        self.workload: Workload | ProfileWorkload | None = None
        self.swiper_ids: list[int] = []

    async def setup(self) -> None:
        t0 = time.monotonic()
        self.mysql.initialise()
        self.redis.start()
        self.dep = Deployment(self.scratch, {
            "SWIPER_ENV": "dev", "SWIPER_MYSQL_URL": self.mysql.url, "SWIPER_REDIS_URL": self.redis.url,
            "SWIPER_REDIS_PREFIX": "swiper_ops:", "SWIPER_RATE_LIMIT_ENABLED": "false",
            "SWIPER_JWT_SECRET": "ops-harness-secret-" + "x" * 32,
            "SWIPER_ACCESS_TOKEN_TTL": "86400",  # long --repeat runs outlive the default 15 minutes
            **self.extra_settings,
        }, procs=self.procs)
        self.dep.prepare()
        out = self.dep.deploy()
        if out.returncode != 0:
            raise RuntimeError(f"first deploy failed:\n{out.stdout}\n{out.stderr}")
        targets = 20 if self.workload_name == "profile" else 2500 if self.write_heavy else 300
        seeded = seed(self.dep.env_file, swipers=40, targets=targets)
        if self.workload_name == "profile":
            self.workload = ProfileWorkload(seeded)
        else:
            self.workload = Workload(seeded, mix=WRITE_HEAVY if self.write_heavy else None)
        self.swiper_ids = [s["id"] for s in seeded["swipers"]]
        log(f"setup: private MariaDB :{self.mysql.port}, Redis :{self.redis.port}, {self.procs} processes on "
            f":{self.dep.port(1)}..{self.dep.port(self.procs)}, nginx :{self.dep.http_port}, "
            f"{time.monotonic() - t0:.1f} s")

    def teardown(self) -> None:
        if self.dep is not None:
            self.dep.stop()
        self.mysql.stop()
        self.redis.stop()

    # -- running the load around an action --------------------------------------------------------------------------
    async def under_load(self, action: Callable[[], Awaitable[dict]], *, lead: float = 2.0, tail: float = 3.0,
                         max_duration: float = 180) -> tuple[list[Record], dict]:
        assert self.dep is not None and self.workload is not None
        stop = asyncio.Event()
        load = asyncio.create_task(run_load("127.0.0.1", self.dep.http_port, self.workload.next_request,
                                            duration=max_duration, connections=self.connections, rate=self.rate,
                                            timeout=self.client_timeout, stop=stop))
        await asyncio.sleep(lead)
        started = time.monotonic()
        try:
            result = await action()
        finally:
            await asyncio.sleep(tail)
            stop.set()
            records = await load
        result["action_seconds"] = round(time.monotonic() - started - tail, 1)
        return records, result

    def check_writes(self, records: list[Record]) -> dict[str, Any]:
        assert self.mysql is not None
        answered = answered_writes(records)
        stored = stored_writes(self.mysql.url, self.swiper_ids)
        sent = {r.key for r in records if r.op == "swipe"}
        stored_now = stored & sent
        return {"writes_answered_2xx": len(answered), "writes_in_db": len(stored_now),
                "in_db_not_answered_2xx": len(stored_now - answered), "answered_not_in_db": len(answered - stored_now),
                "exact": stored_now == answered}

    def all_ready(self) -> bool:
        assert self.dep is not None
        return all(self.dep.ready(n) == 200 for n in range(1, self.procs + 1))

    # -- scenarios ---------------------------------------------------------------------------------------------------
    async def restart(self) -> dict:
        assert self.dep is not None

        async def action() -> dict:
            rc, out, secs = await self.dep.script_async("restart.sh")
            return {"exit": rc, "seconds": round(secs, 1), "output": out.strip().splitlines()}
        mark, error_mark = len(self.access_log_lines()), len(self.error_log_lines())
        records, result = await self.under_load(action)
        summary = summarize(records, slow=DRAIN_TIMEOUT)
        failed_rids = {r.rid for r in records if r.failed or r.elapsed > DRAIN_TIMEOUT}
        return {"scenario": "rolling restart", **result, **summary,
                **self.check_writes(records), "nginx_retries": self.nginx_retries(mark),
                "nginx_errors": self.nginx_errors(error_mark),
                "nginx_lines_of_failed": [line for line in self.access_log_lines()[mark:]
                                          if line.rsplit("rid=", 1)[-1] in failed_rids][:20]}

    async def deploy(self) -> dict:
        assert self.dep is not None

        async def action() -> dict:
            out = await asyncio.to_thread(self.dep.deploy)
            return {"exit": out.returncode, "output": (out.stdout + out.stderr).strip().splitlines()[-8:]}
        records, result = await self.under_load(action)
        return {"scenario": "deploy (sync, pip check, migrate, rolling restart)", **result, **summarize(records),
                **self.check_writes(records)}

    async def kill(self) -> dict:
        assert self.dep is not None
        found: dict[str, Any] = {}

        async def action() -> dict:
            pid = self.dep.pid(1)
            assert pid, "no pid for swiper_01"
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            while self.dep.ready(1) != 200 and time.monotonic() - t0 < 60:
                await asyncio.sleep(0.1)
            found["ready_after_s"] = round(time.monotonic() - t0, 2)
            found["old_pid"], found["new_pid"] = pid, self.dep.pid(1)
            return found
        mark, error_mark = len(self.access_log_lines()), len(self.error_log_lines())
        records, result = await self.under_load(action, lead=3.0, tail=3.0)
        summary = summarize(records, slow=DRAIN_TIMEOUT)
        failed_by_method: dict[str, int] = {}
        for r in records:
            if r.failed or r.elapsed > DRAIN_TIMEOUT:
                failed_by_method[r.method] = failed_by_method.get(r.method, 0) + 1
        return {"scenario": "kill -9 swiper_01 under load", **result, **summary,
                "failed_by_method": failed_by_method, **self.check_writes(records),
                "nginx_retries": self.nginx_retries(mark), "nginx_errors": self.nginx_errors(error_mark)}

    async def outage(self, name: str, seconds: float, stop: Callable[[], None], start: Callable[[], None]) -> dict:
        assert self.dep is not None
        probes: list[tuple[float, int, int]] = []
        marks: dict[str, float] = {}
        t_base = time.monotonic()

        async def probe_loop(until: asyncio.Event) -> None:
            while not until.is_set():
                health = await asyncio.to_thread(http_status, f"http://127.0.0.1:{self.dep.port(1)}/healthz", 5)
                ready = await asyncio.to_thread(http_status, f"http://127.0.0.1:{self.dep.port(1)}/readyz", 5)
                probes.append((time.monotonic(), health, ready))
                await asyncio.sleep(0.5)

        async def action() -> dict:
            done = asyncio.Event()
            prober = asyncio.create_task(probe_loop(done))
            marks["down"] = time.monotonic()
            await asyncio.to_thread(stop)
            await asyncio.sleep(seconds)
            marks["restart"] = time.monotonic()
            await asyncio.to_thread(start)
            marks["dep_up"] = time.monotonic()
            while not await asyncio.to_thread(self.all_ready) and time.monotonic() - marks["dep_up"] < 60:
                await asyncio.sleep(0.2)
            marks["ready"] = time.monotonic()
            done.set()
            await prober
            return {}

        load_started = time.monotonic()
        records, result = await self.under_load(action, lead=3.0, tail=5.0)
        rel = {k: v - load_started - 0.0 for k, v in marks.items()}
        # load_started is a little before the load's own zero; good enough at this resolution
        window = [r for r in records if rel["down"] <= r.started <= rel["restart"]]
        after = [r for r in records if r.started >= rel["dep_up"]]
        w503 = [r for r in window if r.status == 503]
        first_ok_after = {}
        for op in ("swipe", "feed", "user", "profile", "hot"):
            oks = [r.started for r in after if r.op == op and r.status is not None and 200 <= r.status < 300]
            if oks:
                first_ok_after[op] = round(oks[0] - rel["dep_up"], 2)
        during = [p for p in probes if marks["down"] + 1 <= p[0] <= marks["restart"]]
        return {
            "scenario": f"{name} for {seconds:.0f} s",
            "outage_window": summarize(window),
            "503_in_window": len(w503),
            "503_p50_ms": round(percentile([r.elapsed * 1000 for r in w503], 0.5), 1),
            "503_p99_ms": round(percentile([r.elapsed * 1000 for r in w503], 0.99), 1),
            "503_max_ms": round(max((r.elapsed * 1000 for r in w503), default=0), 1),
            "slowest_answer_in_window_ms": round(max((r.elapsed * 1000 for r in window), default=0), 1),
            "no_answer_in_window": sum(1 for r in window if r.status is None),
            "healthz_codes_during": sorted({p[1] for p in during}),
            "readyz_codes_during": sorted({p[2] for p in during}),
            "readyz_200_after_dependency_back_s": round(marks["ready"] - marks["dep_up"], 2),
            "first_2xx_after_dependency_back_s": first_ok_after,
            "whole_run": {k: v for k, v in summarize(records).items() if k != "failures"},
            "timeline_per_5s": timeline(records, 5.0),
            **self.check_writes(records),
        }

    def nginx_retries(self, since: int = 0) -> int:
        """Requests nginx passed to a second process (its access log shows two upstream statuses), counted
        from line ``since`` of the access log."""
        lines = self.access_log_lines()[since:]
        return sum(1 for line in lines if "upstatus=" in line and "," in line.split("upstatus=")[1].split(" ")[0])

    def access_log_lines(self) -> list[str]:
        return self._nginx_log("swiper.access.log")

    def error_log_lines(self) -> list[str]:
        return self._nginx_log("swiper.error.log")

    def nginx_errors(self, since: int = 0) -> dict[str, int]:
        """nginx's error-log lines from line ``since``, counted by what went wrong (the text before the
        client/server details), e.g. ``connect() failed (111: Connection refused) while connecting to upstream``."""
        counts: collections.Counter = collections.Counter()
        for line in self.error_log_lines()[since:]:
            what = line.split("] ", 1)[-1].split(", client:", 1)[0]
            counts[re.sub(r"^\d+#\d+: \*\d+ ", "", what)] += 1
        return dict(counts.most_common())

    def _nginx_log(self, name: str) -> list[str]:
        assert self.dep is not None
        log_file = self.dep.target / "var" / "nginx" / "logs" / name
        return log_file.read_text(errors="replace").splitlines() if log_file.exists() else []


def log(msg: str) -> None:
    print(f"harness: {msg}", file=sys.stderr, flush=True)


async def main_async(args: argparse.Namespace) -> list[dict]:
    scratch = Path(tempfile.mkdtemp(prefix="swiper-ops-"))
    harness = Harness(scratch, procs=args.procs, rate=args.rate, connections=args.connections,
                      write_heavy=args.write_heavy, workload=args.workload, client_timeout=args.client_timeout,
                      settings=dict(args.set))
    results = []
    try:
        await harness.setup()
        if harness.write_heavy or args.repeat > 1:
            mix = "profile workload" if args.workload == "profile" else \
                f"{'80' if harness.write_heavy else '30'}% POSTs"
            log(f"restart: {args.repeat} run(s), {mix}")
        for name in args.only:
            log(f"scenario {name} ...")
            if name == "restart":
                for i in range(args.repeat):
                    results.append(await harness.restart())
                    r = results[-1]
                    log(f"restart {i + 1}/{args.repeat}: {r['requests']} requests, {r['failed']} failed, "
                        f"{r['no_answer']} without answer, p99 {r['p99_ms']} ms, max {r['max_ms']} ms, "
                        f"restart {r['seconds']} s")
                    if i < args.repeat - 1:
                        print(dumps(r), flush=True)
            elif name == "deploy":
                results.append(await harness.deploy())
            elif name == "kill":
                for i in range(args.repeat):
                    results.append(await harness.kill())
                    r = results[-1]
                    log(f"kill {i + 1}/{args.repeat}: {r['requests']} requests, failed by method "
                        f"{r['failed_by_method']}, ready again after {r['ready_after_s']} s")
                    if i < args.repeat - 1:
                        print(dumps(r), flush=True)
            elif name == "mysql":
                results.append(await harness.outage("MySQL stopped", args.outage, harness.mysql.stop,
                                                    harness.mysql.start))
            elif name == "mysql-freeze":
                results.append(await harness.outage("MySQL frozen (SIGSTOP)", args.outage / 2,
                                                    harness.mysql.freeze, harness.mysql.thaw))
            elif name == "redis":
                results.append(await harness.outage("Redis stopped", args.outage, harness.redis.stop,
                                                    harness.redis.start))
            log(f"scenario {name}: done")
            print(dumps(results[-1]), flush=True)
    except BaseException:
        if harness.dep is not None:
            log("failure; the stack's logs:\n" + harness.dep.logs(15))
        raise
    finally:
        harness.teardown()
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return results


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("SWIPER_"):
        raise argparse.ArgumentTypeError(f"expected SWIPER_NAME=VALUE, got {text!r}")
    return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--procs", type=int, default=3, help="server processes (default 3)")
    parser.add_argument("--rate", type=float, default=250, help="requests/s through nginx (default 250)")
    parser.add_argument("--connections", type=int, default=16, help="client keep-alive connections (default 16)")
    parser.add_argument("--outage", type=float, default=30, help="seconds MySQL/Redis stay down (default 30)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rolling restarts in the restart scenario, kills in the kill scenario (default 1)")
    parser.add_argument("--write-heavy", action="store_true", help="80%% POSTs instead of 30%%")
    parser.add_argument("--workload", choices=("swipes", "profile"), default="swipes",
                        help="swipes: the mix of swipes, feed, profile, users, hot ranking (default); profile: "
                             "GET 50%% and PATCH 25%% /api/v1/profile, GET 25%% /api/v1/vip/levels")
    parser.add_argument("--client-timeout", type=float, default=60,
                        help="seconds the client waits for an answer before it records none (default 60, well "
                             "above the drain timeout, so a hung request shows as one)")
    parser.add_argument("--set", action="append", default=[], metavar="SWIPER_X=VALUE", type=_setting,
                        help="a setting for the stack's env file, e.g. SWIPER_EVENT_LOOP=asyncio (repeatable; the "
                             "harness turns the rate limits off, SWIPER_RATE_LIMIT_ENABLED=true turns them on)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs) afterwards")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    results = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(dumps(results))
    ok = all(r.get("failed", 0) == 0 and r.get("exact", True) and r.get("exit", 0) == 0
             for r in results if r["scenario"].startswith(("rolling", "deploy")))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
