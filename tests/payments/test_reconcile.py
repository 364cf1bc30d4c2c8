"""Reconciliation: orders still pending are queried (answers' signatures checked), expired ones closed at the
provider and here; a payment for a closed order is still applied and logged; one process runs each round."""
from __future__ import annotations

import datetime as dt

import pytest

from models import VipOrder
from services import jobs
from services.errors import UpstreamError
from services.payments.reconcile import check_order, reconcile_orders
from tests.payments.conftest import buy, order_row, user_row


async def age(order_no: str, *, seconds: int) -> None:
    """Make an order look ``seconds`` older (its expiry moves with it)."""
    row = await order_row(order_no)
    shift = dt.timedelta(seconds=seconds)
    await VipOrder.update(created_at=row.created_at - shift, expires_at=row.expires_at - shift).where(
        VipOrder.order_no == order_no).aio_execute()


async def reconcile(pay_app):
    return await reconcile_orders(redis=pay_app.redis, settings=pay_app.settings, channels=pay_app.channels)


@pytest.mark.parametrize("channel", ["alipay", "wechat"])
async def test_a_pending_order_paid_without_a_notification_is_found_by_query(pay_app, alipay_stub, wechat_stub,
                                                                            make_person, channel):
    person = await make_person()
    order = await buy(pay_app, person.token, "gold-1m", channel)
    stub = alipay_stub if channel == "alipay" else wechat_stub
    if channel == "alipay":
        alipay_stub.open_order_string(order["pay_params"])
    stub.pay(order["order_no"])
    await reconcile(pay_app)
    assert (await order_row(order["order_no"])).status == "pending"  # too young to be asked about
    await age(order["order_no"], seconds=pay_app.settings.order_query_after + 1)
    counts = await reconcile(pay_app)
    assert counts.get("paid", 0) >= 1
    row = await order_row(order["order_no"])
    assert row.status == "paid" and row.trade_no
    assert (await user_row(person.id)).vip_level == 2


@pytest.mark.parametrize("channel", ["alipay", "wechat"])
async def test_an_expired_order_is_closed_at_the_provider_and_here(pay_app, alipay_stub, wechat_stub, make_person,
                                                                   channel):
    person = await make_person()
    order = await buy(pay_app, person.token, "silver-1m", channel)
    if channel == "alipay":
        alipay_stub.open_order_string(order["pay_params"])
    await age(order["order_no"], seconds=pay_app.settings.order_ttl + 1)
    await reconcile(pay_app)
    row = await order_row(order["order_no"])
    assert row.status == "closed" and row.closed_at is not None
    stub = alipay_stub if channel == "alipay" else wechat_stub
    state = stub.trades[order["order_no"]]
    assert getattr(state, "status", getattr(state, "state", None)) in ("TRADE_CLOSED", "CLOSED")
    seen = await pay_app.client.get(f"/api/v1/vip/orders/{order['order_no']}", token=person.token)
    assert seen.data["status"] == "closed"


async def test_a_never_opened_alipay_order_is_closed_too(pay_app, make_person):
    person = await make_person()
    order = await buy(pay_app, person.token)  # Alipay has no such trade: ACQ.TRADE_NOT_EXIST
    await age(order["order_no"], seconds=pay_app.settings.order_ttl + 1)
    await reconcile(pay_app)
    assert (await order_row(order["order_no"])).status == "closed"


async def test_a_payment_for_a_closed_order_is_applied_and_logged(pay_app, alipay_stub, make_person, caplog):
    person = await make_person()
    order = await buy(pay_app, person.token)
    alipay_stub.open_order_string(order["pay_params"])
    await age(order["order_no"], seconds=pay_app.settings.order_ttl + 1)
    await reconcile(pay_app)
    assert (await order_row(order["order_no"])).status == "closed"
    alipay_stub.pay(order["order_no"])  # the money arrived anyway (a bank's late confirmation)
    with caplog.at_level("WARNING", logger="swiper.payments"):
        answer = await alipay_stub.send(pay_app.alipay_notify, alipay_stub.notification(order["order_no"]))
    assert answer == (200, "success")
    assert (await order_row(order["order_no"])).status == "paid"
    assert (await user_row(person.id)).vip_level == 2
    assert any("paid after it was closed" in r.getMessage() for r in caplog.records)


async def test_an_expired_order_paid_at_the_last_moment_is_applied_not_closed(pay_app, wechat_stub, make_person):
    person = await make_person()
    order = await buy(pay_app, person.token, "gold-1m", "wechat")
    wechat_stub.pay(order["order_no"])
    await age(order["order_no"], seconds=pay_app.settings.order_ttl + 1)
    await reconcile(pay_app)
    assert (await order_row(order["order_no"])).status == "paid"
    assert wechat_stub.trades[order["order_no"]].state == "SUCCESS"


# (Alipay's query answers carry no timestamp, so "stale" is WeChat's only)
@pytest.mark.parametrize("channel, mode", [("alipay", "unsigned"), ("alipay", "forged"), ("wechat", "unsigned"),
                                           ("wechat", "forged"), ("wechat", "stale")])
async def test_query_answers_not_signed_by_the_provider_are_not_believed(pay_app, alipay_stub, wechat_stub,
                                                                        make_person, channel, mode):
    person = await make_person()
    order = await buy(pay_app, person.token, "gold-1m", channel)
    stub = alipay_stub if channel == "alipay" else wechat_stub
    if channel == "alipay":
        alipay_stub.open_order_string(order["pay_params"])
    stub.pay(order["order_no"])
    stub.answer_mode = mode
    try:
        with pytest.raises(UpstreamError):
            await check_order(redis=pay_app.redis, settings=pay_app.settings, channels=pay_app.channels,
                              order_no=order["order_no"], channel=channel, expired=False)
    finally:
        stub.answer_mode = "ok"
    assert (await order_row(order["order_no"])).status == "pending"
    assert (await user_row(person.id)).vip_level == 0


async def test_requests_to_alipay_carry_beijing_time_and_verify(pay_app, alipay_stub, make_person):
    person = await make_person()
    order = await buy(pay_app, person.token)
    before = len(alipay_stub.received)
    event = await pay_app.channels.get("alipay").query(order["order_no"])
    assert event.kind == "missing" and not alipay_stub.rejected
    assert alipay_stub.received[before]["method"] == "alipay.trade.query"


async def test_one_process_runs_each_round(pay_app, redis):
    runs = []

    async def job():
        runs.append(1)
    claimed = [await jobs.run_exclusively(redis=redis, name="reconcile_orders", period=3600, job=job)
               for _ in range(3)]
    assert claimed == [True, False, False] and runs == [1]
