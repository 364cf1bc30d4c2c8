"""Blocks and reports (``/api/v1/blocks``, ``/api/v1/reports``)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from handlers.base import BaseHandler
from handlers.contract import Limit, Payload, QueryModel, RequestModel, UserId, operation
from handlers.shapes import Page, PublicUser
from services.location.positions import search_origin
from services.safety import blocks, reports

MAX_DETAIL = 500
MAX_MESSAGE_IDS = 100


class BlockBody(RequestModel):
    user_id: UserId


class BlocksQuery(QueryModel):
    limit: Limit = 20
    cursor: str | None = None  # next_cursor of the previous page


class BlockedUser(Payload):
    user: PublicUser
    blocked_at: dt.datetime


class BlocksPage(Page[BlockedUser]):
    pass


class ReportBody(RequestModel):
    user_id: UserId
    reason: Literal["spam", "fake", "inappropriate", "harassment", "underage", "other"]
    detail: Annotated[str, Field(max_length=MAX_DETAIL)] = ""
    message_ids: Annotated[list[UserId], Field(max_length=MAX_MESSAGE_IDS)] = []  # of our conversation, either side


class ReportFiled(Payload):
    id: int  # the case: the same while it is open


class BlocksHandler(BaseHandler):
    @operation("blockUser", tag="safety", summary="Block a user (both directions; ends a match)", body=BlockBody,
               errors=(404, 409))
    async def post(self, body: BlockBody) -> None:
        """Idempotent; neither sees the other anywhere from now on."""
        await blocks.block_user(redis=self.redis, events=self.events, me=self.user_id, target_id=body.user_id)
        self.ok(None)

    @operation("listBlocks", tag="safety", summary="People I blocked, newest first", query=BlocksQuery,
               response=BlocksPage)
    async def get(self, query: BlocksQuery) -> None:
        """My blocks, newest first."""
        origin = await search_origin((await self.current_account()).user)
        items, cursor = await blocks.list_blocks(settings=self.settings_obj, me=self.user_id, limit=query.limit,
                                                 cursor=query.cursor, origin=origin)
        self.ok({"items": items, "next_cursor": cursor})


class BlockHandler(BaseHandler):
    @operation("unblockUser", tag="safety", summary="Unblock (we stay unmatched)", errors=(404,))
    async def delete(self, user_id: str) -> None:
        """Remove my block; theirs, if any, stays."""
        await blocks.unblock_user(redis=self.redis, me=self.user_id, target_id=int(user_id))
        self.ok(None)


class ReportsHandler(BaseHandler):
    @operation("reportUser", tag="safety", summary="Report a user (also blocks them)", body=ReportBody,
               response=ReportFiled, errors=(404, 409))
    async def post(self, body: ReportBody) -> None:
        """A repeat report while the case is open joins it (same id)."""
        case_id = await reports.file_report(redis=self.redis, events=self.events, me=self.user_id,
                                            target_id=body.user_id, reason=body.reason, detail=body.detail,
                                            message_ids=body.message_ids)
        self.ok({"id": case_id})


routes = [
    (r"/api/v1/blocks", BlocksHandler),
    (r"/api/v1/blocks/([1-9][0-9]{0,17})", BlockHandler),
    (r"/api/v1/reports", ReportsHandler),
]
