"""The event socket: authentication before the upgrade, events of every kind to the right devices, resume with
``after`` (no gap, no duplicate, resync when that is impossible), typing, and frames the server cannot use."""
from __future__ import annotations

import asyncio
import gc
import json

import pytest

from services import keys
from tests.handlers.test_chat import matched, send
from tests.support.client import assert_error
from tests.support.events import EventSocket, refused_upgrade


async def test_messages_reach_the_other_side_and_my_other_devices(app_url, client, make_person):
    a, b = await matched(client, make_person)
    phone, tablet, theirs = (await EventSocket.open(app_url, token=a.token), await EventSocket.open(app_url, token=a.token),
                             await EventSocket.open(app_url, token=b.token))
    sent = (await send(client, a, b, "hello")).data
    for socket, other in ((phone, b), (tablet, b), (theirs, a)):
        event = await socket.next_of("message")
        assert event["user_id"] == other.id and event["message"] == sent and event["event_id"]
    assert phone.frames[-1]["event_id"] == tablet.frames[-1]["event_id"]  # one event, one id on every device
    reply = (await send(client, b, a, "hi!")).data
    assert (await phone.next_of("message"))["message"] == reply
    ids = [f["event_id"] for f in phone.frames]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    for socket in (phone, tablet, theirs):
        socket.close()


async def test_match_read_and_unmatched_events(app_url, client, make_person):
    a, b = await make_person(), await make_person(gender="male")
    socket_a, socket_b = await EventSocket.open(app_url, token=a.token), await EventSocket.open(app_url, token=b.token)
    await client.post("/api/v1/swipes", {"user_id": b.id, "action": "like"}, token=a.token)
    await client.post("/api/v1/swipes", {"user_id": a.id, "action": "like"}, token=b.token)
    assert (await socket_a.next_of("match"))["user"]["id"] == b.id
    assert (await socket_b.next_of("match"))["user"]["id"] == a.id
    await send(client, a, b, "one")
    await client.put(f"/api/v1/matches/{a.id}/read", {"seq": 1}, token=b.token)
    for socket, other in ((socket_a, b), (socket_b, a)):
        read = await socket.next_of("read")
        assert read["user_id"] == other.id and read["seq"] == 1 and read["by"] == b.id
    await client.put(f"/api/v1/matches/{a.id}/read", {"seq": 1}, token=b.token)  # no movement: no event
    await client.delete(f"/api/v1/matches/{b.id}", token=a.token)
    assert (await socket_a.next_of("unmatched"))["user_id"] == b.id
    assert (await socket_b.next_of("unmatched"))["user_id"] == a.id
    assert [f["type"] for f in socket_b.frames].count("read") == 1
    socket_a.close(), socket_b.close()


async def test_a_reconnect_with_after_gets_exactly_what_it_missed(app_url, client, make_person):
    a, b = await matched(client, make_person)
    first = await EventSocket.open(app_url, token=b.token)
    await send(client, a, b, "before")
    last_seen = (await first.next_of("message"))["event_id"]
    first.close()
    missed = [(await send(client, a, b, f"missed {n}")).data["seq"] for n in range(50)]
    resumed = await EventSocket.open(app_url, token=b.token, after=last_seen)
    got = await resumed.collect(50)
    assert [f["message"]["seq"] for f in got] == missed
    assert await resumed.quiet() == []
    await send(client, a, b, "live again")
    assert (await resumed.next_of("message"))["message"]["text"] == "live again"
    resumed.close()


async def test_no_gap_and_no_duplicate_while_events_arrive_during_the_replay(app_url, client, make_person):
    a, b = await matched(client, make_person)
    watcher = await EventSocket.open(app_url, token=b.token)
    await send(client, a, b, "start")
    start = (await watcher.next_of("message"))["event_id"]
    watcher.close()
    for n in range(30):
        await send(client, a, b, f"backlog {n}")

    async def keep_sending():
        return [(await send(client, a, b, f"during {n}")).data["seq"] for n in range(40)]

    sender = asyncio.ensure_future(keep_sending())
    resumed = await EventSocket.open(app_url, token=b.token, after=start)
    sent_during = await sender
    frames = await resumed.collect(70)
    seqs = [f["message"]["seq"] for f in frames]
    assert seqs == list(range(2, 72)) and sent_during == list(range(32, 72))
    assert await resumed.quiet() == []
    resumed.close()


@pytest.mark.parametrize("after", ["not-an-id", "1-0", "99999999999999-0", "12abc"])
async def test_an_after_the_server_cannot_honour_is_a_resync(app_url, client, make_person, after):
    a, b = await matched(client, make_person)
    await send(client, a, b, "something happened")
    socket = await EventSocket.open(app_url, token=b.token, after=after)
    frame = await socket.next()
    assert frame["type"] == "resync" and frame["event_id"]  # resume after this one next time
    await send(client, a, b, "and more")
    assert (await socket.next_of("message"))["message"]["text"] == "and more"
    socket.close()


async def test_a_stream_trimmed_past_after_is_a_resync(app_url, client, make_person, redis):
    a, b = await matched(client, make_person)
    socket = await EventSocket.open(app_url, token=b.token)
    await send(client, a, b, "old")
    old = (await socket.next_of("message"))["event_id"]
    socket.close()
    await send(client, a, b, "newer")
    await redis.xtrim(keys.event_stream(b.id), maxlen=1, approximate=False)  # what the cap does to a stream after ~1,000 events
    resumed = await EventSocket.open(app_url, token=b.token, after=old)
    assert (await resumed.next())["type"] == "resync"
    resumed.close()


