"""POST /api/v1/sms-codes: formats, limits, concurrency, provider failures, no enumeration, hashed storage."""
from __future__ import annotations

import asyncio
import time

import pytest

from services import keys
from tests.conftest import login, new_phone
from tests.support.client import assert_error

PATH = "/api/v1/sms-codes"


def ip_headers(ip: str = "10.1.2.3") -> dict[str, str]:
    return {"X-Real-IP": ip}


async def test_send_returns_timings_and_reaches_provider(client, sms_stub, redis):
    phone = new_phone()
    resp = await client.post(PATH, {"phone": phone}, headers=ip_headers())
    assert resp.status == 200
    assert resp.json == {"code": 0, "data": {"resend_after": 60, "expires_in": 300}}
    code = sms_stub.last_code(phone)
    assert code is not None and len(code) == 6 and code.isdigit()
    sent = [r for r in sms_stub.received if r["phone"] == phone][-1]
    assert sent["template_param"] == {"code": code}
    stored = await redis.hgetall(keys.sms_code(phone))
    assert stored["h"] != code and code not in stored["h"], "codes are stored hashed"
    assert 290 <= await redis.ttl(keys.sms_code(phone)) <= 300


@pytest.mark.parametrize("raw", ["+86 138-0013-{tail}", "0086 1380013{tail}", "  138 0013 {tail}  ",
                                 "+8613800 13{tail}", " 0086-138-0013-{tail} ", "+86-1380013{tail}",
                                 "0086-1380013{tail}"])
async def test_accepted_phone_formats_are_normalised(client, sms_stub, raw):
    tail = new_phone()[-4:]
    resp = await client.post(PATH, {"phone": raw.format(tail=tail)}, headers=ip_headers("10.9.0.1"))
    assert resp.status == 200, resp.body
    assert sms_stub.last_code(f"1380013{tail}") is not None


@pytest.mark.parametrize("phone", ["12345678901", "1380013800", "138001380001", "+1 13800138000", "1380013800a",
                                   13800138000, None, "", "１３８００１３８０００", "138--0013-8000", "-13800138000",
                                   "+86+8613800138000", ["13800138000"], "+86--13800138000", "0086 - 13800138000",
                                   "13800138000-", "86-13800138000", "+86-"])
async def test_rejected_phones(client, sms_stub, phone):
    before = len(sms_stub.received)
    resp = await client.post(PATH, {"phone": phone})
    body = assert_error(resp, 400, "invalid_params")
    assert "phone" in body["data"]["fields"]
    assert len(sms_stub.received) == before


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"13800138000"', b"", b"null", b"\xff\xfe"])
async def test_bad_bodies(client, raw):
    assert_error(await client.request("POST", PATH, body=raw), 400, "invalid_params")


async def test_missing_and_unknown_fields(client):
    body = assert_error(await client.post(PATH, {}), 400, "invalid_params")
    assert body["data"]["fields"] == {"phone": "required"}
    body = assert_error(await client.post(PATH, {"phone": new_phone(), "debug": 1}), 400, "invalid_params")
    assert body["data"]["fields"] == {"debug": "unknown field"}


def limit_headers(resp) -> tuple[int, int, int]:
    return tuple(int(resp.headers[f"RateLimit-{name}"]) for name in ("Limit", "Remaining", "Reset"))


async def test_cooldown_then_hour_cap(client, sms_stub, redis):
    """The request-rate limits are off in this app (SWIPER_RATE_LIMIT_ENABLED=false); the SMS limits and their
    RateLimit headers are not (issue 10, item 4)."""
    phone = new_phone()
    first = await client.post(PATH, {"phone": phone}, headers=ip_headers())
    assert first.status == 200
    limit, remaining, reset = limit_headers(first)  # the tightest limit now: the cooldown, used up
    assert (limit, remaining) == (1, 0) and 55 <= reset <= 60
    again = await client.post(PATH, {"phone": phone}, headers=ip_headers())
    body = assert_error(again, 429, "rate_limited")
    assert body["data"]["limit"] == "cooldown"
    assert 55 <= int(again.headers["Retry-After"]) <= 60
    assert limit_headers(again)[:2] == (1, 0) and limit_headers(again)[2] == int(again.headers["Retry-After"])
    for sent in range(2, 6):  # the cooldown passes (we skip the wait), the hour window keeps counting
        await redis.delete(keys.sms_cooldown(phone))
        resp = await client.post(PATH, {"phone": phone}, headers=ip_headers())
        assert resp.status == 200  # after the 5th the hour is used up too, and outlasts the cooldown
        assert limit_headers(resp)[:2] == ((1, 0) if sent < 5 else (5, 0))
    await redis.delete(keys.sms_cooldown(phone))
    capped = await client.post(PATH, {"phone": phone}, headers=ip_headers())
    assert assert_error(capped, 429, "rate_limited")["data"]["limit"] == "hour"
    assert 3500 <= int(capped.headers["Retry-After"]) <= 3600
    limit, remaining, reset = limit_headers(capped)
    assert (limit, remaining) == (5, 0) and reset == int(capped.headers["Retry-After"])
    assert len(sms_stub.codes_for(phone)) == 5


