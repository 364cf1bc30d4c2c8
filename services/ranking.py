"""The hot ranking: a Redis sorted set of all-time scores over swipes received (see ``swipes.HOT_WEIGHTS``)."""
from __future__ import annotations

from redis.asyncio import Redis

from conf import Settings
from services import keys
from services.accounts import load_users
from services.profiles import public_view


async def top_hot(*, redis: Redis, settings: Settings, limit: int, origin: int | None = None) -> list[dict]:
    """Highest first; only positive scores; users who no longer exist are skipped. ``origin``: my search
    origin, for each user's ``distance_km``."""
    entries = await redis.zrevrangebyscore(keys.hot_ranking(), "+inf", "(0", start=0, num=limit, withscores=True)
    users = await load_users([int(member) for member, _ in entries])
    ranked = [(int(member), int(score)) for member, score in entries if int(member) in users]
    return [{"rank": rank, "score": score, "user": public_view(users[user_id], settings, origin)}
            for rank, (user_id, score) in enumerate(ranked, start=1)]
