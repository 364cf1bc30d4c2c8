"""Chat over REST: sending (seq, idempotency, text rules, the message limit), history, read positions, the
matches list's conversation state, and 1014 for anyone not (or no longer) matched."""
from __future__ import annotations

import asyncio
import secrets

import pytest

from models import Message
from tests.support.client import Client, assert_error

SWIPES = "/api/v1/swipes"


def messages_path(other) -> str:
    return f"/api/v1/matches/{other.id}/messages"


async def matched(client, make_person, **kwargs):
    """Two people who liked each other."""
    a, b = await make_person(**kwargs), await make_person(gender="male")
    assert (await client.post(SWIPES, {"user_id": b.id, "action": "like"}, token=a.token)).status == 200
    assert (await client.post(SWIPES, {"user_id": a.id, "action": "like"}, token=b.token)).data["matched"]
    return a, b


async def send(client, sender, receiver, text="你好", client_id=None):
    return await client.post(messages_path(receiver), {"text": text, "client_id": client_id or secrets.token_hex(8)},
                             token=sender.token)


async def test_messages_get_seq_in_order_and_come_back_in_both_directions(client, make_person):
    a, b = await matched(client, make_person)
    first = await send(client, a, b, "  你好\n今天怎么样？  ")
    assert first.status == 200, first.body
    message = first.data
    assert set(message) == {"id", "seq", "from", "text", "client_id", "sent_at"}
    assert message["seq"] == 1 and message["from"] == a.id and message["text"] == "你好\n今天怎么样？"
    for n in range(2, 6):
        assert (await send(client, b if n % 2 else a, a if n % 2 else b, f"m{n}")).data["seq"] == n
    newest = await client.get(messages_path(b), token=a.token)
    assert [m["seq"] for m in newest.data["items"]] == [5, 4, 3, 2, 1] and newest.data["next_cursor"] is None
    assert newest.data["items"][-1] == message
    theirs = await client.get(messages_path(a), token=b.token)
    assert [m["seq"] for m in theirs.data["items"]] == [5, 4, 3, 2, 1]


async def test_history_pages_in_both_directions(client, make_person):
    a, b = await matched(client, make_person)
    for n in range(1, 8):
        await send(client, a, b, f"m{n}")
    page = await client.get(messages_path(b) + "?limit=3", token=a.token)
    assert [m["seq"] for m in page.data["items"]] == [7, 6, 5]
    page = await client.get(messages_path(b) + f"?limit=3&cursor={page.data['next_cursor']}", token=a.token)
    assert [m["seq"] for m in page.data["items"]] == [4, 3, 2]
    page = await client.get(messages_path(b) + f"?limit=3&cursor={page.data['next_cursor']}", token=a.token)
    assert [m["seq"] for m in page.data["items"]] == [1] and page.data["next_cursor"] is None
    forward = await client.get(messages_path(b) + "?after=2&limit=3", token=a.token)
    assert [m["seq"] for m in forward.data["items"]] == [3, 4, 5]
    forward = await client.get(messages_path(b) + f"?cursor={forward.data['next_cursor']}&limit=3", token=a.token)
    assert [m["seq"] for m in forward.data["items"]] == [6, 7] and forward.data["next_cursor"] is None
    before = await client.get(messages_path(b) + "?before=3", token=a.token)
    assert [m["seq"] for m in before.data["items"]] == [2, 1]
    assert (await client.get(messages_path(b) + "?after=7", token=a.token)).data["items"] == []


@pytest.mark.parametrize("query", ["?after=1&before=3", "?cursor=forged", "?after=-1", "?after=abc", "?limit=51",
                                   "?limit=0", "?after=1&after=2", "?colour=red"])
async def test_history_queries_are_validated(client, make_person, query):
    a, b = await matched(client, make_person)
    assert_error(await client.get(messages_path(b) + query, token=a.token), 400, "invalid_params")


async def test_a_retried_client_id_stores_nothing_new_even_twenty_at_once(client, make_person):
    a, b = await matched(client, make_person)
    answers = await asyncio.gather(*[send(client, a, b, "once", client_id="retry-1") for _ in range(20)])
    assert {r.status for r in answers} == {200}
    assert len({r.data["id"] for r in answers}) == 1 and {r.data["seq"] for r in answers} == {1}
    assert await Message.select().where(Message.sender_id == a.id).aio_count() == 1
    assert (await send(client, a, b, "different text, same id", client_id="retry-1")).data["text"] == "once"
    assert (await send(client, b, a, "their own", client_id="retry-1")).data["seq"] == 2  # per sender


