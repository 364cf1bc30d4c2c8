"""Reports: cases and filings, messages copied so they survive the conversation, a report also blocks, repeat
reports join the open case; and the bad inputs."""
from __future__ import annotations

import pytest

from models import Message, ReportCase, ReportFiling
from services.safety.reports import case_messages
from tests.handlers.test_blocks import like, match_ids
from tests.handlers.test_chat import send
from tests.support.client import assert_error

REPORTS = "/api/v1/reports"


async def matched_pair(client, make_person):
    a, b = await make_person(), await make_person(gender="male")
    await like(client, a, b)
    assert (await like(client, b, a))["matched"]
    return a, b


async def test_a_report_with_messages_survives_the_unmatch_and_blocks(client, make_person):
    a, b = await matched_pair(client, make_person)
    mine = (await send(client, a, b, "hello")).data
    theirs = (await send(client, b, a, "加我微信 spam")).data
    resp = await client.post(REPORTS, {"user_id": b.id, "reason": "harassment", "detail": "骚扰" * 250,
                                       "message_ids": [theirs["id"], mine["id"], theirs["id"]]}, token=a.token)
    assert resp.status == 200, resp.body
    assert set(resp.data) == {"id"}
    case_id = resp.data["id"]
    # the report blocked: the match and its conversation are gone, the copies stay with the case
    assert b.id not in await match_ids(client, a) and a.id not in await match_ids(client, b)
    assert not await Message.select().where(Message.id.in_([mine["id"], theirs["id"]])).aio_exists()
    copies = await case_messages(case_id)
    assert [(row[0], row[1], row[2], row[3]) for row in copies] == [
        (mine["id"], 1, a.id, "hello"), (theirs["id"], 2, b.id, "加我微信 spam")]
    assert_error(await client.get(f"/api/v1/users/{a.id}", token=b.token), 404, "not_found")
    case = await ReportCase.aio_get(ReportCase.id == case_id)
    assert (case.reporter_id, case.reported_id, case.reason, case.state, case.filings) == (
        a.id, b.id, "harassment", "open", 1)


async def test_repeat_reports_join_the_open_case(client, make_person):
    a, b = await make_person(), await make_person()
    first = await client.post(REPORTS, {"user_id": b.id, "reason": "spam"}, token=a.token)
    again = await client.post(REPORTS, {"user_id": b.id, "reason": "fake", "detail": "also fake"}, token=a.token)
    assert first.status == again.status == 200 and first.data == again.data
    filings = [(f.reason, f.detail) for f in await ReportFiling.select()
               .where(ReportFiling.case_id == first.data["id"]).order_by(ReportFiling.id).aio_execute()]
    assert filings == [("spam", ""), ("fake", "also fake")]
    assert (await ReportCase.aio_get(ReportCase.id == first.data["id"])).filings == 2
    other = await client.post(REPORTS, {"user_id": a.id, "reason": "spam"}, token=b.token)  # the other way round
    assert other.data["id"] != first.data["id"]
    await ReportCase.update(state="closed").where(ReportCase.id == first.data["id"]).aio_execute()
    later = await client.post(REPORTS, {"user_id": b.id, "reason": "spam"}, token=a.token)
    assert later.status == 200 and later.data["id"] not in (first.data["id"], other.data["id"])


async def test_message_ids_must_be_of_our_conversation(client, make_person):
    a, b = await matched_pair(client, make_person)
    c, d = await matched_pair(client, make_person)
    elsewhere = (await send(client, c, d, "not yours")).data
    ours = (await send(client, a, b, "ours")).data
    for ids in ([elsewhere["id"]], [ours["id"], elsewhere["id"]], [2**62]):
        error = assert_error(await client.post(REPORTS, {"user_id": b.id, "reason": "spam", "message_ids": ids},
                                               token=a.token), 400, "invalid_params")
        assert "message_ids" in error["data"]["fields"]
    assert b.id in await match_ids(client, a)  # nothing happened: no block, no case
    assert not await ReportCase.select().where(ReportCase.reporter_id == a.id).aio_exists()
    stranger = await make_person()  # not matched: there is no conversation to name messages of
    error = assert_error(await client.post(REPORTS, {"user_id": stranger.id, "reason": "spam",
                                                     "message_ids": [ours["id"]]}, token=a.token), 400, "invalid_params")
    assert "message_ids" in error["data"]["fields"]


@pytest.mark.parametrize("body, field", [
    ({"reason": "spam"}, "user_id"), ({"user_id": 5}, "reason"), ({"user_id": 5, "reason": "rude"}, "reason"),
    ({"user_id": "5", "reason": "spam"}, "user_id"), ({"user_id": 5, "reason": "spam", "detail": 7}, "detail"),
    ({"user_id": 5, "reason": "spam", "detail": "x" * 501}, "detail"),
    ({"user_id": 5, "reason": "spam", "message_ids": "1"}, "message_ids"),
    ({"user_id": 5, "reason": "spam", "message_ids": ["1"]}, "message_ids.0"),
    ({"user_id": 5, "reason": "spam", "message_ids": list(range(1, 102))}, "message_ids"),
    ({"user_id": 5, "reason": "spam", "colour": "red"}, "colour"),
])
async def test_bad_bodies(client, make_person, body, field):
    me = await make_person()
    error = assert_error(await client.post(REPORTS, body, token=me.token), 400, "invalid_params")
    assert field in error["data"]["fields"], error


async def test_bad_requests(client, make_person):
    me = await make_person()
    assert_error(await client.post(REPORTS, {"user_id": me.id, "reason": "spam"}, token=me.token), 409, "conflict")
    assert_error(await client.post(REPORTS, {"user_id": 2**62, "reason": "spam"}, token=me.token), 404, "not_found")
    assert_error(await client.post(REPORTS, body=b'{"user_id": 1,', token=me.token,
                                   headers={"Content-Type": "application/json"}), 400, "invalid_params")
    assert_error(await client.post(REPORTS, {"user_id": 1, "reason": "spam"}), 401, "not_authenticated")
    assert_error(await client.get(REPORTS, token=me.token), 405, "method_not_allowed")
