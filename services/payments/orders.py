"""Orders: made from a plan at the server's price, one per call; read and listed by their owner only."""
from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Any

from conf import Settings
from models import User, VipOrder
from models.base import utcnow
from services.cursors import decode_cursor, encode_cursor
from services.errors import ConflictError, InvalidParamsError, NotFoundError
from services.payments.channel import PaymentChannels
from services.payments.plans import find_plan
from services.vip import effective_level, load_catalog, membership_view

log = logging.getLogger("swiper.payments")


def new_order_no(now: dt.datetime) -> str:
    """32 characters (WeChat's limit for out_trade_no): the UTC time, for people reading statements, and 72 random
    bits, so an order number cannot be guessed."""
    return now.strftime("%Y%m%d%H%M%S") + secrets.token_hex(9)


def order_view(order: VipOrder, vip: dict | None = None) -> dict[str, Any]:
    return {"order_no": order.order_no, "plan": order.plan, "level": order.level, "months": order.months,
            "amount_fen": order.amount_fen, "channel": order.channel, "status": order.status,
            "created_at": order.created_at, "expires_at": order.expires_at, "paid_at": order.paid_at, "vip": vip}


async def create_order(*, settings: Settings, channels: PaymentChannels, user: User, plan_id: str,
                       channel: str) -> dict[str, Any]:
    """A new pending order for ``plan_id`` and what the client's payment SDK needs to pay it."""
    plan = await find_plan(plan_id)
    problems = {}
    if plan is None:
        problems["plan"] = "no such plan"
    if channel not in channels:
        problems["channel"] = "this payment channel is not enabled"
    if problems:
        raise InvalidParamsError.for_fields(problems)
    assert plan is not None
    current = effective_level(user)
    if plan.level < current:
        raise ConflictError("This plan is below your active membership's level.",
                            data={"level": current, "plan_level": plan.level})
    provider = channels.get(channel)
    now = utcnow()
    order = await VipOrder.aio_create(
        order_no=new_order_no(now), user_id=user.id, plan=plan.id, level=plan.level, months=plan.months,
        amount_fen=plan.price_fen, channel=channel, status="pending", created_at=now, updated_at=now,
        expires_at=now + dt.timedelta(seconds=settings.order_ttl))
    info = (await load_catalog()).get(plan.level)
    subject = f"Swiper {info.name if info else 'VIP'} {plan.months}个月"
    # A failure here leaves the order pending: reconciliation queries it and closes it at its expiry.
    pay_params = await provider.start(order, subject)
    return {**order_view(order), "pay_params": pay_params}


async def get_order(*, user: User, order_no: str) -> dict[str, Any]:
    order = await VipOrder.select().where(VipOrder.order_no == order_no).aio_first()
    if order is None or order.user_id != user.id:
        raise NotFoundError("No such order.")
    if order.status in ("paid", "refunded"):
        fresh = await User.aio_get_or_none(User.id == user.id)  # the account may be cached from before
        return order_view(order, await membership_view(fresh or user))
    return order_view(order)


async def list_orders(*, settings: Settings, user: User, limit: int, cursor: str | None
                      ) -> tuple[list[dict[str, Any]], str | None]:
    query = VipOrder.select().where(VipOrder.user_id == user.id)
    if cursor is not None:
        before = decode_cursor(settings, cursor).get("before")
        if not isinstance(before, int):
            raise InvalidParamsError.for_fields({"cursor": "not a cursor this server issued"})
        query = query.where(VipOrder.id < before)
    rows = list(await query.order_by(VipOrder.id.desc()).limit(limit + 1).aio_execute())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(settings, {"before": rows[-1].id}) if more and rows else None
    return [order_view(row) for row in rows], next_cursor
