"""VIP levels (public) and my membership."""
from __future__ import annotations

from handlers.base import BaseHandler
from services import vip


class VipLevelsHandler(BaseHandler):
    auth_required = False

    async def get(self) -> None:
        """Every level with its price and permissions."""
        catalog = await vip.load_catalog()
        self.ok({"items": [info.view() for info in catalog.values()]})


class MyVipHandler(BaseHandler):
    async def get(self) -> None:
        """My membership; an expired one reads as level 0."""
        account = await self.current_account()
        self.ok(await vip.membership_view(account.user))


routes = [
    (r"/api/v1/vip/levels", VipLevelsHandler),
    (r"/api/v1/vip", MyVipHandler),
]
