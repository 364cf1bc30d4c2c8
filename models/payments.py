"""VIP plans (what can be bought) and orders (one purchase attempt each, applied to a membership at most once)."""
from __future__ import annotations

import peewee

from models.base import BaseModel, DateTimeMicroField, utcnow


class VipPlan(BaseModel):
    id = peewee.CharField(max_length=32, primary_key=True)  # "gold-1m": what clients send
    level = peewee.SmallIntegerField()
    months = peewee.SmallIntegerField()
    price_fen = peewee.IntegerField()
    active = peewee.BooleanField(default=True)  # a retired plan is no longer sold; its orders keep it

    class Meta:
        table_name = "vip_plan"


class VipOrder(BaseModel):
    """``order_no`` is our ``out_trade_no``; ``trade_no`` the provider's. Status moves only
    ``pending → paid``, ``pending → closed``, ``closed → paid`` (the money came after all), ``paid → refunded``."""

    id = peewee.BigAutoField()
    order_no = peewee.CharField(max_length=32, unique=True)
    trade_no = peewee.CharField(max_length=64, null=True, unique=True)
    user_id = peewee.BigIntegerField(index=True)
    plan = peewee.CharField(max_length=32, column_name="plan_id")
    level = peewee.SmallIntegerField()
    months = peewee.SmallIntegerField()
    amount_fen = peewee.IntegerField()
    channel = peewee.CharField(max_length=8)
    status = peewee.CharField(max_length=8, default="pending")
    created_at = DateTimeMicroField(default=utcnow)
    expires_at = DateTimeMicroField()
    paid_at = DateTimeMicroField(null=True)
    closed_at = DateTimeMicroField(null=True)
    refunded_at = DateTimeMicroField(null=True)
    updated_at = DateTimeMicroField(default=utcnow)
    # what applying it did, so a refund can take exactly that back
    granted_level = peewee.SmallIntegerField(null=True)
    granted_seconds = peewee.BigIntegerField(null=True)
    notification = peewee.TextField(null=True)  # the raw notification (or query answer) that paid it
    refund_notification = peewee.TextField(null=True)

    class Meta:
        table_name = "vip_order"
