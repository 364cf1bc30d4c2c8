"""Schemathesis against the live OpenAPI document: every check, a valid VIP token, zero failures.

It runs the real ``st`` CLI (with ``schemathesis.toml``) against the in-process app, so the suite-wide asyncio
debug check (tests/support/slow_callbacks.py) also watches every request the fuzzer makes.
``DELETE /api/v1/sessions/current`` and ``DELETE /api/v1/profile`` are left out because they would end the very
session (or account) the fuzzer uses; the HTTP tests cover them.
"""
from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.conftest import unique_city
from tests.support.processes import ROOT

EXAMPLES = 25


async def person_with_a_feed(make_person, client):
    """A VIP whose feed has people, one of whom already liked them (a like then makes a match to follow), and a
    match with a conversation already (so the lists have ids for the links to follow)."""
    city = unique_city()
    person = await make_person(level=3, city=city)
    for index in range(7):
        other = await make_person(gender="male", city=city, dating_gender="female", level=1)
        if index < 2:
            liked = await client.post("/api/v1/swipes", {"user_id": person.id, "action": "like"}, token=other.token)
            assert liked.status == 200
        if index == 1:
            back = await client.post("/api/v1/swipes", {"user_id": other.id, "action": "like"}, token=person.token)
            assert back.data["matched"]
            said = await client.post(f"/api/v1/matches/{person.id}/messages", {"text": "hi", "client_id": "c1"},
                                     token=other.token)
            assert said.status == 200
    return person


async def schemathesis(app_url: str, token: str, phases: str, examples: int = EXAMPLES) -> str:
    st = Path(sys.executable).parent / "st"
    proc = await asyncio.create_subprocess_exec(
        str(st), "run", f"{app_url}/api/v1/openapi.json", "--checks", "all", "--phases", phases,
        "-H", f"Authorization: Bearer {token}", "--max-examples", str(examples),
        "--exclude-path", "/api/v1/sessions/current", "--exclude-operation-id", "deleteMyAccount", "--no-color",
        "--seed", "20261121",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
    assert " passed" in report and "failures" not in report.splitlines()[-1], report[-2000:]
    return report


async def test_schemathesis_finds_nothing(app_url, make_person, client, caplog):
    """The generated phases with one user, then the stateful phase (the document's links) with a fresh one: the
    earlier phases PATCH the profile at random, which would leave the stateful phase an empty feed to follow."""
    with caplog.at_level("INFO", logger="swiper.access"):
        await schemathesis(app_url, (await person_with_a_feed(make_person, client)).token,
                           "examples,coverage,fuzzing")
        stateful = await schemathesis(app_url, (await person_with_a_feed(make_person, client)).token, "stateful",
                                      examples=100)
    covered = re.search(r"API Links:\s+(\d+) covered", stateful)
    assert covered and int(covered.group(1)) >= 3, stateful[-3000:]
    answered = [r.getMessage() for r in caplog.records if r.name == "swiper.access"]
    assert len(answered) > 100 and not [line for line in answered if " 500 " in line]
