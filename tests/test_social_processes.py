"""Mutual likes at the same instant on two server processes: exactly one match per pair, none lost."""
from __future__ import annotations

import asyncio

import pytest

from models import Match
from services.swipes import pair
from tests.conftest import server_env
from tests.support.client import Client
from tests.support.processes import ServerProcess


@pytest.mark.parametrize("isolation", ["repeatable-read", "read-committed"])
async def test_fifty_simultaneous_mutual_likes_across_two_processes(settings, schema, make_person, isolation):
    """Also under read-committed, where InnoDB takes no gap locks (as TiDB has none): the pair row serialises."""
    env = server_env(settings, mysql_isolation=isolation)
    first, second = ServerProcess(env), ServerProcess(env)
    await asyncio.gather(first.start(), second.start())
    try:
        a_side = await asyncio.gather(*[make_person() for _ in range(50)])
        b_side = await asyncio.gather(*[make_person(gender="male") for _ in range(50)])
        one, two = Client(first.base_url), Client(second.base_url)
        requests = []
        for a, b in zip(a_side, b_side):
            requests.append(one.post("/api/v1/swipes", {"user_id": b.id, "action": "like"}, token=a.token))
            requests.append(two.post("/api/v1/swipes", {"user_id": a.id, "action": "like"}, token=b.token))
        answers = await asyncio.gather(*requests)
        assert {r.status for r in answers} == {200}, [r.body for r in answers if r.status != 200][:3]
        for i in range(50):  # exactly one of the two answers saw the other's like
            assert [answers[2 * i].data["matched"], answers[2 * i + 1].data["matched"]].count(True) == 1
        pairs = [pair(a.id, b.id) for a, b in zip(a_side, b_side)]
        for low, high in pairs:
            assert await Match.select().where((Match.user_a == low) & (Match.user_b == high)).aio_count() == 1
        ids = [p.id for p in a_side + b_side]
        assert await Match.select().where(Match.user_a.in_(ids) | Match.user_b.in_(ids)).aio_count() == 50
        for a, b in zip(a_side[:5], b_side[:5]):
            mine = (await two.get("/api/v1/matches", token=a.token)).data["items"]
            theirs = (await one.get("/api/v1/matches", token=b.token)).data["items"]
            assert [m["id"] for m in mine] == [b.id] and [m["id"] for m in theirs] == [a.id]
    finally:
        codes = [first.stop(), second.stop()]  # stop both, whatever the first one says
        assert codes == [0, 0]
