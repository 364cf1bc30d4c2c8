"""Schemathesis against the live OpenAPI document: every check, a valid VIP token, zero failures.

It runs the real ``st`` CLI (with ``schemathesis.toml``) against the in-process app, so the suite-wide asyncio
debug check (tests/support/slow_callbacks.py) also watches every request the fuzzer makes. ``DELETE /api/v1/sessions/current`` is left out because it would end the very session the
fuzzer uses; the HTTP tests cover it.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.support.processes import ROOT

EXAMPLES = 25


async def test_schemathesis_finds_nothing(app_url, make_person, caplog):
    person = await make_person(level=3)
    st = Path(sys.executable).parent / "st"
    with caplog.at_level("INFO", logger="swiper.access"):
        proc = await asyncio.create_subprocess_exec(
            str(st), "run", f"{app_url}/api/v1/openapi.json", "--checks", "all",
            "-H", f"Authorization: Bearer {person.token}", "--max-examples", str(EXAMPLES),
            "--exclude-path", "/api/v1/sessions/current", "--no-color", "--seed", "20261121",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
        report = out.decode(errors="replace")
        assert proc.returncode == 0, report[-6000:]
    assert " passed" in report and "failures" not in report.splitlines()[-1], report[-2000:]
    answered = [r.getMessage() for r in caplog.records if r.name == "swiper.access"]
    assert len(answered) > 100 and not [line for line in answered if " 500 " in line]
