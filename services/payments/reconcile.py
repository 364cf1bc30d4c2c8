"""The periodic reconciliation: ask the provider about orders still pending, and close those past their expiry.

Notifications can be lost or late; a query answers the same question, so it goes through the same
``apply_payment``. An order is queried once it is ``SWIPER_ORDER_QUERY_AFTER`` seconds old, at every run until it
is paid or expires; at its expiry (``SWIPER_ORDER_TTL``) it is closed at the provider first and then here, and if
the provider says it was paid meanwhile, it is queried and applied instead.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging

from redis.asyncio import Redis

from conf import Settings
from models import VipOrder
from models.base import utcnow
from services.errors import AppError
from services.payments.apply import apply_payment, mark_closed
from services.payments.channel import PaymentChannels

log = logging.getLogger("swiper.payments.reconcile")
BATCH = 200
CONCURRENCY = 4  # provider calls in flight at once: gentle on their rate limits


async def check_order(*, redis: Redis, settings: Settings, channels: PaymentChannels, order_no: str,
                      channel: str, expired: bool) -> str:
    """Query one order and apply what the provider says; close it if ``expired`` and still unpaid."""
    provider = channels.get(channel)
    state = await provider.query(order_no)
    if state.kind == "paid":
        await apply_payment(redis=redis, settings=settings, event=state, channel=channel, source="query")
        return "paid"
    if not expired:
        return "pending"
    if not await provider.close(order_no):  # paid between the query and the close
        state = await provider.query(order_no)
        if state.kind == "paid":
            await apply_payment(redis=redis, settings=settings, event=state, channel=channel, source="query")
            return "paid"
        log.warning("order %s: %s refused to close it but does not report it paid (%s)", order_no, channel,
                    state.kind)
        return "pending"
    await mark_closed(order_no=order_no)
    return "closed"


async def reconcile_orders(*, redis: Redis, settings: Settings, channels: PaymentChannels) -> dict[str, int]:
    """One run over the pending orders of this process's channels; counts by outcome."""
    now = utcnow()
    if not channels.names():
        return {}
    due = await (VipOrder.select(VipOrder.order_no, VipOrder.channel, VipOrder.expires_at)
                 .where((VipOrder.status == "pending") & VipOrder.channel.in_(channels.names())
                        & ((VipOrder.created_at <= now - dt.timedelta(seconds=settings.order_query_after))
                           | (VipOrder.expires_at <= now)))
                 .order_by(VipOrder.created_at).limit(BATCH).aio_execute())
    counts: dict[str, int] = {}
    turns = asyncio.Semaphore(CONCURRENCY)

    async def one(order: VipOrder) -> None:
        async with turns:
            try:
                outcome = await check_order(redis=redis, settings=settings, channels=channels,
                                            order_no=order.order_no, channel=order.channel,
                                            expired=order.expires_at <= now)
            except AppError as exc:  # a provider failure: the next run asks again
                log.warning("order %s: %s", order.order_no, exc)
                outcome = "failed"
            counts[outcome] = counts.get(outcome, 0) + 1

    await asyncio.gather(*[one(order) for order in due])
    if counts:
        log.info("reconciled %s", counts)
    return counts
