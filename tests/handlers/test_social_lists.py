"""Matches, who liked me, the hot ranking and the recommendation feed."""
from __future__ import annotations

import asyncio

import pytest

from models import User
from services import keys, recommendations
from tests.conftest import unique_city
from tests.handlers.test_swipes import swipe
from tests.support.client import assert_error


async def pages(client, path, token, limit):
    """Follow next_cursor to the end; returns the pages."""
    result, cursor = [], None
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get(path + query, token=token)
        assert resp.status == 200, resp.body
        result.append(resp.data["items"])
        cursor = resp.data["next_cursor"]
        if cursor is None:
            return result


async def test_matches_newest_first_in_pages(client, make_person):
    me = await make_person()
    others = [await make_person(gender="male") for _ in range(5)]
    for other in others:
        await swipe(client, other, me)
        await swipe(client, me, other)
    got = await pages(client, "/api/v1/matches", me.token, limit=2)
    assert [len(p) for p in got] == [2, 2, 1]
    ids = [item["id"] for page in got for item in page]
    assert ids == [o.id for o in reversed(others)]
    item = got[0][0]
    assert set(item) == {"id", "nickname", "gender", "age", "avatar", "location", "distance_km", "photos", "matched_at",
                         "last_message", "unread_count", "read_seq"}
    assert item["last_message"] is None and item["unread_count"] == 0 and item["read_seq"] == 0
    their = await client.get("/api/v1/matches", token=others[0].token)
    assert [i["id"] for i in their.data["items"]] == [me.id]


@pytest.mark.parametrize("query", ["?limit=0", "?limit=51", "?limit=abc", "?limit=-1", "?cursor=forged",
                                   "?cursor=eyJhdCI6IjIwMjAifQ.AAAAAAAAAAAAAAAA", "?cursor=.%C3%A6%C2%8EQ",
                                   "?cursor=%C3%A6.%C3%A6", "?cursor=..."])
async def test_list_queries_are_validated(client, make_person, query):
    me = await make_person(level=3)
    for path in ("/api/v1/matches", "/api/v1/likes/received"):
        assert_error(await client.get(path + query, token=me.token), 400, "invalid_params")


async def test_unmatch_for_both_sides_swipes_stay(client, make_person):
    a, b = await make_person(city=unique_city()), await make_person(gender="male")
    await swipe(client, a, b)
    await swipe(client, b, a)
    resp = await client.delete(f"/api/v1/matches/{b.id}", token=a.token)
    assert resp.status == 200 and resp.json == {"code": 0, "data": None}
    assert (await client.get("/api/v1/matches", token=b.token)).data["items"] == []
    assert_error(await client.delete(f"/api/v1/matches/{a.id}", token=b.token), 404, "not_found")
    assert_error(await client.delete("/api/v1/matches/999999999", token=b.token), 404, "not_found")
    assert_error(await swipe(client, a, b, "dislike"), 409, "conflict")  # the swipe is still there


async def test_who_liked_me(client, make_person):
    me = await make_person(level=2)
    liker, superliker, disliker = (await make_person(gender="male"), await make_person(gender="male", level=1),
                                   await make_person(gender="male"))
    await swipe(client, liker, me)
    await swipe(client, superliker, me, "superlike")
    await swipe(client, disliker, me, "dislike")
    count = await client.get("/api/v1/likes/received/count", token=me.token)
    assert count.data == {"count": 2}
    got = await pages(client, "/api/v1/likes/received", me.token, limit=1)
    items = [i for page in got for i in page]
    assert [(i["id"], i["action"]) for i in items] == [(superliker.id, "superlike"), (liker.id, "like")]
    assert "swiped_at" in items[0] and "phone" not in items[0]
    await swipe(client, me, liker, "dislike")  # answered: no longer waiting
    assert (await client.get("/api/v1/likes/received/count", token=me.token)).data == {"count": 1}


async def test_who_liked_me_needs_permission_but_count_does_not(client, make_person):
    free = await make_person()
    body = assert_error(await client.get("/api/v1/likes/received", token=free.token), 403, "permission_denied")
    assert body["data"] == {"permission": "liked_me"}
    assert (await client.get("/api/v1/likes/received/count", token=free.token)).status == 200