async def test_typing_goes_to_the_other_side_only_and_at_most_every_three_seconds(app_url, client, make_person):
    a, b = await matched(client, make_person)
    stranger = await make_person(gender="male")
    socket_a, socket_b = await EventSocket.open(app_url, token=a.token), await EventSocket.open(app_url, token=b.token)
    socket_s = await EventSocket.open(app_url, token=stranger.token)
    for _ in range(3):
        await socket_a.send({"type": "typing", "user_id": b.id})
    await socket_s.send({"type": "typing", "user_id": a.id})  # not matched: dropped
    assert (await socket_b.next_of("typing"))["user_id"] == a.id
    assert [f for f in await socket_b.quiet(0.5) if f["type"] == "typing"] == []
    assert [f for f in await socket_a.quiet(0.2) if f["type"] == "typing"] == []  # not to my own devices
    for socket in (socket_a, socket_b, socket_s):
        socket.close()


@pytest.mark.parametrize("frame", ["not json", b"\x00\x01binary", '{"type": "dance"}', '{"type": "typing"}',
                                   '{"type": "typing", "user_id": "5"}', "[]", '{"type": "typing", "user_id": 1, "x": 1}'])
async def test_frames_the_server_cannot_use_get_an_error_frame_and_the_socket_stays(app_url, client, make_person,
                                                                                   frame):
    a, b = await matched(client, make_person)
    socket = await EventSocket.open(app_url, token=a.token)
    await socket.send(frame)
    error = await socket.next()
    assert error["type"] == "error" and error["error"] == "invalid_params" and "event_id" not in error
    await send(client, b, a, "still here")
    assert (await socket.next_of("message"))["message"]["text"] == "still here"
    socket.close()


async def test_a_huge_frame_closes_the_socket_with_1009(app_url, client, make_person):
    a, _b = await matched(client, make_person)
    socket = await EventSocket.open(app_url, token=a.token)
    await socket.send(json.dumps({"type": "typing", "user_id": 1, "pad": "x" * 100_000}))
    assert await socket.wait_closed() == 1009


async def test_a_flood_of_frames_closes_the_socket_with_1008(app_url, client, make_person):
    a, b = await matched(client, make_person)
    socket = await EventSocket.open(app_url, token=a.token)
    for _ in range(40):
        await socket.send({"type": "typing", "user_id": b.id})
    assert await socket.wait_closed() == 1008


async def test_bad_tokens_and_tickets_refuse_the_upgrade_with_the_401_envelope(app_url, client, make_person, redis):
    me = await make_person()
    for kwargs in ({}, {"token": "not-a-token"}, {"ticket": "x" * 32}, {"ticket": "short"}):
        refused = await refused_upgrade(app_url, **kwargs)
        assert refused.code == 401, kwargs
        body = json.loads(refused.response.body)
        assert body["error"] == "not_authenticated" and refused.response.headers["WWW-Authenticate"]
    ticket = (await client.post("/api/v1/events/tickets", token=me.token)).data
    assert ticket["expires_in"] == 30
    socket = await EventSocket.open(app_url, ticket=ticket["ticket"])  # a ticket opens it once...
    socket.close()
    assert (await refused_upgrade(app_url, ticket=ticket["ticket"])).code == 401  # ...and never again
    expired = (await client.post("/api/v1/events/tickets", token=me.token)).data["ticket"]
    await redis.delete(keys.event_ticket(expired))  # what its 30 s TTL does
    assert (await refused_upgrade(app_url, ticket=expired)).code == 401
    revoked = (await client.post("/api/v1/events/tickets", token=me.token)).data["ticket"]
    await client.delete("/api/v1/sessions/current", token=me.token)
    assert (await refused_upgrade(app_url, ticket=revoked)).code == 401  # the session ended since
    assert_error(await client.post("/api/v1/events/tickets"), 401, "not_authenticated")


async def test_a_plain_get_is_told_to_upgrade(client, make_person):
    me = await make_person()
    assert_error(await client.get("/api/v1/events", token=me.token), 400, "invalid_params")


async def test_metrics_count_open_sockets_and_delivered_events(app_url, client, make_person):
    from handlers import metrics
    a, b = await matched(client, make_person)
    socket = await EventSocket.open(app_url, token=b.token)
    await send(client, a, b, "counted")
    await socket.next_of("message")
    metrics._rendered = (0.0, b"")  # render afresh
    text = (await client.get("/metrics")).body.decode()
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line.startswith("swiper_") and " " in line}
    assert values["swiper_sockets_open"] >= 1 and values["swiper_events_subscription_live"] == 1
    assert values["swiper_events_delivered_total"] >= 1 and values["swiper_events_published_total"] >= 2
    assert "swiper_socket_drops_total" in values and values["swiper_events_resyncs_owed"] == 0
    socket.close()


def _live_event_handlers() -> int:
    from handlers.chat import EventsHandler
    return sum(1 for obj in gc.get_objects() if isinstance(obj, EventsHandler))


async def test_a_closed_socket_is_freed_at_the_close_without_the_cycle_collector(app_url, client, make_person):
    """server.py raises the collector's thresholds, so anything a closed socket leaves in a reference cycle waits
    for a rare full collection: memory would grow with every socket that ever closed (BENCH.md, "Why a closed
    socket's memory stays"). The handler and its Feed must let go of each other at the close."""
    a, b = await matched(client, make_person)
    gc.collect()
    before = _live_event_handlers()
    gc.disable()
    try:
        socket = await EventSocket.open(app_url, token=b.token)
        await send(client, a, b, "hello")
        await socket.next_of("message")
        assert _live_event_handlers() == before + 1
        socket.close()
        for _ in range(100):
            if _live_event_handlers() == before:
                break
            await asyncio.sleep(0.05)
        assert _live_event_handlers() == before
    finally:
        gc.enable()
