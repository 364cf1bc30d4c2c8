"""The signed-in user's profile, and other users' public view."""
from __future__ import annotations

from handlers.base import BaseHandler
from services.accounts import load_account
from services.profiles import owner_view, public_view, update_profile


class ProfileHandler(BaseHandler):
    async def get(self) -> None:
        """The owner's view of my profile."""
        self.ok(await owner_view(await self.current_account(), self.settings_obj))

    async def patch(self) -> None:
        """Change any subset of the editable fields; all-or-nothing."""
        body = self.json_body()
        account = await update_profile(redis=self.redis, settings=self.settings_obj,
                                       account=await self.current_account(), body=body)
        self.ok(await owner_view(account, self.settings_obj))


class UserHandler(BaseHandler):
    async def get(self, user_id: str) -> None:
        """Anyone's public view: never phone, birthday or preferences."""
        account = await load_account(redis=self.redis, settings=self.settings_obj, user_id=int(user_id))
        self.ok(public_view(account.user, self.settings_obj))


routes = [
    (r"/api/v1/profile", ProfileHandler),
    (r"/api/v1/users/([1-9][0-9]{0,17})", UserHandler),
]
