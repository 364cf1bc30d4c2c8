"""VIP levels (public) and my membership."""
from __future__ import annotations

from handlers.base import BaseHandler
from handlers.contract import Payload, operation
from handlers.shapes import Items, Membership
from services import vip


class VipLevel(Payload):
    level: int
    name: str
    price: float  # yuan per month
    permissions: list[str]


class VipLevels(Items[VipLevel]):
    pass


class VipLevelsHandler(BaseHandler):
    auth_required = False

    @operation("listVipLevels", tag="vip", summary="VIP levels", response=VipLevels)
    async def get(self) -> None:
        """Every level with its price and permissions."""
        catalog = await vip.load_catalog()
        self.ok({"items": [info.view() for info in catalog.values()]})


class MyVipHandler(BaseHandler):
    @operation("getMyMembership", tag="vip", summary="My membership", response=Membership)
    async def get(self) -> None:
        """My membership; an expired one reads as level 0."""
        account = await self.current_account()
        self.ok(await vip.membership_view(account.user))


routes = [
    (r"/api/v1/vip/levels", VipLevelsHandler),
    (r"/api/v1/vip", MyVipHandler),
]
