"""Plans and orders over HTTP: server-side prices only, the pay params each provider's app SDK checks, refusals."""
from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl

from tests.payments.conftest import buy, order_row
from tests.support.client import assert_error


async def test_plans_are_listed_without_a_token_even_with_purchases_off(client):
    resp = await client.get("/api/v1/vip/plans")
    assert resp.status == 200
    items = resp.data["items"]
    assert {"id": "gold-1m", "level": 2, "months": 1, "price_fen": 3000} in items
    assert {(p["level"], p["months"]) for p in items} == {(lvl, m) for lvl in (1, 2, 3) for m in (1, 3, 12)}


async def test_an_alipay_order_carries_an_order_string_alipay_accepts(pay_app, alipay_stub, make_person):
    person = await make_person()
    order = await buy(pay_app, person.token, "gold-3m")
    assert order["status"] == "pending" and order["amount_fen"] == 7800 and order["channel"] == "alipay"
    assert order["paid_at"] is None and order["vip"] is None and len(order["order_no"]) == 32
    opened = alipay_stub.open_order_string(order["pay_params"])  # asserts the RSA2 signature with our app key
    assert opened["biz"]["total_amount"] == "78.00" and opened["biz"]["out_trade_no"] == order["order_no"]
    assert opened["notify_url"] == pay_app.alipay_notify
    # Beijing time throughout (the SDK's own timestamp would be the machine's naive local time)
    row = await order_row(order["order_no"])
    beijing_expiry = row.expires_at + dt.timedelta(hours=8)
    assert opened["biz"]["time_expire"] == beijing_expiry.strftime("%Y-%m-%d %H:%M:%S")
    assert "sign" in dict(parse_qsl(order["pay_params"]))


async def test_a_wechat_order_prepays_and_carries_app_pay_fields(pay_app, wechat_stub, make_person):
    person = await make_person()
    order = await buy(pay_app, person.token, "diamond-1m", channel="wechat")
    trade = wechat_stub.check_app_pay(order["pay_params"])  # asserts the sign over appid/timestamp/nonce/prepayid
    assert trade.out_trade_no == order["order_no"] and trade.total == 6800
    prepay = next(r for r in wechat_stub.received if r["body"].get("out_trade_no") == order["order_no"])
    assert prepay["uri"] == "/v3/pay/transactions/app"
    assert prepay["body"]["amount"] == {"total": 6800, "currency": "CNY"}
    assert prepay["body"]["notify_url"] == pay_app.wechat_notify and prepay["body"]["time_expire"].endswith("+08:00")
    assert not wechat_stub.rejected


async def test_every_call_makes_a_new_order(pay_app, make_person):
    person = await make_person()
    first, second = await buy(pay_app, person.token), await buy(pay_app, person.token)
    assert first["order_no"] != second["order_no"]


async def test_prices_never_come_from_the_client(pay_app, make_person):
    person = await make_person()
    for extra in ({"amount_fen": 1}, {"price_fen": 1}, {"months": 12}, {"level": 3}):
        resp = await pay_app.client.post("/api/v1/vip/orders", {"plan": "gold-1m", "channel": "alipay", **extra},
                                         token=person.token)
        body = assert_error(resp, 400, "invalid_params")
        assert list(body["data"]["fields"]) == list(extra), body


async def test_bad_bodies_are_refused_by_name(pay_app, make_person):
    person = await make_person()
    cases = [({"plan": "gold-1m"}, {"channel"}), ({"channel": "alipay"}, {"plan"}),
             ({"plan": "gold-1m", "channel": "paypal"}, {"channel"}), ({"plan": 5, "channel": "alipay"}, {"plan"}),
             ({"plan": "platinum-1m", "channel": "alipay"}, {"plan"})]
    for body, fields in cases:
        resp = await pay_app.client.post("/api/v1/vip/orders", body, token=person.token)
        assert set(assert_error(resp, 400, "invalid_params")["data"]["fields"]) == fields, (body, resp.json)
    assert_error(await pay_app.client.request("POST", "/api/v1/vip/orders", body=b"{nope", token=person.token),
                 400, "invalid_params")


async def test_a_channel_that_is_not_enabled_is_1002_naming_channel(client, make_person):
    person = await make_person()
    resp = await client.post("/api/v1/vip/orders", {"plan": "gold-1m", "channel": "alipay"}, token=person.token)
    assert assert_error(resp, 400, "invalid_params")["data"]["fields"] == {
        "channel": "this payment channel is not enabled"}


async def test_buying_below_my_active_level_is_a_conflict(pay_app, make_person):
    person = await make_person(level=3)
    assert_error(await pay_app.client.post("/api/v1/vip/orders", {"plan": "gold-12m", "channel": "wechat"},
                                           token=person.token), 409, "conflict")
    assert (await pay_app.client.post("/api/v1/vip/orders", {"plan": "diamond-1m", "channel": "alipay"},
                                      token=person.token)).status == 200


async def test_orders_need_a_token_and_are_only_their_owners(pay_app, make_person):
    owner, other = await make_person(), await make_person()
    order = await buy(pay_app, owner.token)
    path = f"/api/v1/vip/orders/{order['order_no']}"
    assert_error(await pay_app.client.post("/api/v1/vip/orders", {"plan": "gold-1m", "channel": "alipay"}),
                 401, "not_authenticated")
    assert_error(await pay_app.client.get(path), 401, "not_authenticated")
    assert_error(await pay_app.client.get(path, token=other.token), 404, "not_found")
    assert_error(await pay_app.client.get("/api/v1/vip/orders/" + "0" * 32, token=owner.token), 404, "not_found")
    mine = await pay_app.client.get(path, token=owner.token)
    assert mine.status == 200 and mine.data["status"] == "pending" and "pay_params" not in mine.data


async def test_my_orders_newest_first_with_a_cursor(pay_app, make_person):
    person = await make_person()
    made = [(await buy(pay_app, person.token, channel=channel))["order_no"]
            for channel in ("alipay", "wechat", "alipay")]
    first = await pay_app.client.get("/api/v1/vip/orders?limit=2", token=person.token)
    assert [o["order_no"] for o in first.data["items"]] == made[::-1][:2]
    rest = await pay_app.client.get(f"/api/v1/vip/orders?limit=2&cursor={first.data['next_cursor']}",
                                    token=person.token)
    assert [o["order_no"] for o in rest.data["items"]] == made[:1] and rest.data["next_cursor"] is None
    assert_error(await pay_app.client.get("/api/v1/vip/orders?cursor=forged", token=person.token),
                 400, "invalid_params")


async def test_a_provider_failure_is_502_and_the_order_stays_for_reconciliation(pay_app, wechat_stub, make_person):
    person = await make_person()
    wechat_stub.answer_mode = "forged"  # an answer not signed by WeChat Pay's key is not believed
    try:
        resp = await pay_app.client.post("/api/v1/vip/orders", {"plan": "gold-1m", "channel": "wechat"},
                                         token=person.token)
    finally:
        wechat_stub.answer_mode = "ok"
    assert_error(resp, 502, "upstream_failed")
    listed = await pay_app.client.get("/api/v1/vip/orders", token=person.token)
    assert [o["status"] for o in listed.data["items"]] == ["pending"]  # closed by reconciliation at its expiry
