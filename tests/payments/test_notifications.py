"""The notify endpoints: a good notification applies once; every forged or tampered one is refused and changes
nothing; refunds take the time back; no token, a per-IP limit, answers in each provider's own format."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from models.base import utcnow
from tests.payments.conftest import buy, order_row, user_row
from tests.stubs.alipay import new_key

MONTH = dt.timedelta(days=28)


@pytest.fixture(scope="module")
def stranger_key():
    return new_key()


async def alipay_order(pay_app, alipay_stub, person, plan="gold-1m"):
    order = await buy(pay_app, person.token, plan)
    alipay_stub.open_order_string(order["pay_params"])
    alipay_stub.pay(order["order_no"])
    return order["order_no"]


async def wechat_order(pay_app, wechat_stub, person, plan="gold-1m"):
    order = await buy(pay_app, person.token, plan, channel="wechat")
    wechat_stub.check_app_pay(order["pay_params"])
    wechat_stub.pay(order["order_no"])
    return order["order_no"]


async def assert_nothing_applied(order_no: str, user_id: int) -> None:
    order, user = await order_row(order_no), await user_row(user_id)
    assert order.status == "pending" and order.paid_at is None and order.trade_no is None
    assert user.vip_level == 0 and user.vip_expires_at is None


async def test_alipay_pays_once_however_often_it_says_so(pay_app, alipay_stub, make_person):
    person = await make_person()
    order_no = await alipay_order(pay_app, alipay_stub, person)
    notification = alipay_stub.notification(order_no)
    assert await alipay_stub.send(pay_app.alipay_notify, notification) == (200, "success")
    user = await user_row(person.id)
    assert user.vip_level == 2 and user.vip_expires_at - utcnow() > MONTH
    expiry = user.vip_expires_at
    for repeat in (notification, alipay_stub.notification(order_no),  # same notify_id, then a new one
                   alipay_stub.notification(order_no, trade_status="TRADE_FINISHED"),
                   alipay_stub.notification(order_no, trade_status="WAIT_BUYER_PAY")):  # late, out of order
        assert await alipay_stub.send(pay_app.alipay_notify, repeat) == (200, "success")
    assert (await user_row(person.id)).vip_expires_at == expiry
    row = await order_row(order_no)
    assert row.status == "paid" and row.trade_no == alipay_stub.trades[order_no].trade_no
    assert "notify_id=" in row.notification
    seen = await pay_app.client.get(f"/api/v1/vip/orders/{order_no}", token=person.token)
    assert seen.data["status"] == "paid" and seen.data["vip"]["level"] == 2 and seen.data["paid_at"]
    assert (await pay_app.client.get("/api/v1/vip", token=person.token)).data["level"] == 2


@pytest.mark.parametrize("forgery", ["tampered_amount", "signed_wrong_amount", "bad_signature", "app_key",
                                     "stranger_key", "wrong_app", "wrong_seller", "unknown_order", "rsa1",
                                     "no_sign"])
async def test_alipay_forgeries_are_failure_and_apply_nothing(pay_app, alipay_stub, make_person, app_keys,
                                                            stranger_key, forgery):
    person = await make_person()
    order_no = await alipay_order(pay_app, alipay_stub, person)
    good = alipay_stub.notification
    params = {
        "tampered_amount": lambda: {**good(order_no), "total_amount": "0.01"},
        "signed_wrong_amount": lambda: good(order_no, total_amount="0.01", receipt_amount="0.01"),
        "bad_signature": lambda: {**good(order_no), "sign": good(order_no)["sign"][:-8] + "AAAAAAA="},
        "app_key": lambda: good(order_no, sign_with=app_keys.alipay_app),  # our own key, not Alipay's
        "stranger_key": lambda: good(order_no, sign_with=stranger_key),
        "wrong_app": lambda: good(order_no, app_id="2021999999999999"),
        "wrong_seller": lambda: good(order_no, seller_id="2088999999999999"),
        "unknown_order": lambda: good(order_no, out_trade_no="2026010100000000ffffffffffffffff"),
        "rsa1": lambda: {**good(order_no), "sign_type": "RSA"},
        "no_sign": lambda: {k: v for k, v in good(order_no).items() if k != "sign"},
    }[forgery]()
    status, body = await alipay_stub.send(pay_app.alipay_notify, params)
    assert body == "failure" and status in (200, 400)
    await assert_nothing_applied(order_no, person.id)
    assert await alipay_stub.send(pay_app.alipay_notify, good(order_no)) == (200, "success")  # the real one works


async def test_an_alipay_body_that_is_no_notification_is_400_failure(pay_app):
    resp = await pay_app.client.request("POST", "/api/v1/payments/alipay/notify", body=b"hello=world",
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (resp.status, resp.body) == (400, b"failure")
    assert resp.headers["Content-Type"].startswith("text/plain")


async def test_an_alipay_refund_takes_the_bought_time_back(pay_app, alipay_stub, make_person):
    person = await make_person()
    first = await alipay_order(pay_app, alipay_stub, person)
    await alipay_stub.send(pay_app.alipay_notify, alipay_stub.notification(first))
    after_first = (await user_row(person.id)).vip_expires_at
    second = await alipay_order(pay_app, alipay_stub, person)
    await alipay_stub.send(pay_app.alipay_notify, alipay_stub.notification(second))
    stacked = (await user_row(person.id)).vip_expires_at
    assert stacked > after_first + MONTH  # stacked from the first one's expiry
    granted = (await order_row(first)).granted_seconds
    refund = alipay_stub.refund_notification(first)
    assert await alipay_stub.send(pay_app.alipay_notify, refund) == (200, "success")
    assert await alipay_stub.send(pay_app.alipay_notify, refund) == (200, "success")  # once
    user = await user_row(person.id)
    assert user.vip_expires_at == stacked - dt.timedelta(seconds=granted) and user.vip_level == 2
    assert (await order_row(first)).status == "refunded" and (await order_row(second)).status == "paid"
    # a late payment notification for the refunded order changes nothing
    assert await alipay_stub.send(pay_app.alipay_notify, alipay_stub.notification(first)) == (200, "success")
    assert (await user_row(person.id)).vip_expires_at == user.vip_expires_at


async def test_a_partial_refund_is_logged_and_leaves_the_membership(pay_app, alipay_stub, make_person, caplog):
    person = await make_person()
    order_no = await alipay_order(pay_app, alipay_stub, person)
    await alipay_stub.send(pay_app.alipay_notify, alipay_stub.notification(order_no))
    expiry = (await user_row(person.id)).vip_expires_at
    with caplog.at_level("WARNING", logger="swiper.payments"):
        assert await alipay_stub.send(pay_app.alipay_notify,
                                      alipay_stub.refund_notification(order_no, "10.00")) == (200, "success")
    assert (await user_row(person.id)).vip_expires_at == expiry and (await order_row(order_no)).status == "paid"
    assert any("partial refund" in r.getMessage() for r in caplog.records)


async def test_wechat_pays_once(pay_app, wechat_stub, make_person):
    person = await make_person()
    order_no = await wechat_order(pay_app, wechat_stub, person, "silver-3m")
    headers, body = wechat_stub.notification(order_no)
    assert await wechat_stub.send(pay_app.wechat_notify, headers, body) == (204, "")
    expiry = (await user_row(person.id)).vip_expires_at
    assert (await user_row(person.id)).vip_level == 1 and expiry - utcnow() > 3 * MONTH
    assert await wechat_stub.send(pay_app.wechat_notify, headers, body) == (204, "")
    assert await wechat_stub.send(pay_app.wechat_notify, *wechat_stub.notification(order_no)) == (204, "")
    assert (await user_row(person.id)).vip_expires_at == expiry
    row = await order_row(order_no)
    assert row.status == "paid" and row.trade_no == wechat_stub.trades[order_no].transaction_id


@pytest.mark.parametrize("forgery", ["tampered_amount", "bad_signature", "app_key", "stale", "future",
                                     "wrong_serial", "wrong_apiv3_key", "wrong_app", "wrong_merchant",
                                     "unknown_order", "not_paid", "no_headers"])
async def test_wechat_forgeries_are_400_and_apply_nothing(pay_app, wechat_stub, make_person, app_keys, forgery):
    person = await make_person()
    order_no = await wechat_order(pay_app, wechat_stub, person)
    trade = wechat_stub.trades[order_no]
    note = wechat_stub.notification
    if forgery == "tampered_amount":   # decrypts, verifies, but the amount is not the order's
        headers, body = note(order_no, content=wechat_stub.transaction(trade, amount={
            "total": 1, "payer_total": 1, "currency": "CNY", "payer_currency": "CNY"}))
    elif forgery == "bad_signature":
        headers, body = note(order_no)
        body = body.replace(b'"summary"', b'"Summary"')
    elif forgery == "app_key":
        headers, body = note(order_no, sign_with=app_keys.wechat_merchant)
    elif forgery in ("stale", "future"):
        headers, body = note(order_no, timestamp=int(time.time()) + (-600 if forgery == "stale" else 600))
    elif forgery == "wrong_serial":
        headers, body = note(order_no, serial="PUB_KEY_ID_0000000000")
    elif forgery == "wrong_apiv3_key":
        headers, body = note(order_no, apiv3_key="x" * 32)
    elif forgery == "wrong_app":
        headers, body = note(order_no, content=wechat_stub.transaction(trade, appid="wx9999999999999999"))
    elif forgery == "wrong_merchant":
        headers, body = note(order_no, content=wechat_stub.transaction(trade, mchid="1999999999"))
    elif forgery == "unknown_order":
        headers, body = note(order_no, content=wechat_stub.transaction(
            trade, out_trade_no="2026010100000000ffffffffffffffff"))
    elif forgery == "not_paid":   # a "success" event whose trade is not paid is never a payment
        headers, body = note(order_no, content=wechat_stub.transaction(trade, trade_state="NOTPAY"))
    else:
        _, body = note(order_no)
        headers = {"Content-Type": "application/json"}
    status, answer = await wechat_stub.send(pay_app.wechat_notify, headers, body)
    if forgery == "not_paid":
        assert status == 204  # a true, verified statement that changes nothing
    else:
        assert status == 400 and '"code":"FAIL"' in answer.replace(" ", ""), (status, answer)
    await assert_nothing_applied(order_no, person.id)
    assert (await wechat_stub.send(pay_app.wechat_notify, *note(order_no)))[0] == 204


async def test_a_wechat_refund_takes_the_bought_time_back(pay_app, wechat_stub, make_person):
    person = await make_person()
    order_no = await wechat_order(pay_app, wechat_stub, person)
    await wechat_stub.send(pay_app.wechat_notify, *wechat_stub.notification(order_no))
    assert (await user_row(person.id)).vip_level == 2
    assert (await wechat_stub.send(pay_app.wechat_notify, *wechat_stub.refund_notification(order_no)))[0] == 204
    user = await user_row(person.id)
    assert user.vip_level == 0 and user.vip_expires_at is None  # the only time there was, taken back
    assert (await order_row(order_no)).status == "refunded"
    assert (await pay_app.client.get("/api/v1/vip", token=person.token)).data["level"] == 0


async def test_a_refund_seen_before_its_payment_grants_nothing(pay_app, wechat_stub, make_person):
    person = await make_person()
    order_no = await wechat_order(pay_app, wechat_stub, person)
    paid = wechat_stub.notification(order_no)
    assert (await wechat_stub.send(pay_app.wechat_notify, *wechat_stub.refund_notification(order_no)))[0] == 204
    assert (await wechat_stub.send(pay_app.wechat_notify, *paid))[0] == 204
    assert (await order_row(order_no)).status == "refunded"
    assert (await user_row(person.id)).vip_level == 0


async def test_a_process_without_the_channel_refuses_notifications(client):
    form = b"notify_id=1&app_id=2&out_trade_no=3&trade_status=TRADE_SUCCESS&total_amount=1.00&sign_type=RSA2&sign=x"
    resp = await client.request("POST", "/api/v1/payments/alipay/notify", body=form,
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (resp.status, resp.body) == (200, b"failure")
    resp = await client.request("POST", "/api/v1/payments/wechat/notify", body=b"{}")
    assert resp.status == 400 and resp.json["code"] == "FAIL"


async def test_errors_answer_in_the_providers_format(pay_app):
    big = b"sign=x&sign_type=RSA2&" + b"x" * (pay_app.settings.max_json_body + 1)
    resp = await pay_app.client.request("POST", "/api/v1/payments/alipay/notify", body=big)
    assert (resp.status, resp.body) == (413, b"failure")
    resp = await pay_app.client.request("POST", "/api/v1/payments/wechat/notify", body=big)
    assert resp.status == 413 and resp.json["code"] == "FAIL"
