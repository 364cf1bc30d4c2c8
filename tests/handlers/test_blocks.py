"""Blocks: the matrix (every place another user shows up, both directions, before a block, after it and after
unblocking), the match a block ends (its conversation and the ``unmatched`` event), and the bad inputs."""
from __future__ import annotations


import pytest

from services import keys
from services.chat import messages as chat
from tests.conftest import unique_city
from tests.support.client import assert_error
from tests.support.events import EventSocket

BLOCKS = "/api/v1/blocks"


async def like(client, who, whom, action="like"):
    resp = await client.post("/api/v1/swipes", {"user_id": whom.id, "action": action}, token=who.token)
    assert resp.status == 200, resp.body
    return resp.data


async def block(client, who, whom):
    resp = await client.post(BLOCKS, {"user_id": whom.id}, token=who.token)
    assert resp.status == 200 and resp.data is None, resp.body


async def unblock(client, who, whom):
    resp = await client.delete(f"{BLOCKS}/{whom.id}", token=who.token)
    assert resp.status == 200 and resp.data is None, resp.body


async def feed_ids(client, viewer):
    resp = await client.get("/api/v1/recommendations?limit=50", token=viewer.token)
    assert resp.status == 200, resp.body
    return {item["id"] for item in resp.data["items"]}


async def likes_ids(client, viewer):
    resp = await client.get("/api/v1/likes/received?limit=50", token=viewer.token)
    assert resp.status == 200, resp.body
    count = await client.get("/api/v1/likes/received/count", token=viewer.token)
    assert count.data["count"] == len(resp.data["items"])
    return {item["id"] for item in resp.data["items"]}


async def match_ids(client, viewer):
    resp = await client.get("/api/v1/matches?limit=50", token=viewer.token)
    assert resp.status == 200, resp.body
    return {item["id"] for item in resp.data["items"]}


async def hot_ids(client, viewer):
    resp = await client.get("/api/v1/rankings/hot?limit=50", token=viewer.token)
    assert resp.status == 200, resp.body
    return [entry["user"]["id"] for entry in resp.data["items"]]


async def can_view(client, viewer, other):
    resp = await client.get(f"/api/v1/users/{other.id}", token=viewer.token)
    if resp.status == 404:
        assert_error(resp, 404, "not_found")
        return False
    assert resp.status == 200, resp.body
    return True


@pytest.mark.parametrize("blocker", ["a", "b"])
async def test_the_feed_and_the_profile_both_ways(client, make_person, blocker):
    city = unique_city()
    a = await make_person(city=city, gender="female", dating_gender="male")
    b = await make_person(city=city, gender="male", dating_gender="female")
    assert b.id in await feed_ids(client, a) and a.id in await feed_ids(client, b)
    assert await can_view(client, a, b) and await can_view(client, b, a)
    who, whom = (a, b) if blocker == "a" else (b, a)
    await block(client, who, whom)
    assert b.id not in await feed_ids(client, a) and a.id not in await feed_ids(client, b)
    assert not await can_view(client, a, b) and not await can_view(client, b, a)
    swiping = await client.post("/api/v1/swipes", {"user_id": whom.id, "action": "like"}, token=who.token)
    assert_error(swiping, 404, "not_found")
    assert_error(await client.post("/api/v1/swipes", {"user_id": who.id, "action": "like"}, token=whom.token),
                 404, "not_found")
    await unblock(client, who, whom)
    assert b.id in await feed_ids(client, a) and a.id in await feed_ids(client, b)
    assert await can_view(client, a, b) and await can_view(client, b, a)


