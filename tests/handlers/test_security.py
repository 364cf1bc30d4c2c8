"""OWASP API Top 10 checks: object- and function-level authorization, mass assignment, data exposure, sizes."""
from __future__ import annotations

import json
import re

import pytest

from handlers.openapi import openapi_path
from models import Match, Swipe, User
from server import ROUTES
from services.swipes import pair
from tests.handlers.test_swipes import swipe
from tests.support.client import assert_error

PUBLIC_FIELDS = {"id", "nickname", "gender", "age", "avatar", "location", "distance_km", "photos"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def concrete(pattern: str, handler) -> str:
    return re.sub(r"\{[^}]+\}", "1", openapi_path(pattern, handler))


def authed_operations() -> list[tuple[str, str]]:
    return [(method, concrete(pattern, handler)) for pattern, handler in ROUTES if handler.auth_required
            for method in handler.implemented_methods()]


@pytest.mark.parametrize("method, path", authed_operations())
async def test_every_authenticated_operation_refuses_anonymous_and_forged(client, method, path):
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    assert_error(await client.request(method, path, body=body), 401, "not_authenticated")
    assert_error(await client.request(method, path, body=body, token="e30.e30.forged"), 401, "not_authenticated")


@pytest.mark.parametrize("method, path", [(m, concrete(p, h)) for p, h in ROUTES for m in METHODS
                                          if m not in h.implemented_methods()])
async def test_every_unsupported_method_is_405(client, method, path):
    resp = await client.request(method, path, body=b"{}" if method in ("POST", "PUT", "PATCH") else None)
    assert_error(resp, 405, "method_not_allowed")


async def test_no_cross_user_reads_or_writes(client, make_person):
    a, b, c = await make_person(level=3), await make_person(gender="male", level=3), await make_person(level=3)
    await swipe(client, b, c)
    await swipe(client, c, b)  # b and c are matched
    await swipe(client, b, a, "superlike")
    # a cannot end someone else's match, with either id
    for other in (b, c):
        assert_error(await client.delete(f"/api/v1/matches/{other.id}", token=a.token), 404, "not_found")
    low, high = pair(b.id, c.id)
    assert await Match.select().where((Match.user_a == low) & (Match.user_b == high)).aio_count() == 1
    # a cannot rewind b's swipe: a has none of its own
    assert_error(await client.delete("/api/v1/swipes/last", token=a.token), 404, "not_found")
    assert await Swipe.select().where(Swipe.user_id == b.id).aio_count() == 2
    # lists are always the caller's own
    assert (await client.get("/api/v1/matches", token=a.token)).data["items"] == []
    assert [i["id"] for i in (await client.get("/api/v1/likes/received", token=c.token)).data["items"]] == []
    # a's PATCH touches only a
    before = await User.aio_get(User.id == b.id)
    await client.patch("/api/v1/profile", {"location": "拉萨"}, token=a.token)
    assert (await User.aio_get(User.id == b.id)).location == before.location


@pytest.mark.parametrize("field, value", [("vip_level", 3), ("vip_expires_at", "2099-01-01T00:00:00Z"),
                                          ("phone", "13000000000"), ("id", 1), ("avatar_key", "x.jpg"),
                                          ("rewind_floor", 0), ("created_at", "2020-01-01"), ("vip", {"level": 3}),
                                          ("is_admin", True)])
async def test_mass_assignment_is_refused_and_not_written(client, make_person, field, value):
    me = await make_person()
    before = (await User.aio_get(User.id == me.id)).__data__
    resp = await client.patch("/api/v1/profile", {field: value, "nickname": "改名" + str(me.id)}, token=me.token)
    assert field in assert_error(resp, 400, "invalid_params")["data"]["fields"]
    assert (await User.aio_get(User.id == me.id)).__data__ == before


async def test_public_views_never_leak_private_fields(client, make_person):
    me = await make_person(level=3, city="乌鲁木齐")
    others = [await make_person(gender="male", city="乌鲁木齐", level=1) for _ in range(2)]
    for other in others:
        await swipe(client, other, me, "superlike")
    await swipe(client, me, others[0])
    responses = {
        "user": await client.get(f"/api/v1/users/{others[1].id}", token=me.token),
        "feed": await client.get("/api/v1/recommendations", token=me.token),
        "matches": await client.get("/api/v1/matches", token=me.token),
        "likes": await client.get("/api/v1/likes/received", token=me.token),
        "hot": await client.get("/api/v1/rankings/hot", token=me.token),
    }
    for name, resp in responses.items():
        assert resp.status == 200, name
        text = json.dumps(resp.json)
        for private in ("phone", "birthday", "preferences", "vip", "dating_gender", "avatar_key"):
            assert f'"{private}"' not in text, (name, private)
    users = [responses["user"].data] + responses["feed"].data["items"] + responses["matches"].data["items"] \
        + responses["likes"].data["items"] + [e["user"] for e in responses["hot"].data["items"]]
    assert users and all(PUBLIC_FIELDS <= set(u) <= PUBLIC_FIELDS | {"matched_at", "action", "swiped_at", "last_message",
                                                                      "unread_count", "read_seq"}
                         for u in users)


@pytest.mark.parametrize("path", ["/api/v1/recommendations", "/api/v1/matches", "/api/v1/likes/received",
                                  "/api/v1/rankings/hot"])
async def test_page_sizes_are_bounded(client, make_person, path):
    me = await make_person(level=3)
    for limit in ("51", "1000000", "0", "-5", "ten", "1e3"):
        assert_error(await client.get(f"{path}?limit={limit}", token=me.token), 400, "invalid_params")
    assert (await client.get(f"{path}?limit=50", token=me.token)).status == 200


@pytest.mark.parametrize("method, path", [("POST", "/api/v1/sms-codes"), ("POST", "/api/v1/sessions"),
                                          ("PUT", "/api/v1/sessions/current"), ("PATCH", "/api/v1/profile"),
                                          ("POST", "/api/v1/swipes")])
async def test_oversized_bodies_are_413_everywhere(client, make_person, settings, method, path):
    me = await make_person()
    big = b'{"x": "' + b"a" * settings.max_json_body + b'"}'
    assert_error(await client.request(method, path, body=big, token=me.token), 413, "payload_too_large")
