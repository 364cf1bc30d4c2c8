"""Real ``server.py`` processes: dead Redis/MySQL (503, then recovery without a restart), logout seen by another
process, and a graceful drain on SIGTERM."""
from __future__ import annotations

import asyncio
import re
import signal
import time

import pytest

from conf import parse_mysql_url
from models import Swipe
from tests.conftest import new_phone, server_env
from tests.support.client import Client, KeepAliveConnection, assert_error
from tests.support.locks import connect, lock_holder, wait_until_running
from tests.support.processes import ServerProcess
from tests.support.proxy import TcpProxy


async def login_via(client: Client, sms_stub, phone: str | None = None) -> dict:
    phone = phone or new_phone()
    assert (await client.post("/api/v1/sms-codes", {"phone": phone})).status == 200
    resp = await client.post("/api/v1/sessions", {"phone": phone, "code": sms_stub.last_code(phone)})
    assert resp.status == 200, resp.body
    return resp.data


async def eventually_ok(call, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        resp = await call()
        if resp.status == 200 or time.monotonic() > deadline:
            return resp
        await asyncio.sleep(0.2)


@pytest.fixture
async def proxied_server(settings, schema, sms_stub, request):
    """A server whose MySQL and Redis connections go through proxies the test can cut."""
    extra_env = getattr(request, "param", {})
    mysql = parse_mysql_url(settings.mysql_url)
    mysql_proxy, redis_proxy = TcpProxy(mysql.host, mysql.port), TcpProxy("127.0.0.1", 6379)
    await mysql_proxy.start()
    await redis_proxy.start()
    redis_db = settings.redis_url.rsplit("/", 1)[1]
    mysql_url = f"mysql://{mysql.user}:{mysql.password}@127.0.0.1:{mysql_proxy.port}/{mysql.database}"
    server = ServerProcess(server_env(settings, mysql_url=mysql_url,
                                      redis_url=f"redis://127.0.0.1:{redis_proxy.port}/{redis_db}", **extra_env))
    await server.start()
    yield server, mysql_proxy, redis_proxy
    assert server.stop() == 0, server.output()[-3000:]
    await mysql_proxy.cut()
    await redis_proxy.cut()


async def test_dead_redis_serves_signed_in_users_from_mysql_and_recovers(proxied_server, sms_stub):
    """MySQL is the truth: without Redis, tokens are checked against the revocations MySQL keeps too, and accounts
    are read from MySQL; what only Redis can do (codes, the feed's queues, writes of cached rows) answers 503."""
    server, _mysql, redis_proxy = proxied_server
    client = Client(server.base_url)
    session = await login_via(client, sms_stub)
    token = session["access_token"]
    ended = await login_via(client, sms_stub)
    assert (await client.delete("/api/v1/sessions/current", token=ended["access_token"])).status == 200
    await redis_proxy.cut()
    started = time.monotonic()
    profile = await client.get("/api/v1/profile", token=token)
    assert profile.status == 200 and profile.data["id"] == session["user"]["id"]
    assert time.monotonic() - started < 4
    assert_error(await client.get("/api/v1/profile", token=ended["access_token"]), 401, "not_authenticated")
    assert (await client.get(f"/api/v1/users/{ended['user']['id']}", token=token)).status == 200
    body = assert_error(await client.patch("/api/v1/profile", {"location": "北京"}, token=token), 503,
                        "unavailable")  # the cache could not be told: refused before anything is written
    assert body["data"] == {"dependency": "redis"}
    assert_error(await client.post("/api/v1/sms-codes", {"phone": new_phone()}), 503, "unavailable")
    assert_error(await client.delete("/api/v1/sessions/current", token=token), 503, "unavailable")
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert_error(ready, 503, "unavailable")
    assert ready.json["data"]["redis"] == "down" and ready.json["data"]["mysql"] == "ok"
    await redis_proxy.restore()
    patched = await eventually_ok(lambda: client.patch("/api/v1/profile", {"location": "北京"}, token=token))
    assert patched.status == 200 and patched.data["location"] == "北京"
    assert (await client.get("/readyz")).status == 200
    assert_error(await client.get("/api/v1/profile", token=ended["access_token"]), 401, "not_authenticated")


async def test_dead_mysql_is_503_keeps_the_code_and_recovers(proxied_server, sms_stub):
    server, mysql_proxy, _redis = proxied_server
    client = Client(server.base_url)
    me = await login_via(client, sms_stub)
    other = await login_via(client, sms_stub)
    phone = new_phone()
    assert (await client.post("/api/v1/sms-codes", {"phone": phone})).status == 200
    code = sms_stub.last_code(phone)
    await mysql_proxy.cut()
    started = time.monotonic()
    # a user nobody has read yet is not cached: this needs MySQL
    resp = await client.get(f"/api/v1/users/{other['user']['id'] + 10**6}", token=me["access_token"])
    assert_error(resp, 503, "unavailable")
    assert time.monotonic() - started < 4
    assert_error(await client.post("/api/v1/sessions", {"phone": phone, "code": code}), 503, "unavailable")
    assert_error(await client.patch("/api/v1/profile", {"location": "北京"}, token=me["access_token"]), 503,
                 "unavailable")
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 503 and ready.json["data"]["mysql"] == "down"
    await mysql_proxy.restore()
    assert (await eventually_ok(lambda: client.get("/readyz"))).status == 200
    # the code consumed by the failed login was put back: the user does not need a new SMS
    login = await client.post("/api/v1/sessions", {"phone": phone, "code": code})
    assert login.status == 200 and login.data["is_new_user"] is True
    patched = await client.patch("/api/v1/profile", {"location": "北京"}, token=me["access_token"])
    assert patched.status == 200 and patched.data["location"] == "北京"


async def wait_for_local_caches(client: Client) -> None:
    """Until the process's invalidation subscription is confirmed (its local caches serve reads only then)."""
    deadline = time.monotonic() + 10
    while "swiper_local_caches_live 1.0" not in (await client.get("/metrics")).body.decode():
        assert time.monotonic() < deadline, "local caches never went live"
        await asyncio.sleep(0.05)


async def test_logout_in_one_process_is_seen_by_another(settings, schema, sms_stub):
    first, second = ServerProcess(server_env(settings)), ServerProcess(server_env(settings))
    await asyncio.gather(first.start(), second.start())
    try:
        a, b = Client(first.base_url), Client(second.base_url)
        await wait_for_local_caches(a)
        await wait_for_local_caches(b)
        session = await login_via(a, sms_stub)
        token = session["access_token"]
        for _ in range(2):  # the second answer comes from b's local copies (no Redis read)
            assert (await b.get("/api/v1/profile", token=token)).data["location"] is None
        # a write in one process is seen by the next read in the other, local copies or not
        assert (await a.patch("/api/v1/profile", {"location": "北京"}, token=token)).status == 200
        assert (await b.get("/api/v1/profile", token=token)).data["location"] == "北京"
        assert (await a.delete("/api/v1/sessions/current", token=token)).status == 200
        assert_error(await b.get("/api/v1/profile", token=token), 401, "not_authenticated")
        assert_error(await b.put("/api/v1/sessions/current", {"refresh_token": session["refresh_token"]}), 401,
                     "not_authenticated")
    finally:
        codes = [first.stop(), second.stop()]
        assert codes == [0, 0]


@pytest.fixture
async def monitor(database_url):
    conn = await connect(database_url)
    yield conn
    conn.close()


async def patch_held_by_a_row_lock(client: Client, holder, monitor, session: dict) -> asyncio.Future:
    """A profile write that stays in flight until ``holder`` lets go of the user's row (it waits in MySQL)."""
    user_id = session["user"]["id"]
    await holder.run("SELECT id FROM user WHERE id = %s FOR UPDATE", (user_id,))
    request = asyncio.ensure_future(client.patch("/api/v1/profile", {"location": "北京"},
                                                 token=session["access_token"], timeout=30))
    await wait_until_running(monitor, rf"^UPDATE\W+user\W.*\b{user_id}\b")
    return request


async def until_exited(server: ServerProcess, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while (code := server.proc.poll()) is None:
        assert time.monotonic() < deadline, "the process never exited"
        await asyncio.sleep(0.05)
    return code


async def test_sigterm_drains_in_flight_requests_and_says_so(settings, schema, sms_stub, database_url, monitor):
    server = ServerProcess(server_env(settings))  # the default drain timeout (10 s): the request decides
    await server.start()
    client = Client(server.base_url)
    session = await login_via(client, sms_stub)
    readiness, other = await KeepAliveConnection.open(server.base_url), await KeepAliveConnection.open(server.base_url)
    try:
        assert (await readiness.get("/readyz")).status == 200
        async with lock_holder(database_url) as holder:
            in_flight = await patch_held_by_a_row_lock(client, holder, monitor, session)
            server.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while (ready := await readiness.get("/readyz")).status == 200:  # until the signal is handled
                assert time.monotonic() < deadline, "the process never started draining"
                await asyncio.sleep(0.02)
            body = assert_error(ready, 503, "unavailable")
            assert body["data"] == {"mysql": "ok", "redis": "ok", "process": "draining"}
            assert ready.headers["Connection"] == "close"
            health = await other.get("/healthz")  # a success says it too: keep-alive clients move on
            assert health.status == 200 and health.headers["Connection"] == "close"
            with pytest.raises(ConnectionError):  # and no new connection is accepted
                await client.get("/healthz", timeout=2)
            assert server.proc.poll() is None and not in_flight.done()  # it waits for the request
            readiness.close()
            other.close()
        resp = await in_flight  # the row is free: the request finishes, then the process exits
        assert resp.status == 200 and resp.data["location"] == "北京", resp.body
        assert await until_exited(server) == 0
    finally:
        readiness.close()
        other.close()
        assert server.stop() == 0
    assert "drain timeout" not in server.output()


async def test_the_drain_deadline_ends_the_process_with_a_request_in_flight(settings, schema, sms_stub,
                                                                           database_url, monitor):
    # the statement could wait 60 s (no query deadline sooner): only the drain deadline can end the request
    server = ServerProcess(server_env(settings, drain_timeout="1", mysql_query_timeout="60"))
    await server.start()
    client = Client(server.base_url)
    session = await login_via(client, sms_stub)
    try:
        async with lock_holder(database_url) as holder:
            in_flight = await patch_held_by_a_row_lock(client, holder, monitor, session)
            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            assert await until_exited(server) == 0  # while the row is still locked: the request never finished
            assert time.monotonic() - signalled >= 1.0
            with pytest.raises(ConnectionError):
                await in_flight  # cut at the deadline, no answer
    finally:
        assert server.stop() == 0
    assert re.search(r"drain timeout: closing \d+ connections, 1 requests still in flight", server.output())


@pytest.mark.parametrize("proxied_server", [{"rate_limit_enabled": "true", "rate_limit_anonymous": "3"}],
                         indirect=True)
async def test_without_redis_limits_fail_open_but_secrets_fail_closed(proxied_server, sms_stub):
    server, _mysql, redis_proxy = proxied_server
    client = Client(server.base_url)
    session = await login_via(client, sms_stub)  # two anonymous requests of the three allowed
    await redis_proxy.cut()
    levels = [await client.get("/api/v1/vip/levels", headers={"X-Real-IP": "10.9.9.9"}) for _ in range(4)]
    assert [r.status for r in levels] == [200, 200, 200, 429]  # the per-process fallback still limits
    assert levels[0].headers["RateLimit-Limit"] == "3"
    assert_error(await client.post("/api/v1/sms-codes", {"phone": new_phone()},
                                   headers={"X-Real-IP": "10.9.9.8"}), 503, "unavailable")
    assert_error(await client.post("/api/v1/sessions", {"phone": new_phone(), "code": "123456"},
                                   headers={"X-Real-IP": "10.9.9.7"}), 503, "unavailable")
    assert (await client.get("/api/v1/profile", token=session["access_token"])).status == 200  # checked in MySQL
    await redis_proxy.restore()
    assert (await eventually_ok(lambda: client.get("/api/v1/profile", token=session["access_token"]))).status == 200


@pytest.mark.parametrize("proxied_server", [{"mysql_query_timeout": "1"}], indirect=True)
async def test_frozen_mysql_answers_503_within_the_query_deadline(proxied_server, sms_stub):
    server, mysql_proxy, _redis = proxied_server
    client = Client(server.base_url)
    me = await login_via(client, sms_stub)
    them = await login_via(client, sms_stub)
    mysql_proxy.freeze()
    try:
        # a transaction on the connection the logins left idle: its BEGIN is under the statements' deadline (it
        # used to wait for as long as MySQL was frozen, and the swipe then committed after the thaw although its
        # client had been answered 503)
        started = time.monotonic()
        resp = await client.post("/api/v1/swipes", {"user_id": them["user"]["id"], "action": "like"},
                                 token=me["access_token"], timeout=10)
        assert_error(resp, 503, "unavailable")
        assert time.monotonic() - started < 3
        # and a request that needs a new connection: its handshake is bounded too (2 × the connect timeout)
        started = time.monotonic()
        resp = await client.get(f"/api/v1/users/{me['user']['id'] + 10**6}", token=me["access_token"], timeout=10)
        assert_error(resp, 503, "unavailable")
        assert time.monotonic() - started < 3
    finally:
        mysql_proxy.thaw()
    await asyncio.sleep(1)  # whatever the frozen connection still carried has reached MySQL, or never will
    assert await Swipe.select().where(Swipe.user_id == me["user"]["id"]).aio_count() == 0
    # the timed-out connection was thrown away, not reused half-read: MySQL answers normally again
    assert (await eventually_ok(lambda: client.patch("/api/v1/profile", {"location": "西安"},
                                                     token=me["access_token"]))).data["location"] == "西安"