@pytest.mark.parametrize("blocker", ["a", "b"])
async def test_likes_received_and_count_both_ways(client, make_person, blocker):
    a = await make_person(level=2)
    b = await make_person(gender="male", level=2)
    c = await make_person(level=2)
    await like(client, b, a)
    await like(client, a, c)
    await like(client, c, b)  # b liked by c (not involved) keeps b's list non-empty
    await like(client, a, b)
    # a liked b too, so neither waits for the other's answer: use a third pair for the other direction
    assert b.id not in await likes_ids(client, a)  # answered
    d = await make_person(gender="male", level=2)
    await like(client, d, a)
    e = await make_person(level=2)
    await like(client, a, e)
    assert d.id in await likes_ids(client, a) and a.id in await likes_ids(client, e)
    pairs = [(a, d), (e, a)] if blocker == "a" else [(d, a), (a, e)]
    for who, whom in pairs:
        await block(client, who, whom)
    assert d.id not in await likes_ids(client, a) and a.id not in await likes_ids(client, e)
    assert c.id in await likes_ids(client, b)
    for who, whom in pairs:
        await unblock(client, who, whom)
    assert d.id in await likes_ids(client, a) and a.id in await likes_ids(client, e)


@pytest.mark.parametrize("blocker", ["a", "b"])
async def test_a_match_ends_its_conversation_closes_and_both_are_told(client, make_person, app_url, blocker):
    a = await make_person()
    b = await make_person(gender="male")
    await like(client, a, b)
    assert (await like(client, b, a))["matched"]
    sent = await client.post(f"/api/v1/matches/{b.id}/messages", {"text": "hi", "client_id": "c1"}, token=a.token)
    assert sent.status == 200
    assert b.id in await match_ids(client, a) and a.id in await match_ids(client, b)
    sockets = {p.id: await EventSocket.open(app_url, token=p.token) for p in (a, b)}
    try:
        who, whom = (a, b) if blocker == "a" else (b, a)
        await block(client, who, whom)
        for person, other in ((a, b), (b, a)):
            frame = await sockets[person.id].next_of("unmatched")
            assert frame["user_id"] == other.id
    finally:
        for socket in sockets.values():
            socket.close()
    assert b.id not in await match_ids(client, a) and a.id not in await match_ids(client, b)
    for sender, receiver in ((a, b), (b, a)):
        assert_error(await client.post(f"/api/v1/matches/{receiver.id}/messages", {"text": "x", "client_id": "c2"},
                                       token=sender.token), 403, "not_matched")
        assert_error(await client.get(f"/api/v1/matches/{receiver.id}/messages", token=sender.token),
                     403, "not_matched")
    await unblock(client, who, whom)
    assert b.id not in await match_ids(client, a) and a.id not in await match_ids(client, b)  # they stay unmatched


async def test_typing_is_dropped_once_blocked(client, make_person, app):
    a = await make_person()
    b = await make_person(gender="male")
    await like(client, a, b)
    await like(client, b, a)
    redis, events = app.settings["redis"], app.settings["events"]
    assert await chat.relay_typing(redis=redis, events=events, sender=a.id, other=b.id)
    await block(client, b, a)
    for sender, receiver in ((a, b), (b, a)):  # one key per call: each sits in its sender's slot
        await redis.delete(keys.typing(sender.id, receiver.id))
    assert not await chat.relay_typing(redis=redis, events=events, sender=a.id, other=b.id)
    assert not await chat.relay_typing(redis=redis, events=events, sender=b.id, other=a.id)


async def test_the_send_transaction_refuses_a_blocked_pair(client, make_person):
    """A block that commits while a send is on its way: the send finds the block inside its transaction."""
    a = await make_person()
    b = await make_person(gender="male")
    await like(client, a, b)
    await like(client, b, a)
    from models import db
    await db.aio_execute_sql("INSERT INTO block (user_id, target_id, created_at) VALUES (%s, %s, NOW(6))",
                             (b.id, a.id))  # as if the block's match deletion had not happened yet
    try:
        assert_error(await client.post(f"/api/v1/matches/{b.id}/messages", {"text": "x", "client_id": "c"},
                                       token=a.token), 403, "not_matched")
        assert b.id not in await match_ids(client, a) and a.id not in await match_ids(client, b)
    finally:
        await db.aio_execute_sql("DELETE FROM block WHERE user_id = %s", (b.id,))


