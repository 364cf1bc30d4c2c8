"""Bans through ``scripts/manage.py``: a banned user's sessions on two real server processes end at once (1013
with the reason on the very next request, refresh and socket ticket), logins are refused, the user is hidden
from everyone and their matches end; after ``unban`` the old tokens stay dead and a new login works. Also
``manage.py reports``."""
from __future__ import annotations

import pytest

from models import BanEvent, User
from services import keys, tokens
from tests.conftest import unique_city
from tests.handlers.test_blocks import feed_ids, hot_ids, like, match_ids
from tests.support.client import Client, assert_error
from tests.support.events import EventSocket, refused_upgrade
from tests.test_chat_processes import redis_behind_a_proxy, two_processes  # noqa: F401  (fixtures)
from tests.test_manage import manage


async def test_a_ban_ends_every_session_on_every_process_at_once(two_processes, settings, redis, client,
                                                                 make_person, sms_stub):
    first, second = two_processes
    one, two = Client(first.base_url), Client(second.base_url)
    city = unique_city()
    banned = await make_person(city=city, gender="male", dating_gender="female")
    viewer = await make_person(city=city, gender="female", dating_gender="male")
    fan = await make_person(city=city)
    stranger = await make_person(city=city, gender="female", dating_gender="male")
    await like(client, fan, banned)
    await like(client, banned, viewer)
    assert (await like(client, viewer, banned))["matched"]
    phone_session = await tokens.start_session(redis=redis, settings=settings, user_id=banned.id)
    for process in (one, two):  # both processes know the sessions (and keep them in their local caches)
        for token in (banned.token, phone_session.access_token):
            assert (await process.get("/api/v1/profile", token=token)).status == 200
            assert (await process.get("/api/v1/profile", token=token)).status == 200
    assert banned.id in await match_ids(client, viewer) and banned.id in await hot_ids(client, viewer)
    assert banned.id in await feed_ids(client, stranger)
    sockets = [await EventSocket.open(first.base_url, token=banned.token),
               await EventSocket.open(second.base_url, token=phone_session.access_token)]

    code, out = await manage(settings, "ban", banned.phone, "--reason", "spam links")
    assert code == 0 and "banned" in out, out
    assert [await socket.wait_closed() for socket in sockets] == [1008, 1008]  # open sockets end too
    refused = await refused_upgrade(second.base_url, token=banned.token)
    assert refused.code == 403
    for process in (one, two):
        for token in (banned.token, phone_session.access_token):
            error = assert_error(await process.get("/api/v1/likes/received/count", token=token), 403, "account_banned")
            assert error["code"] == 1013 and error["data"] == {"reason": "spam links"}
        assert_error(await process.post("/api/v1/events/tickets", token=banned.token), 403, "account_banned")
        assert_error(await process.put("/api/v1/sessions/current", {"refresh_token": phone_session.refresh_token}),
                     403, "account_banned")
    sent = await client.post("/api/v1/sms-codes", {"phone": banned.phone}, headers={"X-Real-IP": "10.9.9.9"})
    assert sent.status == 200
    login = await client.post("/api/v1/sessions", {"phone": banned.phone, "code": sms_stub.last_code(banned.phone)},
                              headers={"X-Real-IP": "10.9.9.9"})
    assert assert_error(login, 403, "account_banned")["data"] == {"reason": "spam links"}
    # hidden from everyone, matches ended
    assert banned.id not in await match_ids(client, viewer)
    assert banned.id not in await feed_ids(client, stranger)
    assert banned.id not in await hot_ids(client, viewer)
    assert_error(await client.get(f"/api/v1/users/{banned.id}", token=viewer.token), 404, "not_found")
    events = [(e.action, e.reason) for e in await BanEvent.select().where(BanEvent.user_id == banned.id).aio_execute()]
    assert events == [("ban", "spam links")]

    code, out = await manage(settings, "unban", str(banned.id))
    assert code == 0 and "unbanned" in out, out
    for process in (one, two):  # tokens issued before the ban stay dead
        assert_error(await process.get("/api/v1/profile", token=banned.token), 401, "not_authenticated")
        assert_error(await process.put("/api/v1/sessions/current", {"refresh_token": phone_session.refresh_token}),
                     401, "not_authenticated")
    await redis.delete(keys.sms_cooldown(banned.phone))
    await client.post("/api/v1/sms-codes", {"phone": banned.phone}, headers={"X-Real-IP": "10.9.9.8"})
    login = await client.post("/api/v1/sessions", {"phone": banned.phone, "code": sms_stub.last_code(banned.phone)},
                              headers={"X-Real-IP": "10.9.9.8"})
    assert login.status == 200, login.body
    fresh = login.data["access_token"]
    for process in (one, two):
        assert (await process.get("/api/v1/profile", token=fresh)).status == 200
    refreshed = await two.put("/api/v1/sessions/current", {"refresh_token": login.data["refresh_token"]})
    assert refreshed.status == 200
    assert (await one.get("/api/v1/profile", token=refreshed.data["access_token"])).status == 200
    await redis.delete(keys.feed_candidates(stranger.id))  # an unbanned user may take CANDIDATES_TTL to come back
    assert banned.id in await feed_ids(client, stranger) and banned.id in await hot_ids(client, viewer)
    assert banned.id not in await match_ids(client, viewer)  # they stay unmatched
    events = [e.action for e in await BanEvent.select().where(BanEvent.user_id == banned.id).aio_execute()]
    assert events == ["ban", "unban"]