async def test_hot_ranking_weights_and_rewind(client, make_person):
    star, rising, sinking = (await make_person(gender="male"), await make_person(gender="male"),
                             await make_person(gender="male"))
    fans = [await make_person(level=3) for _ in range(3)]
    for fan in fans:
        await swipe(client, fan, star, "superlike")
    await swipe(client, fans[0], rising, "like")
    await swipe(client, fans[1], sinking, "dislike")
    resp = await client.get("/api/v1/rankings/hot?limit=10", token=fans[0].token)
    assert [(e["rank"], e["user"]["id"], e["score"]) for e in resp.data["items"]] == [(1, star.id, 21),
                                                                                        (2, rising.id, 5)]
    await client.delete("/api/v1/swipes/last", token=fans[0].token)  # takes rising's +5 back
    assert [e["user"]["id"] for e in (await client.get("/api/v1/rankings/hot", token=fans[0].token)
                                      ).data["items"]] == [star.id]
    assert_error(await client.get("/api/v1/rankings/hot?limit=99", token=fans[0].token), 400, "invalid_params")


async def test_feed_filters(client, make_person):
    city = unique_city()
    me = await make_person(city=city, dating_gender="male", min_age=25, max_age=30)
    fits = [await make_person(gender="male", age=age, city=city) for age in (25, 27, 30)]
    await make_person(gender="male", age=24, city=city)
    await make_person(gender="male", age=31, city=city)
    await make_person(gender="female", age=27, city=city)
    await make_person(gender="male", age=27, city=unique_city())
    await make_person(gender=None, age=27, city=city)
    await make_person(gender="male", age=None, city=city)
    resp = await client.get("/api/v1/recommendations?limit=50", token=me.token)
    assert resp.status == 200
    assert sorted(i["id"] for i in resp.data["items"]) == sorted(p.id for p in fits)
    assert set(resp.data["items"][0]) == {"id", "nickname", "gender", "age", "avatar", "location", "distance_km", "photos"}


async def test_feed_order_superlikers_then_recently_active(client, make_person):
    city = unique_city()
    me = await make_person(city=city, dating_gender="male")
    stale = await make_person(gender="male", city=city, active_minutes_ago=600)
    fresh = await make_person(gender="male", city=city, active_minutes_ago=1)
    middle = await make_person(gender="male", city=city, active_minutes_ago=60)
    admirer = await make_person(gender="male", city=city, active_minutes_ago=6000, level=1)
    await swipe(client, admirer, me, "superlike")
    resp = await client.get("/api/v1/recommendations", token=me.token)
    assert [i["id"] for i in resp.data["items"]] == [admirer.id, fresh.id, middle.id, stale.id]
    await swipe(client, me, admirer, "dislike")
    resp = await client.get("/api/v1/recommendations", token=me.token)
    assert [i["id"] for i in resp.data["items"]] == [fresh.id, middle.id, stale.id]


async def test_feed_never_repeats_a_swiped_user_across_pages(client, make_person):
    city = unique_city()
    me = await make_person(city=city, dating_gender="male")
    everyone = {p.id for p in await asyncio.gather(*[make_person(gender="male", city=city) for _ in range(23)])}
    seen: set[int] = set()
    while True:
        page = (await client.get("/api/v1/recommendations?limit=5", token=me.token)).data["items"]
        if not page:
            break
        ids = [i["id"] for i in page]
        assert not seen & set(ids), "a swiped user came back"
        seen |= set(ids)
        for target_id in ids:
            resp = await client.post("/api/v1/swipes", {"user_id": target_id, "action": "dislike"}, token=me.token)
            assert resp.status == 200
    assert seen == everyone


async def test_feed_city_preference_needs_anylocation(client, make_person):
    home, elsewhere = unique_city(), unique_city()
    there = await make_person(gender="male", city=elsewhere)
    local = await make_person(gender="male", city=home)
    free = await make_person(city=home, pref_city=elsewhere)
    vip3 = await make_person(city=home, pref_city=elsewhere, level=3)
    assert [i["id"] for i in (await client.get("/api/v1/recommendations", token=free.token)).data["items"]] == [
        local.id]
    assert [i["id"] for i in (await client.get("/api/v1/recommendations", token=vip3.token)).data["items"]] == [
        there.id]
    nowhere = await make_person(city=None)
    assert (await client.get("/api/v1/recommendations", token=nowhere.token)).data["items"] == []
    assert_error(await client.get("/api/v1/recommendations?limit=0", token=free.token), 400, "invalid_params")


