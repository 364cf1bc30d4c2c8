"""The benchmarks' shared helper (bench.lib): reading wrk's output, the tables, ports, the ceiling's nginx block."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bench import full
from bench.lib import report, wrk
from bench.lib.data import BenchDb, PhoneBlocks, Slices
from bench.lib.report import Measurement
from bench.lib.stack import Layout, add_bare_block
from bench.lib.system import BenchError, CpuMeter, find_port_block
from tests.conftest import ROOT

SWIPES_OUTPUT = """\
Running 2s test @ http://127.0.0.1:19005/api/v1/swipes
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    41.93ms   10.93ms  78.25ms   68.87%
    Req/Sec    94.60     17.32   121.00     70.00%
  Latency Distribution
     50%  850.00us
     75%   48.94ms
     90%    1.02s
     99%    1.50m
  379 requests in 2.01s, 105.48KB read
  Socket errors: connect 0, read 2, write 0, timeout 11
  Non-2xx or 3xx responses: 7
Requests/sec:    188.75
Transfer/sec:     52.53KB
swipes-lua: generated=388 ok=379 non2xx=0 badbody=0 wrapped=0
"""

CLEAN_OUTPUT = """\
Running 1m test @ http://127.0.0.1:19006/
  2 threads and 100 connections
  Latency Distribution
     50%   13.50ms
     75%   16.21ms
     90%   19.96ms
     99%   29.04ms
  474336 requests in 1.00m, 90.28MB read
