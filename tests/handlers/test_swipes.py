"""POST /api/v1/swipes and DELETE /api/v1/swipes/last: matches, idempotency, quotas, permissions, rewind."""
from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo

import pytest

from models import Match, Swipe, db
from services import keys, quotas
from models.base import utcnow
from services.swipes import pair
from services.vip import grant_membership
from tests.support.client import assert_error
from tests.support.dates import next_midnight, on_one_server_day, server_now

SWIPES, LAST = "/api/v1/swipes", "/api/v1/swipes/last"


async def swipe(client, who, target, action="like"):
    return await client.post(SWIPES, {"user_id": target.id, "action": action}, token=who.token)


async def match_count(a, b) -> int:
    low, high = pair(a.id, b.id)
    return await Match.select().where((Match.user_a == low) & (Match.user_b == high)).aio_count()


async def test_like_answers_quota_and_next_midnight(client, make_person):
    me, other = await make_person(), await make_person(gender="male")
    before = server_now()
    resp = await swipe(client, me, other)
    after = server_now()
    assert resp.status == 200
    assert resp.data["matched"] is False and resp.data["likes_remaining"] == 99
    resets = dt.datetime.fromisoformat(resp.data["resets_at"])
    assert resets.utcoffset() == dt.timedelta(hours=8)
    # the midnight after the server's "now", which lies between ours before and after (a day may turn between)
    assert resets in {next_midnight(before), next_midnight(after)}, (resets, before, after)


@pytest.mark.parametrize("first, second, matched", [
    ("like", "like", True), ("like", "superlike", True), ("superlike", "like", True),
    ("like", "dislike", False), ("dislike", "like", False), ("dislike", "dislike", False)])
async def test_mutual_likes_match_once(client, make_person, first, second, matched):
    a, b = await make_person(level=3), await make_person(gender="male", level=3)
    assert (await swipe(client, a, b, first)).data["matched"] is False
    resp = await swipe(client, b, a, second)
    assert resp.data["matched"] is matched
    assert await match_count(a, b) == (1 if matched else 0)


@on_one_server_day  # counts of one quota day (Asia/Shanghai)
async def test_repeat_is_idempotent_other_action_conflicts(client, make_person, redis):
    a, b = await make_person(), await make_person(gender="male")
    await swipe(client, b, a)
    first = await swipe(client, a, b)
    again = await swipe(client, a, b)
    assert first.data == again.data and first.data["matched"] is True
    assert first.data["likes_remaining"] == 99
    assert await match_count(a, b) == 1
    assert_error(await swipe(client, a, b, "dislike"), 409, "conflict")


async def test_self_unknown_and_bad_bodies(client, make_person):
    me = await make_person()
    assert_error(await swipe(client, me, me), 409, "conflict")
    ghost = type(me)(999_999_999, "", "", "")
    assert_error(await swipe(client, me, ghost), 404, "not_found")
    for body in [{}, {"user_id": 5}, {"action": "like"}, {"user_id": "5", "action": "like"},
                 {"user_id": True, "action": "like"}, {"user_id": 0, "action": "like"},
                 {"user_id": -3, "action": "like"}, {"user_id": 5, "action": "love"},
                 {"user_id": 5, "action": "like", "note": "hi"}, {"user_id": 5.5, "action": "like"}]:
        assert_error(await client.post(SWIPES, body, token=me.token), 400, "invalid_params")
    assert_error(await client.request("POST", SWIPES, body=b"{", token=me.token), 400, "invalid_params")
    assert_error(await client.post(SWIPES, {"user_id": 5, "action": "like"}), 401, "not_authenticated")


async def test_superlike_needs_permission(client, make_person):
    free, vip1, other = await make_person(), await make_person(level=1), await make_person(gender="male")
    body = assert_error(await swipe(client, free, other, "superlike"), 403, "permission_denied")
    assert body["data"] == {"permission": "superlike"}
    assert await Swipe.select().where(Swipe.user_id == free.id).aio_count() == 0
    assert (await swipe(client, vip1, other, "superlike")).status == 200


