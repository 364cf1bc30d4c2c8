"""The plans on sale (``vip_plan``, written by ``migrate`` like the VIP catalogue) and each level's 1-month price."""
from __future__ import annotations

import time

from models import VipPlan
from services.vip import load_catalog

_TTL = 60.0
_plans: tuple[float, list[VipPlan]] | None = None


async def load_plans() -> list[VipPlan]:
    """Active plans by level, then length; each process keeps them a minute (only ``migrate`` changes them)."""
    global _plans
    if _plans is not None and time.monotonic() - _plans[0] < _TTL:
        return _plans[1]
    rows = list(await VipPlan.select().where(VipPlan.active == True)  # noqa: E712
                .order_by(VipPlan.level, VipPlan.months).aio_execute())
    _plans = (time.monotonic(), rows)
    return rows


def forget_plans() -> None:
    global _plans
    _plans = None


async def find_plan(plan_id: str) -> VipPlan | None:
    return next((plan for plan in await load_plans() if plan.id == plan_id), None)


def plan_view(plan: VipPlan) -> dict:
    return {"id": plan.id, "level": plan.level, "months": plan.months, "price_fen": plan.price_fen}


async def month_prices() -> dict[int, int]:
    """Fen per month of each paid level: its 1-month plan, else the catalogue's monthly price."""
    prices = {level: int(info.price * 100) for level, info in (await load_catalog()).items() if level > 0}
    prices.update({plan.level: plan.price_fen for plan in await load_plans() if plan.months == 1})
    return prices
