"""GET/PATCH /api/v1/profile and GET /api/v1/users/{id}: validation, all-or-nothing writes, views, cache."""
from __future__ import annotations

import asyncio
import datetime as dt
import secrets

import pytest

from services.vip import grant_membership
from tests.conftest import login
from tests.support.client import assert_error
from tests.support.dates import on_one_server_day, years_ago

PROFILE = "/api/v1/profile"


def nickname() -> str:
    return "测试" + secrets.token_hex(5)


async def test_owner_view_shape(client, user):
    resp = await client.get(PROFILE, token=user.access_token)
    assert resp.status == 200
    data = resp.data
    assert set(data) == {"id", "phone", "nickname", "gender", "birthday", "age", "avatar", "location", "vip",
                         "preferences", "photos"}
    assert data["id"] == user.user_id and "****" in data["phone"]
    assert set(data["vip"]) == {"level", "name", "expires_at", "permissions"}
    assert set(data["preferences"]) == {"dating_gender", "location", "min_distance", "max_distance",
                                        "min_dating_age", "max_dating_age", "vibration", "only_match",
                                        "auto_play"}


async def test_patch_everything_and_merge_preferences(client, user):
    name = nickname()
    body = {"nickname": f"  {name}  ", "gender": "female", "birthday": "1998-04-02", "location": "北京",
            "preferences": {"dating_gender": "male", "min_dating_age": 25, "max_dating_age": 35,
                            "min_distance": 0, "max_distance": 1000, "vibration": False}}
    resp = await client.patch(PROFILE, body, token=user.access_token)
    assert resp.status == 200, resp.body
    data = resp.data
    assert data["nickname"] == name and data["gender"] == "female" and data["birthday"] == "1998-04-02"
    assert data["location"] == "北京" and data["age"] >= 28
    prefs = data["preferences"]
    assert (prefs["dating_gender"], prefs["min_dating_age"], prefs["max_dating_age"], prefs["vibration"]) == (
        "male", 25, 35, False)
    again = await client.patch(PROFILE, {"preferences": {"auto_play": False}}, token=user.access_token)
    prefs = again.data["preferences"]
    assert prefs["auto_play"] is False and prefs["vibration"] is False and prefs["min_dating_age"] == 25
    assert (await client.get(PROFILE, token=user.access_token)).data == again.data


async def test_empty_patch_changes_nothing(client, user):
    before = (await client.get(PROFILE, token=user.access_token)).data
    resp = await client.patch(PROFILE, {}, token=user.access_token)
    assert resp.status == 200 and resp.data == before


@pytest.mark.parametrize("body, fields", [
    ({"id": 5}, {"id"}), ({"phone": "13800138000"}, {"phone"}), ({"vip": {"level": 3}}, {"vip"}),
    ({"vip_level": 3}, {"vip_level"}), ({"avatar": "x"}, {"avatar"}), ({"is_admin": True}, {"is_admin"}),
    ({"nickname": ""}, {"nickname"}), ({"nickname": "   "}, {"nickname"}), ({"nickname": "x" * 33}, {"nickname"}),
    ({"nickname": 42}, {"nickname"}), ({"nickname": "a\nb"}, {"nickname"}), ({"gender": "other"}, {"gender"}),
    ({"gender": None}, {"gender"}), ({"birthday": "1998-02-30"}, {"birthday"}),
    ({"birthday": "02/04/1998"}, {"birthday"}), ({"birthday": 19980402}, {"birthday"}),
    ({"location": ""}, {"location"}), ({"location": ["北京"]}, {"location"}),
    ({"preferences": []}, {"preferences"}), ({"preferences": {"colour": "red"}}, {"preferences.colour"}),
    ({"preferences": {"dating_gender": "any"}}, {"preferences.dating_gender"}),
    ({"preferences": {"min_dating_age": 17}}, {"preferences.min_dating_age"}),
    ({"preferences": {"max_dating_age": 101}}, {"preferences.max_dating_age"}),
    ({"preferences": {"min_dating_age": 40, "max_dating_age": 30}}, {"preferences.min_dating_age"}),
    ({"preferences": {"min_dating_age": 50}}, {"preferences.min_dating_age"}),
    ({"preferences": {"min_distance": -1}}, {"preferences.min_distance"}),
    ({"preferences": {"max_distance": 1001}}, {"preferences.max_distance"}),
    ({"preferences": {"min_distance": 20, "max_distance": 5}}, {"preferences.min_distance"}),
    ({"preferences": {"min_dating_age": True}}, {"preferences.min_dating_age"}),
    ({"preferences": {"min_dating_age": 20.5}}, {"preferences.min_dating_age"}),
    ({"preferences": {"vibration": "yes"}}, {"preferences.vibration"}),
    ({"preferences": {"vibration": 1}}, {"preferences.vibration"}),
])
async def test_invalid_patches_write_nothing(client, user, body, fields):
    before = (await client.get(PROFILE, token=user.access_token)).data
    # a valid change rides along: it must not be written either
    resp = await client.patch(PROFILE, {"location": "成都", **body}, token=user.access_token)
    assert set(assert_error(resp, 400, "invalid_params")["data"]["fields"]) == fields
    assert (await client.get(PROFILE, token=user.access_token)).data == before


@pytest.mark.parametrize("years, days, age", [(18, 0, 18), (18, -1, None), (101, -1, 100), (101, 0, None)],
                         ids=["18-today", "18-tomorrow", "101-tomorrow", "101-today"])