async def test_moving_city_moves_the_feed_whatever_the_stored_preference(client, make_person):
    """Issue 10, item 5: a free user whose preferences.location equals their city can move, and the feed follows."""
    old_home, new_home = unique_city(), unique_city()
    me = await make_person(city=old_home, pref_city=old_home)
    there = await make_person(gender="male", city=new_home)
    await make_person(gender="male", city=old_home)
    moved = await client.patch("/api/v1/profile", {"location": new_home}, token=me.token)
    assert moved.status == 200, moved.body
    assert moved.data["preferences"]["location"] == old_home
    assert await feed_ids(client, me) == [there.id]


async def feed_ids(client, me, limit: int = 10) -> list[int]:
    resp = await client.get(f"/api/v1/recommendations?limit={limit}", token=me.token)
    assert resp.status == 200, resp.body
    return [item["id"] for item in resp.data["items"]]


async def test_the_kept_candidates_never_outlive_a_swipe_or_a_change_of_theirs(client, make_person, redis,
                                                                                monkeypatch):
    """The candidate list in Redis is older than what happens next; each page applies the filter again."""
    monkeypatch.setattr(recommendations, "CHUNK", 2)  # the page needs two statements to find the third
    city = unique_city()
    me = await make_person(city=city, dating_gender="male")
    first, second, third = [await make_person(gender="male", city=city, active_minutes_ago=m) for m in (1, 2, 3)]
    assert await feed_ids(client, me) == [first.id, second.id, third.id]  # walks, keeps the list
    await swipe(client, me, first, "dislike")
    await User.update(location=unique_city()).where(User.id == second.id).aio_execute()  # moved away
    assert await feed_ids(client, me) == [third.id]
    stored = (await redis.get(keys.feed_candidates(me.id))).split("\n")[2]
    assert stored == str(third.id)  # the page found the others ineligible: the next one will not check them again


async def test_a_new_filter_walks_again(client, make_person, redis):
    city = unique_city()
    me = await make_person(city=city, dating_gender="male")
    man = await make_person(gender="male", city=city)
    woman = await make_person(gender="female", city=city)
    assert await feed_ids(client, me) == [man.id]
    resp = await client.patch("/api/v1/profile", {"preferences": {"dating_gender": "female"}}, token=me.token)
    assert resp.status == 200, resp.body
    assert await feed_ids(client, me) == [woman.id]


async def test_a_used_up_list_walks_on_past_it(client, make_person, monkeypatch):
    monkeypatch.setattr(recommendations, "CANDIDATES", 3)
    city = unique_city()
    me = await make_person(city=city, dating_gender="male")
    people = [await make_person(gender="male", city=city, active_minutes_ago=m) for m in range(1, 8)]
    shown = []
    for _ in range(4):
        page = await feed_ids(client, me, limit=2)
        shown += page
        for target_id in page:
            resp = await client.post("/api/v1/swipes", {"user_id": target_id, "action": "dislike"}, token=me.token)
            assert resp.status == 200
    assert shown == [p.id for p in people]  # most recently active first, across four walks
    assert await feed_ids(client, me) == []


async def test_people_who_join_after_the_walk_appear_when_the_list_expires(client, make_person, redis):
    city = unique_city()
    me = await make_person(city=city, dating_gender="male")
    early = await make_person(gender="male", city=city, active_minutes_ago=10)
    assert await feed_ids(client, me) == [early.id]
    late = await make_person(gender="male", city=city)
    assert await feed_ids(client, me) == [early.id]  # the list is complete and still fresh: not walked again
    assert 0 < await redis.ttl(keys.feed_candidates(me.id)) <= recommendations.CANDIDATES_TTL
    await redis.delete(keys.feed_candidates(me.id))  # what its expiry does
    assert await feed_ids(client, me) == [late.id, early.id]