async def test_concurrent_sends_from_both_sides_get_seq_one_to_n(client, make_person):
    a, b = await matched(client, make_person)
    answers = await asyncio.gather(*[send(client, a if n % 2 else b, b if n % 2 else a, f"n{n}")
                                     for n in range(60)])
    assert {r.status for r in answers} == {200}
    assert sorted(r.data["seq"] for r in answers) == list(range(1, 61))
    stored = await Message.select(Message.seq).where(Message.match_id == (await match_id(a, b))).aio_execute()
    assert sorted(row.seq for row in stored) == list(range(1, 61))


async def match_id(a, b) -> int:
    from models import Match
    low, high = sorted((a.id, b.id))
    return (await Match.select().where((Match.user_a == low) & (Match.user_b == high)).aio_first()).id


@pytest.mark.parametrize("body, fields", [
    ({"text": "hi"}, {"client_id"}), ({"client_id": "x"}, {"text"}), ({}, {"text", "client_id"}),
    ({"text": "", "client_id": "x"}, {"text"}), ({"text": " \n\t ", "client_id": "x"}, {"text"}),
    ({"text": "a" * 1001, "client_id": "x"}, {"text"}), ({"text": "bell\x07", "client_id": "x"}, {"text"}),
    ({"text": "tab\there", "client_id": "x"}, {"text"}), ({"text": 42, "client_id": "x"}, {"text"}),
    ({"text": "hi", "client_id": ""}, {"client_id"}), ({"text": "hi", "client_id": "x" * 65}, {"client_id"}),
    ({"text": "hi", "client_id": 7}, {"client_id"}), ({"text": "hi", "client_id": "x", "to": 5}, {"to"}),
    ({"text": ["hi"], "client_id": None}, {"text", "client_id"}),
])
async def test_bad_messages_are_refused_by_name_and_store_nothing(client, make_person, body, fields):
    a, b = await matched(client, make_person)
    resp = await client.post(messages_path(b), body, token=a.token)
    assert set(assert_error(resp, 400, "invalid_params")["data"]["fields"]) == fields
    assert await Message.select().where(Message.sender_id == a.id).aio_count() == 0


async def test_text_limits_count_code_points_after_trimming(client, make_person):
    a, b = await matched(client, make_person)
    exactly = "爱" * 999 + "😀"  # 1000 code points, 3001 bytes of UTF-8
    assert (await send(client, a, b, f"\n  {exactly}  \n")).data["text"] == exactly
    assert (await send(client, a, b, "line one\r\nline two")).data["text"] == "line one\r\nline two"
    assert_error(await client.request("POST", messages_path(b), body=b"{", token=a.token), 400, "invalid_params")


async def test_only_matches_may_talk(client, make_person):
    a, b = await matched(client, make_person)
    stranger = await make_person(gender="male")
    for path, method, body in [(messages_path(stranger), "POST", {"text": "hi", "client_id": "x"}),
                               (messages_path(stranger), "GET", None),
                               (f"/api/v1/matches/{stranger.id}/read", "PUT", {"seq": 1}),
                               (messages_path(a), "POST", {"text": "me", "client_id": "x"}),  # myself
                               ("/api/v1/matches/999999999999/messages", "POST", {"text": "hi", "client_id": "x"})]:
        resp = await client.request(method, path, json_body=body, token=a.token)
        assert_error(resp, 403, "not_matched")
    assert_error(await client.post(messages_path(b), {"text": "hi", "client_id": "x"}), 401, "not_authenticated")


async def test_unmatching_closes_the_conversation_for_both(client, make_person):
    a, b = await matched(client, make_person)
    for n in range(3):
        await send(client, a, b, f"m{n}")
    assert (await client.delete(f"/api/v1/matches/{a.id}", token=b.token)).status == 200
    assert await Message.select().where(Message.sender_id == a.id).aio_count() == 0
    assert_error(await send(client, a, b), 403, "not_matched")
    assert_error(await client.get(messages_path(a), token=b.token), 403, "not_matched")
    assert_error(await client.delete(f"/api/v1/matches/{a.id}", token=b.token), 404, "not_found")