Requests/sec:   7905.60
Transfer/sec:      1.50MB
"""


def test_wrk_output_is_read_with_every_unit_error_kind_and_lua_counter() -> None:
    r = wrk.parse(SWIPES_OUTPUT)
    assert (r.requests, r.seconds, r.rps) == (379, 2.01, 188.75)
    assert r.latency_ms == {50: 0.85, 75: 48.94, 90: 1020.0, 99: 90_000.0}
    assert r.socket_errors == {"read": 2, "timeout": 11}
    assert r.non2xx == 7
    assert r.errors == "read 2, timeout 11, non-2xx 7"
    assert r.counters == {"swipes-lua": {"generated": 388, "ok": 379, "non2xx": 0, "badbody": 0, "wrapped": 0}}
    assert r.counter("swipes-lua", "ok") == 379
    with pytest.raises(BenchError):
        r.counter("login-lua", "sessions")


def test_a_clean_run_has_no_errors_and_minutes_are_seconds() -> None:
    r = wrk.parse(CLEAN_OUTPUT)
    assert (r.requests, r.seconds, r.p50, r.p99) == (474336, 60.0, 13.5, 29.04)
    assert (r.errors, r.non2xx, r.counters) == ("0", 0, {})


@pytest.mark.parametrize("text", ["", "unable to connect to 127.0.0.1:1 Connection refused\n",
                                  CLEAN_OUTPUT.replace("     99%   29.04ms\n", "")])
def test_what_is_not_a_full_latency_output_is_refused(text: str) -> None:
    with pytest.raises(BenchError):
        wrk.parse(text)


def test_a_python_load_client_reports_in_the_same_figures() -> None:
    r = wrk.Result.from_samples([float(ms) for ms in range(100, 0, -1)], 2.0, socket_errors={"read": 1, "connect": 0},
                                non2xx=3)
    assert (r.requests, r.rps, r.latency_ms) == (100, 50.0, {50: 50.0, 75: 75.0, 90: 90.0, 99: 99.0})
    assert r.errors == "read 1, non-2xx 3"
    assert wrk.Result.from_samples([7.0], 1.0).latency_ms == {50: 7.0, 75: 7.0, 90: 7.0, 99: 7.0}
    with pytest.raises(BenchError):
        wrk.Result.from_samples([], 1.0)


def test_a_benchmark_can_have_a_database_of_its_own() -> None:
    db = BenchDb("mysql://root:@127.0.0.1:3307/swiper_bench", "redis://127.0.0.1:6379/14", "swiper_bench:", ("x",))
    other = db.with_database("swiper_bench_1m")
    assert (other.name, other.mysql_port, other.user, other.redis_prefix) == ("swiper_bench_1m", 3307, "root",
                                                                              "swiper_bench:")


def test_commands_are_printed_without_tokens_and_with_the_work_directory_as_a_name(tmp_path: Path) -> None:
    argv = ["wrk", "-H", "Authorization: Bearer aaa.bbb.ccc", "-s", str(ROOT / "bench/lua/swipes.lua"),
            "http://127.0.0.1:1/x?a=1", "--", str(tmp_path / "fixtures/swipers.tokens"), "0", "10"]
    assert wrk.readable(argv, tmp_path) == ("wrk -H 'Authorization: Bearer $TOKEN' -s bench/lua/swipes.lua "
                                            "'http://127.0.0.1:1/x?a=1' -- $WORK/fixtures/swipers.tokens 0 10")


def test_a_table_has_a_rule_with_one_alignment_per_column() -> None:
    assert report.table(["path", "req/s"], [["a", 1.5], ["b", "2"]], "lr") == (
        "| path | req/s |\n|---|---:|\n| a | 1.5 |\n| b | 2 |")
    with pytest.raises(ValueError):
        report.table(["path", "req/s"], [["a"]], "lr")
    with pytest.raises(ValueError):
        report.table(["path", "req/s"], [], "l")


def test_latencies_print_as_wrk_prints_them() -> None:
    assert [report.fmt_ms(v) for v in (0.85, 13.5, 999.994, 1000.0, 1510.0)] == [
        "0.85ms", "13.50ms", "999.99ms", "1.00s", "1.51s"]


def measurement(rps: float, ceiling: float) -> Measurement:
    return Measurement(wrk.parse(CLEAN_OUTPUT.replace("7905.60", str(rps))), ceiling)


def test_the_results_table_gives_each_row_its_ratio_to_its_ceiling() -> None:
    text = report.results_table([("ceiling", None, measurement(8000, 8000)),
                                 ("profile", None, measurement(4000, 8000))])
    assert text.splitlines() == [
        "| path | req/s | p50 | p99 | errors | ratio to ceiling |", "|---|---:|---:|---:|---|---:|",
        "| ceiling | 8000.00 | 13.50ms | 29.04ms | 0 | 1.00 |", "| profile | 4000.00 | 13.50ms | 29.04ms | 0 | 0.50 |"]
    with_rounds = report.results_table([("profile", 1, measurement(4000, 8000)), ("profile", 2, measurement(1, 2))])
    assert with_rounds.splitlines()[0].startswith("| path | round | req/s |")
    assert with_rounds.splitlines()[3] == "| profile | 2 | 1.00 | 13.50ms | 29.04ms | 0 | 0.50 |"


def test_the_comparison_shows_both_revisions_per_round_and_the_change_of_the_median_ratio() -> None:
    # base: ratios 0.50, 0.60; this: 0.45, 0.66 (each against its own ceiling of the round)
    figures = {("ceiling", "base", 1): measurement(8000, 8000), ("ceiling", "this", 1): measurement(6000, 6000),
               ("profile", "base", 1): measurement(4000, 8000), ("profile", "this", 1): measurement(2700, 6000),
               ("ceiling", "base", 2): measurement(5000, 5000), ("ceiling", "this", 2): measurement(5000, 5000),
               ("profile", "base", 2): measurement(3000, 5000), ("profile", "this", 2): measurement(3300, 5000)}
    text = report.compare_tables([("ceiling", "ceil"), ("profile", "prof")], ["base", "this"], 2,
                                 lambda key, rev, rnd: figures[key, rev, rnd])
    lines = text.splitlines()
    assert lines[0] == ("| path | round | base: req/s | p50 | p99 | errors | ratio | this: req/s | p50 | p99 | errors "
                        "| ratio | change in ratio |")
    assert lines[2].startswith("| ceil | 1 | 8000.00 |") and lines[2].endswith("| 1.00 | — |")
    assert lines[4] == ("| prof | 1 | 4000.00 | 13.50ms | 29.04ms | 0 | 0.50 | 2700.00 | 13.50ms | 29.04ms | 0 | 0.45 "
                        "| -0.05 (-10.0%) |")
    assert lines[5].endswith("| 0.60 | 3300.00 | 13.50ms | 29.04ms | 0 | 0.66 | +0.06 (+10.0%) |")
    assert lines[-1] == "| prof | 0.550 (0.50, 0.60) | 0.555 (0.45, 0.66) | +0.01 (+0.9%) |"
    assert not any(line.startswith("| ceil |") for line in lines[lines.index("Median over the rounds:"):])
    assert "CPU of the servers" not in text  # no run measured any


def test_the_comparison_gives_the_servers_cpu_per_answer_when_the_runs_measured_it() -> None:
    figures = {}
    for (key, rev, rnd), (rps, cpu_s) in {("ceiling", "base", 1): (8000, 1.0), ("ceiling", "this", 1): (8000, 1.0),
                                          ("profile", "base", 1): (4000, 2.0), ("profile", "this", 1): (4000, 1.8),
                                          ("profile", "base", 2): (4000, 2.2), ("profile", "this", 2): (4000, 2.0),
                                          ("ceiling", "base", 2): (8000, 1.0), ("ceiling", "this", 2): (8000, 1.0)}.items():
        m = measurement(rps, 8000)
        m.result.cpu = CpuMeter({})
        m.result.cpu.used = {"1": cpu_s / 2, "2": cpu_s / 2}
        figures[key, rev, rnd] = m
    requests = figures["profile", "base", 1].result.requests  # the parsed output's count, whatever the rps
    lines = report.compare_tables([("ceiling", "ceil"), ("profile", "prof")], ["base", "this"], 2,
                                  lambda key, rev, rnd: figures[key, rev, rnd]).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("CPU of the servers"))
    assert lines[start + 2] == "| path | base | this | change |"
    base = [1e6 * s / requests for s in (2.0, 2.2)]
    this = [1e6 * s / requests for s in (1.8, 2.0)]
    assert lines[-1] == (f"| prof | {base[0]:.0f}, {base[1]:.0f} | {this[0]:.0f}, {this[1]:.0f} | "
                         f"{report.fmt_change(sum(base) / 2, sum(this) / 2)} |")
    negative = figures["profile", "this", 2].result
    negative.cpu.used = {"1": -1.0}  # a counter that went backwards (a pid reused) is no figure
    assert negative.cpu_us_per_request is None


def test_every_swipe_run_and_login_run_gets_its_own_targets_and_phones() -> None:
    slices = Slices(100_000, 8)
    taken = [slices.take() for _ in range(8)]
    assert taken[0] == (0, 12_500) and taken[-1] == (87_500, 12_500)
    assert all(a[0] + a[1] <= b[0] for a, b in zip(taken, taken[1:]))
    with pytest.raises(BenchError):
        Slices(3, 4)
    phones = PhoneBlocks(4)
    blocks = [phones.take(threads=2) for _ in range(4)]
    assert blocks[0] == (1_000_000, 12_375_000)
    assert blocks[-1][0] + 2 * blocks[-1][1] - 1 <= PhoneBlocks.LAST  # the last thread's last phone still fits
    assert all(a[0] + 2 * a[1] <= b[0] for a, b in zip(blocks, blocks[1:]))


def test_a_port_block_in_use_or_in_the_ephemeral_range_is_refused_and_the_search_skips_it() -> None:
    base = find_port_block(4)
    assert base >= 19000 and base % 20 == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 3))
        taken.listen()
        with pytest.raises(BenchError, match="not all free"):
            find_port_block(4, base)
        assert find_port_block(4) != base
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    with pytest.raises(BenchError):
        find_port_block(4, low - 3)


def test_the_ceiling_gets_a_copy_of_swipers_server_block_behind_the_same_nginx() -> None:
    layout = Layout(19000, 2)
    template = (ROOT / "nginx.conf").read_text()
    conf = add_bare_block(template, layout)
    assert conf.startswith(template[:template.index("    # <<< site")])
    added = conf[len(template[:template.index("    # <<< site")]):]
    assert "upstream bare {" in added and "@@UPSTREAM_SERVERS@@" not in added
    assert "server 127.0.0.1:19003 max_fails=0;\n        server 127.0.0.1:19004 max_fails=0;" in added
    assert "listen 127.0.0.1:19006;" in added and "proxy_pass http://bare;" in added
    assert "bare.access.log" in added and "proxy_pass http://swiper;" not in added
    assert added.count("keepalive 32;") == 1  # the same upstream settings as Swiper's
    with pytest.raises(BenchError):
        add_bare_block(template.replace("upstream swiper {", "upstream other {"), layout)


@pytest.mark.parametrize("args", [["--only", "profile,chat"], ["--threads", "3", "--connections", "2"],
                                  ["--duration", "0"], ["--swipers", "1"], ["--repeat", "0"]])
def test_bad_options_are_refused_before_anything_starts(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        full.parse_args(args)
    assert exc.value.code == 2


def test_only_keeps_the_rows_in_table_order() -> None:
    assert full.parse_args(["--only", "swipes,profile"]).rows == ["profile", "swipes"]
    assert full.parse_args([]).rows == list(full.ROWS)