async def test_day_cap_counts_earlier_sends(client, redis):
    phone = new_phone()
    earlier = (time.time() - 2 * 3600) * 1000  # ten sends two hours ago: outside the hour, inside the day
    await redis.zadd(keys.sms_day(phone), {f"old{i}": earlier + i for i in range(10)})
    resp = await client.post(PATH, {"phone": phone}, headers=ip_headers())
    assert assert_error(resp, 429, "rate_limited")["data"]["limit"] == "day"
    assert 22 * 3600 - 5 <= int(resp.headers["Retry-After"]) <= 22 * 3600
    assert limit_headers(resp) == (10, 0, int(resp.headers["Retry-After"]))
    await redis.zremrangebyrank(keys.sms_day(phone), 0, 0)  # one place free in the day: that is the tightest
    sent = await client.post(PATH, {"phone": phone}, headers=ip_headers())
    assert sent.status == 200 and limit_headers(sent)[:2] == (10, 0)


async def test_ip_cap(client, sms_stub):
    ip = "10.77.77.77"
    for _ in range(20):
        assert (await client.post(PATH, {"phone": new_phone()}, headers=ip_headers(ip))).status == 200
    phone = new_phone()
    resp = await client.post(PATH, {"phone": phone}, headers=ip_headers(ip))
    assert assert_error(resp, 429, "rate_limited")["data"]["limit"] == "ip_day"
    assert sms_stub.last_code(phone) is None
    assert (await client.post(PATH, {"phone": phone}, headers=ip_headers("10.77.77.78"))).status == 200


async def test_concurrent_requests_send_one_sms(client, sms_stub):
    phone = new_phone()
    results = await asyncio.gather(*[client.post(PATH, {"phone": phone}, headers=ip_headers()) for _ in range(20)])
    statuses = sorted(r.status for r in results)
    assert statuses == [200] + [429] * 19
    assert len(sms_stub.codes_for(phone)) == 1


@pytest.mark.parametrize("mode", ["business_error", "http_500", "slow"])
async def test_provider_failure_is_502_and_starts_no_limit(client, sms_stub, redis, mode):
    phone = new_phone()
    sms_stub.mode = mode
    try:
        started = time.monotonic()
        resp = await client.post(PATH, {"phone": phone}, headers=ip_headers())
        assert_error(resp, 502, "upstream_failed")
        assert time.monotonic() - started < 4
    finally:
        sms_stub.mode = "ok"
    assert not await redis.exists(keys.sms_cooldown(phone), keys.sms_code(phone))
    assert await redis.zcard(keys.sms_hour(phone)) == 0
    assert (await client.post(PATH, {"phone": phone}, headers=ip_headers())).status == 200


async def test_same_answer_for_registered_and_new_phones(client, sms_stub, redis):
    known = await login(client, sms_stub)
    await redis.delete(keys.sms_cooldown(known.phone))
    registered = await client.post(PATH, {"phone": known.phone}, headers=ip_headers("10.5.5.5"))
    fresh = await client.post(PATH, {"phone": new_phone()}, headers=ip_headers("10.5.5.6"))
    assert registered.status == fresh.status == 200
    assert registered.json == fresh.json
    ignored = {"Date", "X-Request-Id"}
    assert set(registered.headers) - ignored == set(fresh.headers) - ignored


def test_published_phone_pattern_matches_what_the_server_accepts():
    import re as regex

    from services.phones import ACCEPTED_PATTERN, normalize_phone
    samples = ["13800138000", " +86 138-0013-8000 ", "0086 13800138000", "138 0013 8000", "+86+8613800138000",
               "12800138000", "138--00138000", "-13800138000", "1380013800", "+8613800 13800", "1 3800138000",
               "\t13800138000\n", "+86-13800138000", "  13000000000" + " " * 20]
    for raw in samples:
        try:
            normalize_phone(raw)
            accepted = True
        except ValueError:
            accepted = False
        assert accepted == (regex.fullmatch(ACCEPTED_PATTERN, raw) is not None and len(raw) <= 32), raw
