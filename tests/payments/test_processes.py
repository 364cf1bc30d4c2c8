"""Exactly once across processes: 100 duplicate notifications split over two server processes, and 10 provider
queries from a third (this test's), all at once for one order → one membership extension."""
from __future__ import annotations

import asyncio
import zoneinfo

from services.payments.membership import add_months
from services.payments.reconcile import check_order
from tests.conftest import server_env
from tests.payments.conftest import buy, order_row, payment_settings, user_row
from tests.support.processes import ServerProcess


async def test_100_notifications_and_10_queries_on_three_processes_extend_once(
        settings, schema, pay_app, alipay_stub, wechat_stub, app_keys, make_person, tmp_path):
    extra = payment_settings("http://127.0.0.1:1", tmp_path, app_keys, alipay_stub, wechat_stub)
    # small pools: the 100 notifications queue on one order's row lock anyway, and the MariaDB is shared
    env = {**{key: str(value) for key, value in extra.items()}, "mysql_pool_size": "5"}
    first, second = ServerProcess(server_env(settings, **env)), ServerProcess(server_env(settings, **env))
    await asyncio.gather(first.start(), second.start())
    try:
        person = await make_person(level=2)   # an active gold membership: the purchase stacks on its expiry
        before = (await user_row(person.id)).vip_expires_at
        results = {}
        for channel in ("alipay", "wechat"):
            order = await buy(pay_app, person.token, "gold-1m", channel)
            order_no = order["order_no"]
            if channel == "alipay":
                alipay_stub.open_order_string(order["pay_params"])
                alipay_stub.pay(order_no)
                notes = [alipay_stub.notification(order_no) for _ in range(100)]
                sends = [alipay_stub.send((first if i % 2 else second).base_url + "/api/v1/payments/alipay/notify",
                                          note) for i, note in enumerate(notes)]
            else:
                wechat_stub.pay(order_no)
                notes = [wechat_stub.notification(order_no) for _ in range(100)]
                sends = [wechat_stub.send((first if i % 2 else second).base_url + "/api/v1/payments/wechat/notify",
                                          *note) for i, note in enumerate(notes)]
            queries = [check_order(redis=pay_app.redis, settings=pay_app.settings, channels=pay_app.channels,
                                   order_no=order_no, channel=channel, expired=False) for _ in range(10)]
            answers = await asyncio.gather(*sends, *queries)
            results[channel] = answers
            assert set(answers[:100]) == ({(200, "success")} if channel == "alipay" else {(204, "")}), set(answers)
            assert set(answers[100:]) == {"paid"}
            assert (await order_row(order_no)).status == "paid"
        user = await user_row(person.id)
        tz = zoneinfo.ZoneInfo(settings.timezone)
        assert user.vip_level == 2
        assert user.vip_expires_at == add_months(add_months(before, 1, tz), 1, tz)   # one month per order, once
        logs = first.output() + second.output()
        assert logs.count(" paid (") <= 2, logs[-3000:]   # at most one "applied" line per order in the servers
    finally:
        codes = [first.stop(), second.stop()]
        assert codes == [0, 0]
