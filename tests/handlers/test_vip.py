"""GET /api/v1/vip/levels and GET /api/v1/vip, including expiry."""
from __future__ import annotations

import datetime as dt

from services.vip import grant_membership
from tests.support.client import assert_error

API_TABLE = {
    0: set(),
    1: {"vipflag", "superlike"},
    2: {"superlike", "rewind", "unlimit_like", "liked_me"},
    3: {"vipflag", "superlike", "rewind", "anylocation", "unlimit_like", "liked_me"},
}


async def test_levels_match_the_contract_without_auth(client):
    resp = await client.get("/api/v1/vip/levels")
    assert resp.status == 200
    items = resp.data["items"]
    assert [i["level"] for i in items] == [0, 1, 2, 3]
    assert {i["level"]: set(i["permissions"]) for i in items} == API_TABLE
    assert items[0]["price"] == 0.0 and all(isinstance(i["price"], float) and i["name"] for i in items)


async def test_default_membership_is_level_zero(client, user):
    resp = await client.get("/api/v1/vip", token=user.access_token)
    assert resp.status == 200
    assert resp.data == {"level": 0, "name": "普通用户", "expires_at": None, "permissions": []}


async def test_granted_then_expired_membership(client, user, redis):
    until = dt.datetime.utcnow().replace(microsecond=0) + dt.timedelta(days=30)
    await grant_membership(redis=redis, phone=user.phone, level=2, until=until)
    resp = await client.get("/api/v1/vip", token=user.access_token)
    assert resp.data["level"] == 2 and set(resp.data["permissions"]) == API_TABLE[2]
    assert dt.datetime.fromisoformat(resp.data["expires_at"]) == until.replace(tzinfo=dt.timezone.utc)
    profile = await client.get("/api/v1/profile", token=user.access_token)
    assert profile.data["vip"] == resp.data
    await grant_membership(redis=redis, phone=user.phone, level=2, until=dt.datetime.utcnow() - dt.timedelta(1))
    expired = await client.get("/api/v1/vip", token=user.access_token)
    assert expired.data == {"level": 0, "name": "普通用户", "expires_at": None, "permissions": []}


async def test_my_vip_needs_a_token(client):
    assert_error(await client.get("/api/v1/vip"), 401, "not_authenticated")
