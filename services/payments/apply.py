"""Applying what a provider says to an order and its membership: exactly once, whoever says it first.

Notifications (any number, any order, any process) and queries (the reconciliation job) all end here. Each
change is one transaction that locks the order row, then the user row (always in that order, so two orders of
one user serialise on the user and never deadlock), checks the amount, moves the status and the membership, and
commits; a repeat finds the order already moved and changes nothing. Only then are the caches told.
"""
from __future__ import annotations

import logging
import zoneinfo
from typing import Literal

import peewee
from redis.asyncio import Redis

from conf import Settings
from models import User, VipOrder, db
from models.base import utcnow
from models.db import with_retries
from services import model_cache
from services.errors import NotificationRejectedError
from services.payments.channel import TradeEvent
from services.payments.membership import Membership, extend, take_back
from services.payments.plans import month_prices
from services.vip import effective_level

log = logging.getLogger("swiper.payments")
Outcome = Literal["applied", "duplicate", "unchanged"]


async def _locked_order(event: TradeEvent, channel: str) -> VipOrder:
    order = await VipOrder.select().where(VipOrder.order_no == event.order_no).for_update().aio_first()
    if order is None or order.channel != channel:
        raise NotificationRejectedError(f"no {channel} order {event.order_no!r}")
    if event.amount_fen != order.amount_fen:
        raise NotificationRejectedError(f"amount {event.amount_fen} fen is not the order's {order.amount_fen}")
    if event.trade_no and order.trade_no and event.trade_no != order.trade_no:
        raise NotificationRejectedError(f"trade {event.trade_no!r} is not the order's {order.trade_no!r}")
    return order


async def _locked_user(user_id: int) -> User | None:
    return await User.select().where(User.id == user_id).for_update().aio_first()


def _current(user: User, now) -> Membership:
    level = effective_level(user, now)
    return Membership(level, user.vip_expires_at if level else None)


async def _save_membership(user: User, level: int, expires_at) -> None:
    user.vip_level, user.vip_expires_at, user.updated_at = level, expires_at, utcnow()
    await user.aio_save(only=[User.vip_level, User.vip_expires_at, User.updated_at])


async def apply_payment(*, redis: Redis, settings: Settings, event: TradeEvent, channel: str,
                        source: str) -> Outcome:
    """Mark the order paid and extend the membership, once. A closed order is paid all the same: the money came."""
    prices = await month_prices()
    tz = zoneinfo.ZoneInfo(settings.timezone)

    async def transaction() -> tuple[Outcome, VipOrder]:
        async with db.aio_atomic():
            order = await _locked_order(event, channel)
            if order.status in ("paid", "refunded"):
                return "duplicate", order
            now = utcnow()
            user = await _locked_user(order.user_id)
            if user is not None:
                grant = extend(_current(user, now), level=order.level, months=order.months, now=now, tz=tz,
                               prices=prices)
                await _save_membership(user, grant.level, grant.expires_at)
                order.granted_level, order.granted_seconds = grant.granted_level, grant.granted_seconds
            else:
                log.error("order %s paid for user %s, whose account is gone: refund it", order.order_no,
                          order.user_id)
            if order.status == "closed":
                log.warning("order %s was paid after it was closed (%s via %s); applied", order.order_no,
                            channel, source)
            order.status, order.paid_at, order.updated_at = "paid", now, now
            order.trade_no = event.trade_no or order.trade_no
            order.notification = event.raw
            await order.aio_save()
            return "applied", order

    outcome, order = await _run(transaction, event)
    if outcome == "applied":
        log.info("order %s paid (%s via %s): user %s +%ss at level %s", order.order_no, channel, source,
                 order.user_id, order.granted_seconds, order.granted_level)
    # also after a duplicate: the first one's invalidation may have failed after its commit (Redis down)
    await model_cache.invalidate(redis=redis, name="User", pk=order.user_id)
    return outcome


async def apply_refund(*, redis: Redis, settings: Settings, event: TradeEvent, channel: str) -> Outcome:
    """A full refund takes the order's time back, once. Partial refunds are logged for an operator, not applied."""
    prices = await month_prices()

    async def transaction() -> tuple[Outcome, VipOrder]:
        async with db.aio_atomic():
            order = await _locked_order(event, channel)
            if order.status == "refunded":
                return "duplicate", order
            if event.refund_fen != order.amount_fen:
                log.warning("order %s: partial refund of %s of %s fen (%s); membership unchanged", order.order_no,
                            event.refund_fen, order.amount_fen, channel)
                return "unchanged", order
            now = utcnow()
            if order.status == "paid" and order.granted_seconds:
                user = await _locked_user(order.user_id)
                if user is not None:
                    after = take_back(_current(user, now), granted_level=order.granted_level,
                                      granted_seconds=order.granted_seconds, now=now, prices=prices)
                    await _save_membership(user, after.level, after.expires_at)
            elif order.status != "paid":
                log.warning("order %s refunded before its payment was seen (%s); nothing was granted",
                            order.order_no, channel)
                order.paid_at = order.paid_at or now
            order.status, order.refunded_at, order.updated_at = "refunded", now, now
            order.trade_no = event.trade_no or order.trade_no
            order.refund_notification = event.raw
            await order.aio_save()
            return "applied", order

    outcome, order = await _run(transaction, event)
    if outcome == "applied":
        log.info("order %s refunded (%s): user %s -%ss at level %s", order.order_no, channel, order.user_id,
                 order.granted_seconds, order.granted_level)
    await model_cache.invalidate(redis=redis, name="User", pk=order.user_id)
    return outcome


async def mark_closed(*, order_no: str) -> bool:
    """pending → closed; False when the order had moved on meanwhile (then its payment won)."""
    now = utcnow()
    changed = await (VipOrder.update(status="closed", closed_at=now, updated_at=now)
                     .where((VipOrder.order_no == order_no) & (VipOrder.status == "pending")).aio_execute())
    return bool(changed)


async def apply_event(*, redis: Redis, settings: Settings, event: TradeEvent, channel: str, source: str) -> Outcome:
    """What a verified notification says, applied: a payment, a refund, or nothing to do."""
    if event.kind == "paid":
        return await apply_payment(redis=redis, settings=settings, event=event, channel=channel, source=source)
    if event.kind == "refunded":
        return await apply_refund(redis=redis, settings=settings, event=event, channel=channel)
    # closed or still waiting: nothing to apply, but only for an order of ours (else the provider is told no)
    exists = await VipOrder.select().where((VipOrder.order_no == event.order_no)
                                           & (VipOrder.channel == channel)).aio_exists()
    if not exists:
        raise NotificationRejectedError(f"no {channel} order {event.order_no!r}")
    return "unchanged"


async def _run(transaction, event: TradeEvent):
    try:
        return await with_retries(transaction)
    except peewee.IntegrityError:  # the provider's trade number already belongs to another order
        raise NotificationRejectedError(f"trade {event.trade_no!r} already belongs to another order") from None
