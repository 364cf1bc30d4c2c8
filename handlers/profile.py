"""The signed-in user's profile, and other users' public view."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from handlers.base import BaseHandler
from handlers.contract import Gender, RequestModel, ShortText, integer, operation
from handlers.shapes import Profile, PublicUser
from services.accounts import load_account
from services.location.positions import search_origin
from services.errors import NotFoundError
from services.profiles import owner_view, public_views, update_profile
from services.safety.deletion import delete_account
from services.safety.visibility import can_see

Distance = integer(0, 1000)
DatingAge = integer(18, 100)

# Every field is optional (a PATCH names only what changes) and none takes null unless null means something.
# The defaults are never used: ``sent()`` keeps only what the client sent.


class PreferencesPatch(RequestModel):
    dating_gender: Gender | None = None  # null: either gender
    location: ShortText | None = None     # null: no preference (search my own city)
    min_distance: Distance = None  # type: ignore[assignment]
    max_distance: Distance = None  # type: ignore[assignment]
    min_dating_age: DatingAge = None  # type: ignore[assignment]
    max_dating_age: DatingAge = None  # type: ignore[assignment]
    vibration: bool = None  # type: ignore[assignment]
    only_match: bool = None  # type: ignore[assignment]
    auto_play: bool = None  # type: ignore[assignment]


class ProfilePatch(RequestModel):
    """Any subset of the editable fields; ``preferences`` merges (fields not sent keep their values)."""

    read_only = frozenset({"id", "phone", "vip", "avatar", "age", "created_at", "updated_at", "is_new_user"})
    nickname: ShortText = None  # type: ignore[assignment]
    gender: Gender = None  # type: ignore[assignment]
    birthday: dt.date = None  # type: ignore[assignment]
    location: ShortText = None  # type: ignore[assignment]
    preferences: PreferencesPatch = None  # type: ignore[assignment]


class DeleteAccount(RequestModel):
    confirm: Literal["DELETE"]  # spelled out, so no client deletes an account by accident


class ProfileHandler(BaseHandler):
    @operation("getMyProfile", tag="profile", summary="My profile", response=Profile)
    async def get(self) -> None:
        """The owner's view of my profile."""
        self.ok(await owner_view(await self.current_account(), self.settings_obj))

    @operation("updateMyProfile", tag="profile", summary="Edit my profile", body=ProfilePatch, response=Profile,
               errors=(403, 409))
    async def patch(self, body: ProfilePatch) -> None:
        """Change any subset of the editable fields; all-or-nothing."""
        account = await update_profile(redis=self.redis, settings=self.settings_obj,
                                       account=await self.current_account(), changes=body.sent())
        self.ok(await owner_view(account, self.settings_obj))

    @operation("deleteMyAccount", tag="profile", summary="Delete my account and its personal data",
               body=DeleteAccount)
    async def delete(self, body: DeleteAccount) -> None:
        """Everything goes at once (stored files right after the answer); the phone may register again."""
        await delete_account(redis=self.redis, settings=self.settings_obj, events=self.events,
                             cleanup=self.application.settings["storage_cleanup"], user_id=self.user_id)
        self.ok(None)


class UserHandler(BaseHandler):
    @operation("getUser", tag="profile", summary="A user's public view", response=PublicUser, errors=(404,))
    async def get(self, user_id: str) -> None:
        """Anyone's public view: never phone, birthday or preferences."""
        if not await can_see(self.user_id, int(user_id)):
            raise NotFoundError("No such user.")
        account = await load_account(redis=self.redis, settings=self.settings_obj, user_id=int(user_id))
        origin = await search_origin((await self.current_account()).user)
        self.ok((await public_views(self.settings_obj, self.user_id, [account.user], origin))[0])


routes = [
    (r"/api/v1/profile", ProfileHandler),
    (r"/api/v1/users/([1-9][0-9]{0,17})", UserHandler),
]