@on_one_server_day
async def test_ages_count_from_today_in_the_servers_time_zone(client, user, years, days, age):
    """18 to 100 inclusive, on the server's date (Asia/Shanghai), whatever the machine's date is."""
    before = (await client.get(PROFILE, token=user.access_token)).data
    birthday = years_ago(years, days).isoformat()  # now, not at collection: the day may have turned since
    resp = await client.patch(PROFILE, {"birthday": birthday, "location": "成都"}, token=user.access_token)
    if age is None:
        assert set(assert_error(resp, 400, "invalid_params")["data"]["fields"]) == {"birthday"}
        assert (await client.get(PROFILE, token=user.access_token)).data == before
    else:
        assert resp.status == 200, resp.body
        assert (resp.data["birthday"], resp.data["age"], resp.data["location"]) == (birthday, age, "成都")


async def test_several_problems_reported_together(client, user):
    resp = await client.patch(PROFILE, {"gender": "x", "phone": "1", "preferences": {"vibration": 3}},
                              token=user.access_token)
    assert set(assert_error(resp, 400, "invalid_params")["data"]["fields"]) == {
        "gender", "phone", "preferences.vibration"}


@pytest.mark.parametrize("raw", [b"{", b"[1]", b"", b"null", b'"x"'])
async def test_patch_bad_json(client, user, raw):
    assert_error(await client.request("PATCH", PROFILE, body=raw, token=user.access_token), 400, "invalid_params")


async def test_nickname_taken_is_409_and_exact(client, sms_stub, user):
    other = await login(client, sms_stub)
    name = "Alice" + secrets.token_hex(3)
    assert (await client.patch(PROFILE, {"nickname": name}, token=user.access_token)).status == 200
    resp = await client.patch(PROFILE, {"nickname": name, "location": "上海"}, token=other.access_token)
    assert assert_error(resp, 409, "conflict")["data"]["fields"] == {"nickname": "taken"}
    assert (await client.get(PROFILE, token=other.access_token)).data["location"] != "上海"
    # uniqueness is by exact value: another case is another nickname
    assert (await client.patch(PROFILE, {"nickname": name.lower()}, token=other.access_token)).status == 200


async def test_concurrent_claims_of_one_nickname(client, sms_stub):
    sessions = await asyncio.gather(*[login(client, sms_stub) for _ in range(5)])
    name = nickname()
    results = await asyncio.gather(*[client.patch(PROFILE, {"nickname": name}, token=s.access_token)
                                     for s in sessions])
    assert sorted(r.status for r in results) == [200] + [409] * 4


async def test_anylocation_needed_for_another_city(client, user, redis):
    await client.patch(PROFILE, {"location": "北京"}, token=user.access_token)
    resp = await client.patch(PROFILE, {"preferences": {"location": "上海"}}, token=user.access_token)
    assert assert_error(resp, 403, "permission_denied")["data"] == {"permission": "anylocation"}
    same = await client.patch(PROFILE, {"preferences": {"location": "北京"}}, token=user.access_token)
    assert same.status == 200
    both = await client.patch(PROFILE, {"location": "广州", "preferences": {"location": "广州"}},
                              token=user.access_token)
    assert both.status == 200
    moved = await client.patch(PROFILE, {"location": "深圳"}, token=user.access_token)  # moving is always allowed
    assert moved.status == 200, moved.body
    assert moved.data["location"] == "深圳" and moved.data["preferences"]["location"] == "广州"
    refused = await client.patch(PROFILE, {"location": "珠海", "preferences": {"location": "广州"}},
                                 token=user.access_token)  # but a preference sent with it is checked
    assert_error(refused, 403, "permission_denied")
    assert (await client.get(PROFILE, token=user.access_token)).data["location"] == "深圳"
    until = dt.datetime.utcnow() + dt.timedelta(days=1)
    await grant_membership(redis=redis, phone=user.phone, level=3, until=until)
    allowed = await client.patch(PROFILE, {"preferences": {"location": "上海"}}, token=user.access_token)
    assert allowed.status == 200 and allowed.data["preferences"]["location"] == "上海"
    await grant_membership(redis=redis, phone=user.phone, level=3, until=dt.datetime.utcnow() - dt.timedelta(1))
    expired = await client.patch(PROFILE, {"preferences": {"location": "杭州"}}, token=user.access_token)
    assert_error(expired, 403, "permission_denied")


async def test_read_after_write_is_never_stale(client, user):
    for i in range(10):
        await client.get(PROFILE, token=user.access_token)  # warm the cache
        name = nickname()
        patched = await client.patch(PROFILE, {"nickname": name}, token=user.access_token)
        reads = await asyncio.gather(*[client.get(PROFILE, token=user.access_token) for _ in range(5)])
        assert patched.data["nickname"] == name
        assert {r.data["nickname"] for r in reads} == {name}


async def test_public_view_hides_private_fields(client, sms_stub, user):
    await client.patch(PROFILE, {"birthday": "1990-01-01", "gender": "male", "location": "北京"},
                       token=user.access_token)
    other = await login(client, sms_stub)
    resp = await client.get(f"/api/v1/users/{user.user_id}", token=other.access_token)
    assert resp.status == 200
    assert set(resp.data) == {"id", "nickname", "gender", "age", "avatar", "location", "distance_km", "photos"}
    assert resp.data["gender"] == "male" and resp.data["age"] >= 35
    assert user.phone[-4:] not in resp.body.decode()


@pytest.mark.parametrize("path", ["/api/v1/users/999999999", "/api/v1/users/0", "/api/v1/users/abc",
                                  "/api/v1/users/-1", "/api/v1/users/99999999999999999999999",
                                  "/api/v1/users/1.5"])
async def test_unknown_users_are_404(client, user, path):
    assert_error(await client.get(path, token=user.access_token), 404, "not_found")


async def test_users_need_a_token(client, user):
    assert_error(await client.get(f"/api/v1/users/{user.user_id}"), 401, "not_authenticated")