@on_one_server_day  # counts of one quota day (Asia/Shanghai)
async def test_concurrent_identical_likes_count_once(client, make_person, redis):
    a, b = await make_person(), await make_person(gender="male")
    results = await asyncio.gather(*[swipe(client, a, b) for _ in range(20)])
    assert {r.status for r in results} == {200}
    assert {r.data["likes_remaining"] for r in results} == {99}
    assert await Swipe.select().where((Swipe.user_id == a.id) & (Swipe.target_id == b.id)).aio_count() == 1
    assert int(await redis.zscore(keys.hot_ranking(), str(b.id))) == 5


@on_one_server_day  # counts of one quota day (Asia/Shanghai)
async def test_101st_like_of_a_free_user_is_refused(client, make_person):
    me = await make_person()
    targets = await asyncio.gather(*[make_person(gender="male") for _ in range(101)])
    for i, target in enumerate(targets[:100]):
        resp = await swipe(client, me, target)
        assert resp.status == 200 and resp.data["likes_remaining"] == 99 - i
    body = assert_error(await swipe(client, me, targets[100]), 429, "quota_exceeded")
    assert body["data"]["quota"] == "likes" and body["data"]["resets_at"]
    assert await Swipe.select().where(Swipe.user_id == me.id).aio_count() == 100
    assert (await swipe(client, me, targets[100], "dislike")).status == 200  # dislikes are not capped


async def test_level_two_is_not_capped(client, make_person):
    me = await make_person(level=2)
    targets = await asyncio.gather(*[make_person(gender="male") for _ in range(101)])
    answers = [await swipe(client, me, t) for t in targets]
    assert {a.status for a in answers} == {200}
    assert {(a.data["likes_remaining"], a.data["resets_at"]) for a in answers} == {(None, None)}


async def test_rewind_needs_permission(client, make_person):
    vip1, other = await make_person(level=1), await make_person(gender="male")
    await swipe(client, vip1, other)
    body = assert_error(await client.delete(LAST, token=vip1.token), 403, "permission_denied")
    assert body["data"] == {"permission": "rewind"}


async def test_rewind_undoes_swipe_match_and_score_once(client, make_person, redis):
    me, other = await make_person(level=2), await make_person(gender="male")
    await swipe(client, other, me)
    assert (await swipe(client, me, other, "superlike")).data["matched"] is True
    assert int(await redis.zscore(keys.hot_ranking(), str(other.id))) == 7
    resp = await client.delete(LAST, token=me.token)
    assert resp.status == 200 and resp.data == {"user_id": other.id}
    assert await match_count(me, other) == 0
    assert await Swipe.select().where(Swipe.user_id == me.id).aio_count() == 0
    assert int(await redis.zscore(keys.hot_ranking(), str(other.id))) == 0
    assert_error(await client.delete(LAST, token=me.token), 404, "not_found")  # only once
    # they liked me and I have no swipe on them any more: swiping again works and matches again
    assert (await swipe(client, me, other, "like")).data["matched"] is True


async def test_rewind_only_the_most_recent_and_within_the_window(client, make_person):
    me = await make_person(level=2)
    first, second = await make_person(gender="male"), await make_person(gender="male")
    await swipe(client, me, first)
    await swipe(client, me, second)
    assert (await client.delete(LAST, token=me.token)).data == {"user_id": second.id}
    assert_error(await client.delete(LAST, token=me.token), 404, "not_found")  # not the one before
    third = await make_person(gender="male")
    await swipe(client, me, third)
    await db.aio_execute_sql("UPDATE swipe SET created_at = created_at - INTERVAL 301 SECOND WHERE user_id = %s",
                             (me.id,))
    assert_error(await client.delete(LAST, token=me.token), 404, "not_found")
    nobody = await make_person(level=2)
    assert_error(await client.delete(LAST, token=nobody.token), 404, "not_found")


