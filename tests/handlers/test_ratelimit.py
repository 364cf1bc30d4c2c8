"""Request-rate limits: exact under concurrency, per IP / user / VIP, the code-verification scope, headers."""
from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from handlers.base import InFlight
from server import make_app
from services import ratelimit
from services.errors import UnavailableError
from services.redis_client import build_redis
from services.sms import build_sms_sender
from tests.conftest import login, new_phone
from tests.support.client import Client, assert_error
from tests.support.keepalive import KeepAliveConnection

LIMITS = {"redis_pool_size": 250, "redis_timeout": 5.0, "rate_limit_enabled": True, "rate_limit_anonymous": 100, "rate_limit_user": 5, "rate_limit_vip": 8,
          "rate_limit_verify": 3, "rate_limit_window": 60}
HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


@pytest.fixture(scope="module")
async def limited(settings, schema):
    """A second app on the same database and Redis, with the request limits switched on and small."""
    limited_settings = settings.replace(**LIMITS)
    redis = build_redis(limited_settings)
    sms = build_sms_sender(limited_settings)
    app = make_app(limited_settings, redis=redis, sms=sms, in_flight=InFlight())
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    yield Client(f"http://127.0.0.1:{sockets[0].getsockname()[1]}")
    server.stop()
    await server.close_all_connections()
    await redis.aclose()
    await sms.aclose()


def ip(n: int) -> dict[str, str]:
    return {"X-Real-IP": f"10.200.{n // 250}.{n % 250 + 1}"}


async def test_two_hundred_parallel_against_one_hundred(limited, redis):
    results = await asyncio.gather(*[limited.get("/api/v1/vip/levels", headers=ip(1)) for _ in range(200)])
    assert sorted(r.status for r in results).count(200) == 100
    assert sorted(r.status for r in results).count(429) == 100
    for resp in results:
        assert all(name in resp.headers for name in HEADERS)
    refused = next(r for r in results if r.status == 429)
    body = assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60 and refused.headers["RateLimit-Remaining"] == "0"
    assert body["data"]["scope"] == "ip"
    remaining = sorted(int(r.headers["RateLimit-Remaining"]) for r in results if r.status == 200)
    assert remaining == list(range(100))
    assert (await limited.get("/api/v1/vip/levels", headers=ip(2))).status == 200  # another client IP


