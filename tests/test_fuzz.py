"""Schemathesis against the live OpenAPI document: every check, a valid VIP token, zero failures.

It runs the real ``st`` CLI (with ``schemathesis.toml``) against a real ``server.py`` process on this run's
database and Redis. ``DELETE /api/v1/sessions/current`` is left out because it would end the very session the
fuzzer uses; the HTTP tests cover it.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.conftest import server_env
from tests.support.processes import ROOT, ServerProcess

EXAMPLES = 25


async def test_schemathesis_finds_nothing(settings, schema, make_person):
    server = ServerProcess(server_env(settings, sms_ip_day_limit="100000", access_token_ttl="3600"))
    await server.start()
    try:
        person = await make_person(level=3)
        st = Path(sys.executable).parent / "st"
        proc = await asyncio.create_subprocess_exec(
            str(st), "run", f"{server.base_url}/api/v1/openapi.json", "--checks", "all",
            "-H", f"Authorization: Bearer {person.token}", "--max-examples", str(EXAMPLES),
            "--exclude-path", "/api/v1/sessions/current", "--no-color", "--seed", "20261121",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
        report = out.decode(errors="replace")
        assert proc.returncode == 0, report[-6000:]
        assert " passed" in report and "failures" not in report.splitlines()[-1], report[-2000:]
    finally:
        assert server.stop() == 0
    assert " 500 " not in server.output(), "the server answered 500 during fuzzing"
