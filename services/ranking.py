"""The hot ranking: a Redis sorted set of all-time scores over swipes received (see ``swipes.HOT_WEIGHTS``).

Banned and deleted users leave the set (``safety.bans``, ``safety.deletion``); people blocked either way are
stepped over by reading that many more entries, so a page is never short for them.
"""
from __future__ import annotations

from redis.asyncio import Redis

from conf import Settings
from services import keys
from services.accounts import load_users
from services.profiles import public_views
from services.safety.visibility import hidden_from


async def top_hot(*, redis: Redis, settings: Settings, viewer: int, limit: int,
                  origin: int | None = None) -> list[dict]:
    """Highest first; only positive scores; users who no longer exist are skipped. ``origin``: my search
    origin, for each user's ``distance_km``."""
    hidden = await hidden_from(viewer)
    entries = await redis.zrevrangebyscore(keys.hot_ranking(), "+inf", "(0", start=0, num=limit + len(hidden),
                                           withscores=True)
    entries = [(member, score) for member, score in entries if int(member) not in hidden][:limit]
    users = await load_users([int(member) for member, _ in entries])
    ranked = [(int(member), int(score)) for member, score in entries if int(member) in users]
    views = await public_views(settings, viewer, [users[user_id] for user_id, _ in ranked], origin)
    return [{"rank": rank, "score": score, "user": view}
            for rank, ((user_id, score), view) in enumerate(zip(ranked, views), start=1)]
