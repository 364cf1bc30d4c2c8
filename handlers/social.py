"""The social core: feed, swipes, rewind, matches, who liked me, hot ranking."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from handlers.base import BaseHandler, requires_permission
from handlers.contract import Limit, Payload, QueryModel, RequestModel, UserId, operation
from handlers.shapes import Items, Message, Page, PublicUser
from services import likes, matches, ranking, recommendations, swipes
from services.accounts import mark_active
from services.location.positions import search_origin
from services.profiles import public_views


class FeedQuery(QueryModel):
    limit: Limit = 10


class PageQuery(QueryModel):
    limit: Limit = 20
    cursor: str | None = None  # next_cursor of the previous page


class RankingQuery(QueryModel):
    limit: Limit = 10


class SwipeBody(RequestModel):
    user_id: UserId
    action: Literal["like", "dislike", "superlike"]


class SwipeResult(Payload):
    matched: bool
    likes_remaining: int | None  # null: no daily cap
    resets_at: dt.datetime | None


class Rewound(Payload):
    user_id: int


class MatchedUser(PublicUser):
    matched_at: dt.datetime
    last_message: Message | None
    unread_count: int   # their messages after my read position
    read_seq: int       # how far they have read


class LikingUser(PublicUser):
    action: Literal["like", "superlike"]
    swiped_at: dt.datetime


class Count(Payload):
    count: int


class HotEntry(Payload):
    rank: int
    score: int
    user: PublicUser


class Feed(Items[PublicUser]):
    pass


class MatchesPage(Page[MatchedUser]):
    pass


class LikesPage(Page[LikingUser]):
    pass


class HotRanking(Items[HotEntry]):
    pass


SWIPE_A_FEED_USER = {"SwipeFirst": {"operationId": "recordSwipe",
                                    "requestBody": {"user_id": "$response.body#/data/items/0/id", "action": "like"}},
                     "ViewFirst": {"operationId": "getUser",
                                   "parameters": {"user_id": "$response.body#/data/items/0/id"}}}


class RecommendationsHandler(BaseHandler):
    @operation("getRecommendations", tag="social", summary="The feed: superlikers first, then the most recently active",
               query=FeedQuery, response=Feed, links=SWIPE_A_FEED_USER)
    async def get(self, query: FeedQuery) -> None:
        """A page of the feed (no cursor: people shown but not swiped may come again)."""
        account = await self.current_account()
        await mark_active(redis=self.redis, user_id=account.user.id, local=self.local_caches)
        users = await recommendations.recommend(redis=self.redis, settings=self.settings_obj, account=account,
                                                limit=query.limit)
        origin = await search_origin(account.user)
        self.ok({"items": await public_views(self.settings_obj, account.user.id, users, origin)})


class SwipesHandler(BaseHandler):
    @operation("recordSwipe", tag="social", summary="Like, dislike or superlike", body=SwipeBody,
               response=SwipeResult, errors=(403, 404, 409, 429),
               links={"Rewind": {"operationId": "rewindLastSwipe"},
                      "ViewSwiped": {"operationId": "getUser", "parameters": {"user_id": "$request.body#/user_id"}}})
    async def post(self, body: SwipeBody) -> None:
        """Like, dislike or superlike a user; tells whether it made a match and what is left of today's likes."""
        account = await self.current_account()
        result = await swipes.record_swipe(redis=self.redis, settings=self.settings_obj, events=self.events,
                                           account=account, target_id=body.user_id, action=body.action)
        await mark_active(redis=self.redis, user_id=account.user.id, local=self.local_caches)
        self.ok({"matched": result.matched, "likes_remaining": result.likes_remaining,
                 "resets_at": result.resets_at})


class LastSwipeHandler(BaseHandler):
    @operation("rewindLastSwipe", tag="social", summary="Rewind my last swipe (VIP rewind)", response=Rewound,
               errors=(403, 404, 429))
    @requires_permission("rewind")
    async def delete(self) -> None:
        """Undo my most recent swipe and any match it made."""
        user_id = await swipes.rewind_last_swipe(redis=self.redis, settings=self.settings_obj, events=self.events,
                                                 account=await self.current_account())
        self.ok({"user_id": user_id})


class MatchesHandler(BaseHandler):
    @operation("listMatches", tag="social", summary="My matches, latest activity (match or message) first",
               query=PageQuery,
               response=MatchesPage,
               links={"Unmatch": {"operationId": "unmatch", "parameters": {"user_id": "$response.body#/data/items/0/id"}}})
    async def get(self, query: PageQuery) -> None:
        """My matches with their conversations' state, latest activity first."""
        origin = await search_origin((await self.current_account()).user)
        items, cursor = await matches.list_matches(settings=self.settings_obj, user_id=self.user_id,
                                                   limit=query.limit, cursor=query.cursor, origin=origin)
        self.ok({"items": items, "next_cursor": cursor})


class MatchHandler(BaseHandler):
    @operation("unmatch", tag="social", summary="Unmatch (both sides; the swipes stay)", errors=(404,))
    async def delete(self, user_id: str) -> None:
        """Unmatch, for both sides; the swipes stay."""
        await matches.unmatch(events=self.events, user_id=self.user_id, other_id=int(user_id))
        self.ok(None)


class LikesReceivedHandler(BaseHandler):
    @operation("listLikesReceived", tag="social", summary="Who liked me (VIP liked_me)", query=PageQuery,
               response=LikesPage, errors=(403,))
    @requires_permission("liked_me")
    async def get(self, query: PageQuery) -> None:
        """Who liked me and is waiting for my answer (VIP)."""
        origin = await search_origin((await self.current_account()).user)
        items, cursor = await likes.list_likes_received(settings=self.settings_obj, user_id=self.user_id,
                                                        limit=query.limit, cursor=query.cursor, origin=origin)
        self.ok({"items": items, "next_cursor": cursor})


class LikesReceivedCountHandler(BaseHandler):
    @operation("countLikesReceived", tag="social", summary="How many liked me", response=Count)
    async def get(self) -> None:
        """How many are waiting (for everyone: the teaser that sells the VIP)."""
        self.ok({"count": await likes.count_likes_received(user_id=self.user_id)})


class HotRankingHandler(BaseHandler):
    @operation("getHotRanking", tag="social", summary="Hot ranking", query=RankingQuery, response=HotRanking)
    async def get(self, query: RankingQuery) -> None:
        """The all-time hot list, highest score first."""
        origin = await search_origin((await self.current_account()).user)
        items = await ranking.top_hot(redis=self.redis, settings=self.settings_obj, viewer=self.user_id,
                                      limit=query.limit, origin=origin)
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