async def test_ban_and_unban_errors(settings, schema, make_person):
    person = await make_person()
    code, out = await manage(settings, "ban", str(person.id))
    assert code == 2 and "--reason" in out, out
    code, out = await manage(settings, "ban", "13000000009", "--reason", "x")
    assert code == 1 and "No user" in out, out
    code, out = await manage(settings, "ban", "someone", "--reason", "x")
    assert code == 1 and "neither" in out, out
    code, out = await manage(settings, "ban", str(person.id), "--reason", "   ")
    assert code == 1 and "reason" in out, out
    code, out = await manage(settings, "unban", str(person.id))
    assert code == 1 and "not banned" in out, out
    assert (await User.aio_get(User.id == person.id)).banned_at is None


async def test_manage_reports_lists_cases(settings, client, make_person):
    reporter, reported = await make_person(), await make_person()
    first = await client.post("/api/v1/reports", {"user_id": reported.id, "reason": "fake"}, token=reporter.token)
    again = await client.post("/api/v1/reports", {"user_id": reported.id, "reason": "spam", "detail": "again"},
                              token=reporter.token)
    assert first.data == again.data
    code, out = await manage(settings, "reports", "--open")
    assert code == 0, out
    lines = [line.split() for line in out.splitlines()]
    assert lines[0][:4] == ["case", "reporter", "reported", "phone"]
    line = next(line for line in lines if line[0] == str(first.data["id"]))
    assert line[1:6] == [str(reporter.id), str(reported.id), reported.phone, "fake", "2"] and line[-1] == "open"
    code, out = await manage(settings, "reports", "--mask")
    assert code == 0 and f"{reported.phone[:3]}****{reported.phone[-4:]}" in out, out


@pytest.mark.standalone_redis
async def test_a_banned_user_stays_refused_while_redis_is_down(redis_behind_a_proxy, settings, client, make_person):
    """Without Redis a process reads the account from MySQL: the ban and the generation still hold."""
    cut_off, proxy = redis_behind_a_proxy
    lonely = Client(cut_off.base_url)
    person, other = await make_person(), await make_person()
    assert (await lonely.get("/api/v1/profile", token=person.token)).status == 200  # warm: cached locally
    code, out = await manage(settings, "ban", str(person.id), "--reason", "fake profile")
    assert code == 0, out
    await proxy.cut()
    error = assert_error(await lonely.get("/api/v1/profile", token=person.token), 403, "account_banned")
    assert error["data"] == {"reason": "fake profile"}
    assert (await lonely.get("/api/v1/profile", token=other.token)).status == 200  # everyone else goes on
    await proxy.restore()


async def test_manage_report_shows_the_evidence_and_close_report_ends_the_case(settings, client, make_person):
    from tests.handlers.test_chat import matched, send
    reporter, reported = await matched(client, make_person)
    said = (await send(client, reported, reporter, "send me money")).data
    first = await client.post("/api/v1/reports", {"user_id": reported.id, "reason": "spam", "detail": "asks for money",
                                                  "message_ids": [said["id"]]}, token=reporter.token)
    await client.post("/api/v1/reports", {"user_id": reported.id, "reason": "fake"}, token=reporter.token)
    case = str(first.data["id"])
    code, out = await manage(settings, "report", case)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"case {case}: 2 filings"
    assert lines[1].endswith("spam: asks for money") and lines[2].endswith("fake: (no detail)")
    assert lines[3] == "messages copied: 1" and lines[4].startswith("  #1 ")
    assert lines[4].endswith(f"from {reported.id}: send me money")

    code, out = await manage(settings, "close-report", case)
    assert code == 0 and out.strip() == f"case {case} closed", out
    code, out = await manage(settings, "reports", "--open")
    assert code == 0 and not any(line.split()[0] == case for line in out.splitlines()[1:-1]), out
    again = await client.post("/api/v1/reports", {"user_id": reported.id, "reason": "harassment"},
                              token=reporter.token)
    assert again.status == 200 and again.data["id"] != first.data["id"]  # a new case once the old one is closed
    code, out = await manage(settings, "close-report", case)  # twice: no error
    assert code == 0, out

    for command in ("report", "close-report"):
        code, out = await manage(settings, command, str(2**40))
        assert code == 1 and "No report case" in out, out
        code, out = await manage(settings, command, "seven")
        assert code == 2 and "not an integer" in out, out