async def test_signed_in_users_count_per_user_and_vips_get_more(limited, make_person):
    free, vip = await make_person(), await make_person(level=1)
    same_ip = ip(3)
    statuses = [(await limited.get("/api/v1/profile", token=free.token, headers=same_ip)).status for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    vip_statuses = [(await limited.get("/api/v1/vip", token=vip.token, headers=same_ip)).status for _ in range(9)]
    assert vip_statuses == [200] * 8 + [429]
    limit_header = (await limited.get("/api/v1/vip", token=(await make_person(level=2)).token)).headers
    assert limit_header["RateLimit-Limit"] == "8"


async def test_code_verification_scope_per_ip(limited):
    for n in range(3):
        resp = await limited.post("/api/v1/sessions", {"phone": f"1390000{n:04d}", "code": "000000"},
                                  headers=ip(4))
        assert_error(resp, 400, "vcode_invalid")
        assert resp.headers["RateLimit-Limit"] == "3"
    blocked = await limited.post("/api/v1/sessions", {"phone": "13900009999", "code": "000000"}, headers=ip(4))
    assert assert_error(blocked, 429, "rate_limited")["data"]["scope"] == "verify"
    assert blocked.headers["Retry-After"]
    other_ip = await limited.post("/api/v1/sessions", {"phone": "13900009999", "code": "000000"}, headers=ip(5))
    assert_error(other_ip, 400, "vcode_invalid")


async def test_errors_carry_the_headers_and_service_endpoints_are_not_limited(limited, make_person):
    me = await make_person()
    missing = await limited.get("/api/v1/users/999999999", token=me.token, headers=ip(6))
    assert_error(missing, 404, "not_found")
    assert all(name in missing.headers for name in HEADERS)
    health = await limited.get("/healthz")
    assert health.status == 200 and "RateLimit-Limit" not in health.headers


async def test_disabled_limits_leave_sms_limits_on(client, sms_stub):
    session = await login(client, sms_stub)
    assert "RateLimit-Limit" not in (await client.get("/api/v1/profile", token=session.access_token)).headers
    again = await client.post("/api/v1/sms-codes", {"phone": session.phone})
    assert assert_error(again, 429, "rate_limited")["data"]["limit"] == "cooldown"
    assert again.headers["RateLimit-Limit"] == "1" and again.headers["RateLimit-Remaining"] == "0"
    assert again.headers["RateLimit-Reset"] == again.headers["Retry-After"]


async def test_sms_sends_show_the_tightest_of_the_request_and_sms_limits(limited):
    sent = await limited.post("/api/v1/sms-codes", {"phone": new_phone()}, headers=ip(8))
    assert sent.status == 200
    assert (sent.headers["RateLimit-Limit"], sent.headers["RateLimit-Remaining"]) == ("1", "0")  # the cooldown


async def test_refused_requests_keep_the_connection_usable(limited, make_person):
    """A 429 from the limiter is raised in prepare(): the connection must stay usable (issue 10, item 7)."""
    me = await make_person()
    headers = {"Authorization": f"Bearer {me.token}", "Content-Type": "application/json", **ip(7)}
    body = b'{"user_id": 1, "action": "like"}'
    statuses = []
    async with KeepAliveConnection(limited.base_url) as connection:
        for _ in range(12):
            answer = await connection.request("POST", "/api/v1/swipes", headers=headers, body=body)
            statuses.append(answer.status)
            assert not answer.closes
            assert (await connection.request("GET", "/healthz")).status == 200
    assert statuses.count(429) == 12 - LIMITS["rate_limit_user"]


@pytest.mark.standalone_redis
async def test_an_exhausted_redis_pool_sheds_load_instead_of_admitting_it(settings, schema, redis):
    """Every connection of the process's pool busy: the limiter answers 503 at once, not a fallback admit (that
    is for a Redis that is gone); a Redis that refuses connections does fall back to the per-process window."""
    tight = settings.replace(**{**LIMITS, "redis_pool_size": 2, "redis_timeout": 0.2})
    redis = build_redis(tight)
    sms = build_sms_sender(tight)
    app = make_app(tight, redis=redis, sms=sms, in_flight=InFlight())
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    client = Client(f"http://127.0.0.1:{sockets[0].getsockname()[1]}")
    fallback = app.settings["rate_fallback"]
    try:
        assert (await client.get("/api/v1/vip/levels", headers=ip(7))).status == 200  # the pool works
        held = [await redis.connection_pool.get_connection() for _ in range(2)]  # a burst holds them all
        try:
            shed = await client.get("/api/v1/vip/levels", headers=ip(7))
            assert assert_error(shed, 503, "unavailable")["data"] == {"dependency": "redis"}
            with pytest.raises(UnavailableError):
                await ratelimit.check(redis=redis, fallback=fallback, scope="ip", identity="10.200.9.9", limit=5,
                                      window=60)
            assert not fallback._windows  # nothing was counted (or let through) by the per-process fallback
        finally:
            for connection in held:
                await redis.connection_pool.release(connection)
        again = await client.get("/api/v1/vip/levels", headers=ip(7))
        assert again.status == 200 and again.headers["RateLimit-Remaining"] == str(LIMITS["rate_limit_anonymous"] - 2)
        gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)  # nothing listens there
        verdict = await ratelimit.check(redis=gone, fallback=fallback, scope="ip", identity="10.200.9.9", limit=5,
                                        window=60)
        await gone.aclose()
        assert verdict.allowed and verdict.remaining == 4 and len(fallback._windows) == 1
    finally:
        server.stop()
        await server.close_all_connections()
        await redis.aclose()
        await sms.aclose()
