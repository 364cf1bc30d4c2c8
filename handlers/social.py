"""The social core: feed, swipes, rewind, matches, who liked me, hot ranking."""
from __future__ import annotations

from handlers.base import BaseHandler, require_fields, requires_permission
from models.social import ACTIONS
from services import likes, matches, ranking, recommendations, swipes
from services.accounts import mark_active
from services.errors import InvalidParamsError
from services.profiles import public_view


class RecommendationsHandler(BaseHandler):
    async def get(self) -> None:
        """A page of the feed (no cursor: people shown but not swiped may come again)."""
        limit = self.query_limit(default=10)
        account = await self.current_account()
        await mark_active(redis=self.redis, user_id=account.user.id, local=self.local_caches)
        users = await recommendations.recommend(redis=self.redis, settings=self.settings_obj, account=account,
                                                limit=limit)
        self.ok({"items": [public_view(user, self.settings_obj) for user in users]})


class SwipesHandler(BaseHandler):
    async def post(self) -> None:
        """Like, dislike or superlike a user; tells whether it made a match and what is left of today's likes."""
        body = self.json_body()
        require_fields(body, "user_id", "action")
        problems = {}
        target_id, action = body["user_id"], body["action"]
        if isinstance(target_id, bool) or not isinstance(target_id, int) or not 1 <= target_id < 2**63:
            problems["user_id"] = "must be a positive integer"
        if not isinstance(action, str) or action not in ACTIONS:
            problems["action"] = "must be like, dislike or superlike"
        if problems:
            raise InvalidParamsError.for_fields(problems)
        account = await self.current_account()
        result = await swipes.record_swipe(redis=self.redis, settings=self.settings_obj, account=account,
                                           target_id=target_id, action=action)
        await mark_active(redis=self.redis, user_id=account.user.id, local=self.local_caches)
        self.ok({"matched": result.matched, "likes_remaining": result.likes_remaining,
                 "resets_at": result.resets_at})


class LastSwipeHandler(BaseHandler):
    @requires_permission("rewind")
    async def delete(self) -> None:
        """Undo my most recent swipe and any match it made."""
        user_id = await swipes.rewind_last_swipe(redis=self.redis, settings=self.settings_obj,
                                                 account=await self.current_account())
        self.ok({"user_id": user_id})


class MatchesHandler(BaseHandler):
    async def get(self) -> None:
        """My matches, newest first."""
        items, cursor = await matches.list_matches(settings=self.settings_obj, user_id=self.user_id,
                                                   limit=self.query_limit(default=20), cursor=self.query_cursor())
        self.ok({"items": items, "next_cursor": cursor})


class MatchHandler(BaseHandler):
    async def delete(self, user_id: str) -> None:
        """Unmatch, for both sides; the swipes stay."""
        await matches.unmatch(user_id=self.user_id, other_id=int(user_id))
        self.ok(None)


class LikesReceivedHandler(BaseHandler):
    @requires_permission("liked_me")
    async def get(self) -> None:
        """Who liked me and is waiting for my answer (VIP)."""
        items, cursor = await likes.list_likes_received(settings=self.settings_obj, user_id=self.user_id,
                                                        limit=self.query_limit(default=20),
                                                        cursor=self.query_cursor())
        self.ok({"items": items, "next_cursor": cursor})


class LikesReceivedCountHandler(BaseHandler):
    async def get(self) -> None:
        """How many are waiting (for everyone: the teaser that sells the VIP)."""
        self.ok({"count": await likes.count_likes_received(user_id=self.user_id)})


class HotRankingHandler(BaseHandler):
    async def get(self) -> None:
        """The all-time hot list, highest score first."""
        items = await ranking.top_hot(redis=self.redis, settings=self.settings_obj,
                                      limit=self.query_limit(default=10))
        self.ok({"items": items})


routes = [
    (r"/api/v1/recommendations", RecommendationsHandler),
    (r"/api/v1/swipes", SwipesHandler),
    (r"/api/v1/swipes/last", LastSwipeHandler),
    (r"/api/v1/matches", MatchesHandler),
    (r"/api/v1/matches/([1-9][0-9]{0,17})", MatchHandler),
    (r"/api/v1/likes/received", LikesReceivedHandler),
    (r"/api/v1/likes/received/count", LikesReceivedCountHandler),
    (r"/api/v1/rankings/hot", HotRankingHandler),
]