async def test_unmatch_during_a_burst_stores_nothing_after_it_commits(client, make_person):
    """Ten senders (both sides) send without pause; the unmatch comes after 20 messages. Every send after it is
    refused, and what was stored before it goes with the conversation: nothing is left."""
    a, b = await matched(client, make_person)
    delivered = 0
    enough = asyncio.Event()

    async def keep_sending(sender, receiver) -> list[int]:
        nonlocal delivered
        statuses = []
        while True:
            status = (await send(client, sender, receiver)).status
            statuses.append(status)
            if status != 200:
                return statuses
            delivered += 1
            if delivered >= 20:
                enough.set()

    workers = [asyncio.ensure_future(keep_sending(*((a, b) if n % 2 else (b, a)))) for n in range(10)]
    await enough.wait()
    assert (await client.delete(f"/api/v1/matches/{b.id}", token=a.token)).status == 200
    for statuses in await asyncio.gather(*workers):
        assert statuses[-1] == 403 and set(statuses[:-1]) <= {200}, statuses
    assert await Message.select().where(Message.sender_id.in_([a.id, b.id])).aio_count() == 0
    assert_error(await send(client, a, b), 403, "not_matched")


async def test_read_positions_and_the_matches_list(client, make_person):
    a, b = await matched(client, make_person)
    c = await make_person(gender="male")
    await client.post(SWIPES, {"user_id": c.id, "action": "like"}, token=a.token)
    await client.post(SWIPES, {"user_id": a.id, "action": "like"}, token=c.token)  # the newest match: c
    items = (await client.get("/api/v1/matches", token=a.token)).data["items"]
    assert [i["id"] for i in items] == [c.id, b.id] and items[1]["last_message"] is None
    for n in range(3):
        await send(client, b, a, f"from b {n}")  # b's conversation is the latest activity now
    items = (await client.get("/api/v1/matches", token=a.token)).data["items"]
    assert [i["id"] for i in items] == [b.id, c.id]
    assert items[0]["unread_count"] == 3 and items[0]["read_seq"] == 3  # b has seen their own messages
    assert items[0]["last_message"]["text"] == "from b 2" and items[0]["last_message"]["seq"] == 3
    assert (await client.put(f"/api/v1/matches/{b.id}/read", {"seq": 2}, token=a.token)).status == 200
    assert (await client.put(f"/api/v1/matches/{b.id}/read", {"seq": 1}, token=a.token)).status == 200  # no going back
    assert (await client.get("/api/v1/matches", token=a.token)).data["items"][0]["unread_count"] == 1
    theirs = (await client.get("/api/v1/matches", token=b.token)).data["items"][0]
    assert theirs["id"] == a.id and theirs["read_seq"] == 2 and theirs["unread_count"] == 0
    await client.put(f"/api/v1/matches/{b.id}/read", {"seq": 99}, token=a.token)  # clamped to the last message
    assert (await client.get("/api/v1/matches", token=b.token)).data["items"][0]["read_seq"] == 3
    await send(client, a, b, "answer")  # sending: I have seen everything before my own message
    mine = (await client.get("/api/v1/matches", token=a.token)).data["items"][0]
    assert mine["unread_count"] == 0 and mine["last_message"]["from"] == a.id
    for body in [{}, {"seq": -1}, {"seq": "3"}, {"seq": 1.5}, {"seq": 1, "x": 1}]:
        assert_error(await client.put(f"/api/v1/matches/{b.id}/read", body, token=a.token), 400, "invalid_params")


async def test_the_message_limit_stays_on_with_request_limits_off(settings, schema, make_person, app):
    """Request-rate limits are off in this app; the message limit (a product rule) is not."""
    from handlers.base import InFlight
    from server import make_app
    from services.redis_client import build_redis
    from services.sms import ConsoleSmsSender
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets
    tight = settings.replace(message_rate_limit=3)
    redis = build_redis(tight)
    server = HTTPServer(make_app(tight, redis=redis, sms=ConsoleSmsSender(), in_flight=InFlight()))
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    limited = Client(f"http://127.0.0.1:{sockets[0].getsockname()[1]}")
    try:
        a, b = await matched(limited, make_person)
        answers = [await send(limited, a, b, f"m{n}") for n in range(4)]
        assert [r.status for r in answers] == [200, 200, 200, 429]
        assert answers[0].headers["RateLimit-Limit"] == "3" and answers[2].headers["RateLimit-Remaining"] == "0"
        refused = assert_error(answers[3], 429, "rate_limited")
        assert refused["data"]["scope"] == "message" and int(answers[3].headers["Retry-After"]) >= 1
        assert (await send(limited, b, a)).status == 200  # per user
    finally:
        server.stop()
        await server.close_all_connections()
        await redis.aclose()