@on_one_server_day  # counts of one quota day (Asia/Shanghai)
async def test_three_rewinds_a_day(client, make_person):
    me = await make_person(level=3)
    for i in range(3):
        await swipe(client, me, await make_person(gender="male"))
        assert (await client.delete(LAST, token=me.token)).status == 200, i
    await swipe(client, me, await make_person(gender="male"))
    body = assert_error(await client.delete(LAST, token=me.token), 429, "quota_exceeded")
    assert body["data"]["quota"] == "rewinds"
    assert await Swipe.select().where(Swipe.user_id == me.id).aio_count() == 1


async def test_concurrent_rewinds_one_succeeds(client, make_person):
    me = await make_person(level=2)
    for _ in range(3):
        await swipe(client, me, await make_person(gender="male"))
    results = await asyncio.gather(*[client.delete(LAST, token=me.token) for _ in range(10)])
    assert sorted(r.status for r in results) == [200] + [404] * 9
    assert await Swipe.select().where(Swipe.user_id == me.id).aio_count() == 2


async def test_rewound_like_goes_back_to_the_quota(client, make_person, redis):
    """Issue 10, item 6: the give-back follows whether the like was counted, not the level at rewind time."""
    me, other, later = await make_person(), await make_person(gender="male"), await make_person(gender="male")
    assert (await swipe(client, me, other)).data["likes_remaining"] == 99  # counted: a level-0 like
    await grant_membership(redis=redis, phone=me.phone, level=2, until=utcnow() + dt.timedelta(days=1))
    assert (await client.delete(LAST, token=me.token)).status == 200  # rewound while uncapped
    await grant_membership(redis=redis, phone=me.phone, level=0, until=None)
    assert (await swipe(client, me, later)).data["likes_remaining"] == 99
    assert (await swipe(client, me, other, "dislike")).status == 200  # the rewound swipe is gone


async def test_an_uncounted_like_rewound_gives_nothing_back(client, make_person, redis, settings):
    me, other = await make_person(level=3), await make_person(gender="male")
    quota_key = keys.quota("likes", me.id, quotas.quota_day(settings).key)
    await redis.set(quota_key, 7)  # likes this user took earlier today, while capped
    assert (await swipe(client, me, other)).data["likes_remaining"] is None
    assert (await client.delete(LAST, token=me.token)).status == 200
    assert await redis.get(quota_key) == "7"


@on_one_server_day  # counts of one quota day (Asia/Shanghai)
async def test_dislikes_report_the_likes_left(client, make_person):
    me = await make_person()
    await swipe(client, me, await make_person(gender="male"))
    resp = await swipe(client, me, await make_person(gender="male"), "dislike")
    assert resp.data["likes_remaining"] == 99 and resp.data["matched"] is False


@pytest.mark.parametrize("quota", ["likes", "rewinds"])
async def test_a_used_up_quota_says_when_to_come_back(client, make_person, redis, settings, quota):
    """Every 429 carries Retry-After in whole seconds (issue 10, item 3): for a daily quota, until resets_at."""
    me = await make_person(level=3 if quota == "rewinds" else 0)
    day = quotas.quota_day(settings)
    await redis.set(keys.quota(quota, me.id, day.key), 3 if quota == "rewinds" else settings.daily_like_limit)
    await swipe(client, me, await make_person(gender="male"), "dislike")
    resp = await (swipe(client, me, await make_person(gender="male")) if quota == "likes"
                  else client.delete(LAST, token=me.token))
    body = assert_error(resp, 429, "quota_exceeded")
    resets_at = dt.datetime.fromisoformat(body["data"]["resets_at"])
    assert body["data"]["quota"] == quota and resets_at == day.resets_at
    expected = (resets_at - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert resp.headers["Retry-After"].isdigit()
    assert expected - 2 <= int(resp.headers["Retry-After"]) <= expected + 2
