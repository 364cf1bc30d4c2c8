"""The feed query's plan for ``bench.social``: EXPLAIN, ANALYZE FORMAT=JSON and the handler reads of one
execution, and the server time of the query and two rewrites of it (``bench/feed_sql.py``)."""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from bench.lib.data import BenchDb

VARIANTS = (("feed", ""), ("feed", "exists_to_in=off"), ("feed_covering", ""),
            ("feed_covering", "exists_to_in=off"), ("feed_watermark", ""), ("feed_watermark", "exists_to_in=off"))
RUNS = 21


def _unescape(cell: str) -> str:
    """A cell of the mariadb client's batch output (it escapes newline, tab, NUL and backslash)."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m.group(1), m.group(1)), cell)


def _analyze(db: BenchDb, sql: str, prefix: str = "", runs: int = 1) -> list[dict]:
    rows = db.sql(prefix + " ".join(f"ANALYZE FORMAT=JSON {sql};" for _ in range(runs)))
    return [json.loads(_unescape(row[0])) for row in rows]


def _main_table(plan: dict) -> str:
    t = plan["query_block"]["nested_loop"][0]["table"]
    ms = round(t.get("r_table_time_ms", 0) + t.get("r_other_time_ms", 0), 2)
    return (f"table {t.get('table_name')}: {t.get('access_type')} on {t.get('key')} "
            f"({', '.join(t.get('used_key_parts', []))}), rows read {t.get('r_rows')}, kept {t.get('r_filtered')}%, "
            f"{t.get('r_engine_stats', {}).get('pages_accessed', '?')} pages, {ms} ms")


def _subqueries(plan: dict) -> str:
    out = []
    for sub in plan["query_block"].get("subqueries", []):
        if "materialization" in sub:
            m = sub["materialization"]
            t = m["query_block"]["nested_loop"][0]["table"]
            out.append(f"subquery materialised ({m.get('r_strategy')}): {t.get('key')} {t.get('r_rows')} rows once, "
                       f"probed {m.get('r_loops')} times")
        else:
            t = sub.get("query_block", sub)["nested_loop"][0]["table"]
            out.append(f"dependent subquery: {t.get('access_type')} on {t.get('key')}, {t.get('r_loops')} probes")
    return "; ".join(out)


def plan_lines(db: BenchDb, fixtures: Path, viewer_id: int, viewer_swiped: int) -> list[str]:
    feed = (fixtures / "feed.sql").read_text().strip()
    lines = [f"Feed query plan (viewer {viewer_id}, {viewer_swiped} swipes):"]
    lines += ["  EXPLAIN: " + "\t".join(row) for row in db.sql(f"EXPLAIN {feed}")]
    plan = _analyze(db, feed)[0]
    lines.append(f"  ANALYZE: {_main_table(plan)}; {_subqueries(plan)}; "
                 f"total {round(plan['query_block'].get('r_total_time_ms', 0), 2)} ms")
    # one execution, counted as the difference of the session's handler counters around it (minus what the
    # SHOW itself counts), which needs no RELOAD privilege as FLUSH STATUS would
    show = "SHOW SESSION STATUS LIKE 'Handler_read%';"
    snaps: list[dict[str, int]] = []
    for row in db.sql(f"{show} {show} {feed}; {show}"):
        if row[0] == "Handler_read_first":
            snaps.append({})
        if len(row) == 2 and row[0].startswith("Handler_read") and snaps:
            snaps[-1][row[0]] = int(row[1])
    s0, s1, s2 = snaps
    reads = {k: s2[k] - s1[k] - (s1[k] - s0[k]) for k in s2}
    lines.append("  one execution: " + ", ".join(f"{k}={v}" for k, v in reads.items() if v > 0))
    lines.append(f"  server time per execution (median of {RUNS} ANALYZE runs), query / optimizer_switch change:")
    for name, switch in VARIANTS:
        path = fixtures / f"{name}.sql"
        if not path.exists():
            continue
        prefix = f"SET SESSION optimizer_switch='{switch}'; " if switch else ""
        times = [p["query_block"]["r_total_time_ms"] for p in _analyze(db, path.read_text().strip(), prefix, RUNS)]
        lines.append(f"    {name:<16} {switch:<22} {statistics.median(times):.2f} ms")
    return lines
