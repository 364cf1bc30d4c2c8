"""Load-shaped checks in-process: a storm of 500 notifications never holds the IOLoop (the suite's step timer,
here installed for this test alone so it fails by name), and the notify endpoints' own per-IP limit."""
from __future__ import annotations

import asyncio

from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from handlers.base import InFlight
from models import VipOrder
from server import make_app
from services.redis_client import build_redis
from services.sms import build_sms_sender
from tests.payments.conftest import buy, user_row
from tests.support.slow_callbacks import SuiteStepTimer

ORDERS = 50
COPIES = 10   # 500 notifications: every one of 50 orders notified 10 times, in a shuffled storm


async def test_a_storm_of_500_notifications_applies_each_once_and_never_blocks_the_loop(
        pay_app, alipay_stub, wechat_stub, make_person):
    people = await asyncio.gather(*[make_person() for _ in range(ORDERS)])
    sends = []
    for index, person in enumerate(people):
        channel = "alipay" if index % 2 else "wechat"
        order = await buy(pay_app, person.token, "gold-1m", channel)
        if channel == "alipay":
            alipay_stub.open_order_string(order["pay_params"])
            alipay_stub.pay(order["order_no"])
            sends += [(alipay_stub.send, (pay_app.alipay_notify, alipay_stub.notification(order["order_no"])))
                      for _ in range(COPIES)]
        else:
            wechat_stub.pay(order["order_no"])
            sends += [(wechat_stub.send, (pay_app.wechat_notify, *wechat_stub.notification(order["order_no"])))
                      for _ in range(COPIES)]
    sends = sends[::7] + [s for i, s in enumerate(sends) if i % 7]   # duplicates of one order spread apart
    timer = SuiteStepTimer()
    timer.install()
    in_flight = asyncio.Semaphore(50)   # a provider's retry fleet: many at once, not all 500 on one socket

    async def deliver(send, args):
        async with in_flight:
            return await send(*args)
    try:
        answers = await asyncio.gather(*[deliver(send, args) for send, args in sends])
    finally:
        timer.uninstall()
    assert len(answers) == ORDERS * COPIES
    assert all(answer in ((200, "success"), (204, "")) for answer in answers), set(answers)
    assert not timer.app, "slow loop steps during the storm:\n" + "\n".join(timer.app)
    paid = await VipOrder.select().where(VipOrder.user_id.in_([p.id for p in people])
                                         & (VipOrder.status == "paid")).aio_count()
    assert paid == ORDERS
    expiries = {(await user_row(p.id)).vip_expires_at.date() for p in people}
    assert len(expiries) <= 2   # one month each (two dates only if the storm straddled midnight)


async def test_the_notify_endpoints_are_rate_limited_per_ip_and_only_by_their_own_scope(pay_app, alipay_stub,
                                                                                        make_person):
    limited = pay_app.settings.replace(rate_limit_enabled=True, rate_limit_notify=5, rate_limit_anonymous=2)
    redis, sms = build_redis(limited), build_sms_sender(limited)
    app = make_app(limited, redis=redis, sms=sms, in_flight=InFlight(), payment_channels=pay_app.channels)
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/api/v1/payments/alipay/notify"
    try:
        person = await make_person()
        order = await buy(pay_app, person.token)
        alipay_stub.open_order_string(order["pay_params"])
        alipay_stub.pay(order["order_no"])
        note = alipay_stub.notification(order["order_no"])

        async def send(ip: str):
            return await AsyncHTTPClient().fetch(HTTPRequest(
                url, method="POST", body=urlencode(note), headers={
                    "X-Real-IP": ip, "Content-Type": "application/x-www-form-urlencoded"}), raise_error=False)
        answers = [await send("10.9.9.1") for _ in range(7)]
        assert [a.code for a in answers] == [200] * 5 + [429] * 2   # 5 > the anonymous limit of 2: not counted
        assert [a.body for a in answers] == [b"success"] * 5 + [b"failure"] * 2
        assert answers[-1].headers["Retry-After"] and answers[0].headers["RateLimit-Limit"] == "5"
        assert (await send("10.9.9.2")).code == 200   # another address
        assert "Authorization" not in answers[0].request.headers   # no token needed
    finally:
        server.stop()
        await server.close_all_connections()
        await redis.aclose()
        await sms.aclose()