@pytest.mark.parametrize("blocker", ["a", "b"])
async def test_the_hot_ranking_both_ways(client, make_person, blocker):
    a = await make_person()
    b = await make_person(gender="male")
    fans = [await make_person() for _ in range(2)]
    for fan in fans:  # a and b get positive scores
        await like(client, fan, a)
        await like(client, fan, b)
    assert b.id in await hot_ids(client, a) and a.id in await hot_ids(client, b)
    who, whom = (a, b) if blocker == "a" else (b, a)
    await block(client, who, whom)
    ranked_for_a, ranked_for_b = await hot_ids(client, a), await hot_ids(client, b)
    assert b.id not in ranked_for_a and a.id not in ranked_for_b
    assert a.id in ranked_for_a and b.id in ranked_for_b  # oneself stays
    full = await client.get("/api/v1/rankings/hot?limit=1", token=who.token)
    assert len(full.data["items"]) == 1  # never a short page for the blocked one
    await unblock(client, who, whom)
    assert b.id in await hot_ids(client, a) and a.id in await hot_ids(client, b)


async def test_the_block_list_and_idempotency(client, make_person):
    me = await make_person()
    first, second = await make_person(), await make_person()
    await block(client, me, first)
    await block(client, me, second)
    await block(client, me, first)  # idempotent
    resp = await client.get(BLOCKS + "?limit=1", token=me.token)
    assert [item["user"]["id"] for item in resp.data["items"]] == [second.id]
    assert set(resp.data["items"][0]) == {"user", "blocked_at"}
    more = await client.get(BLOCKS + f"?limit=1&cursor={resp.data['next_cursor']}", token=me.token)
    assert [item["user"]["id"] for item in more.data["items"]] == [first.id] and more.data["next_cursor"] is None
    assert (await client.get(BLOCKS, token=first.token)).data["items"] == []  # theirs is not mine
    await unblock(client, me, first)
    await unblock(client, me, first)  # idempotent too: a retried DELETE answers the same
    await unblock(client, first, me)  # and so does one of a block that never was
    assert [item["user"]["id"] for item in (await client.get(BLOCKS, token=me.token)).data["items"]] == [second.id]


@pytest.mark.parametrize("body, field", [
    ({}, "user_id"), ({"user_id": "42"}, "user_id"), ({"user_id": 0}, "user_id"), ({"user_id": True}, "user_id"),
    ({"user_id": 1, "colour": "red"}, "colour"),
])
async def test_bad_bodies(client, make_person, body, field):
    me = await make_person()
    error = assert_error(await client.post(BLOCKS, body, token=me.token), 400, "invalid_params")
    assert field in error["data"]["fields"]


async def test_bad_requests(client, make_person):
    me = await make_person()
    assert_error(await client.post(BLOCKS, {"user_id": me.id}, token=me.token), 409, "conflict")
    assert_error(await client.post(BLOCKS, {"user_id": 2**62}, token=me.token), 404, "not_found")
    assert_error(await client.post(BLOCKS, body=b"{not json", token=me.token,
                                   headers={"Content-Type": "application/json"}), 400, "invalid_params")
    assert_error(await client.post(BLOCKS, {"user_id": 1}), 401, "not_authenticated")
    assert_error(await client.get(BLOCKS + "?cursor=forged", token=me.token), 400, "invalid_params")
    assert_error(await client.get(BLOCKS + "?limit=0", token=me.token), 400, "invalid_params")
    assert_error(await client.put(BLOCKS, {"user_id": 1}, token=me.token), 405, "method_not_allowed")
    assert_error(await client.delete(f"{BLOCKS}/{2**62}", token=me.token), 404, "not_found")


@pytest.mark.parametrize("blocker", ["a", "b"])
async def test_the_distance_feed_both_ways(client, make_person, blocker):
    from tests.handlers.test_feed_distance import feed
    from tests.handlers.test_location import place, region
    home = region()
    a = await make_person(gender="female", dating_gender="male", city="别处")
    b = await make_person(gender="male", dating_gender="female", city="另处")
    await place(client, a, home)
    await place(client, b, home)
    assert b.id in await feed(client, a) and a.id in await feed(client, b)
    who, whom = (a, b) if blocker == "a" else (b, a)
    await block(client, who, whom)
    assert b.id not in await feed(client, a) and a.id not in await feed(client, b)
    await unblock(client, who, whom)
    assert b.id in await feed(client, a) and a.id in await feed(client, b)
