"""Swipes and rewinds: exactly one match per mutual like, whatever the timing, and undo that leaves no trace.

A like is one transaction: upsert the pair's row (``swipe_pair``, one per unordered pair, which locks it),
insert the swipe (its unique key makes a repeat a no-op), take today's like quota, read the other side's swipe
(a locking read, so the newest committed version), and insert the match with its own unique pair key. Two people
liking each other at the same instant queue on the pair row before either inserts a swipe, so the second sees
the first's committed like: neither can miss the match nor create two. That holds on any engine that locks a
row it upserts (InnoDB, TiDB, Vitess on one shard), not only on InnoDB's gap locks; a deadlock elsewhere is
retried. A dislike matches nobody and takes no pair lock. The Redis side (hot score, superlike queue) is written
just before the commit and undone if the commit fails, so MySQL and Redis never disagree about a swipe.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import peewee
from redis.asyncio import Redis
from redis.exceptions import RedisError

from conf import Settings
from models import Match, Swipe, User, db
from models.base import utcnow
from models.db import with_retries
from models.social import ACTION_NAMES, ACTIONS
from services import keys, quotas, vip
from services.accounts import Account, load_users
from services.chat import messages as chat
from services.chat.events import EventPublisher
from services.location.positions import search_origin
from services.photos import visible_albums
from services.profiles import public_view
from services.safety import visibility
from services.errors import ConflictError, NotFoundError

log = logging.getLogger("swiper.swipes")
HOT_WEIGHTS = {"like": 5, "superlike": 7, "dislike": -5}
REWINDS_PER_DAY = 3


@dataclass(frozen=True)
class SwipeResult:
    matched: bool
    likes_remaining: int | None
    resets_at: dt.datetime | None


def pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


async def _match_exists(a: int, b: int) -> bool:
    low, high = pair(a, b)
    return await Match.select().where((Match.user_a == low) & (Match.user_b == high)).aio_exists()


async def _answer(*, redis: Redis, settings: Settings, user_id: int, matched: bool, unlimited: bool,
                  day: quotas.Day, used: int | None = None) -> SwipeResult:
    """The swipe's answer; ``used`` is the count the swipe itself took, so a committed swipe needs no more Redis."""
    if unlimited:
        return SwipeResult(matched, None, None)
    if used is None:
        used = await quotas.used(redis=redis, name="likes", user_id=user_id, day=day)
    return SwipeResult(matched, max(0, settings.daily_like_limit - used), day.resets_at)


# One statement checks that the target exists (and that neither has blocked the other, nor is the target banned:
# to them it does not exist) and inserts the swipe: its unique key turns a repeat into an
# IntegrityError (answered as the repeat it is), and no row inserted means no such user. Plain SQL: this is the
# hottest write, and building it with peewee cost more CPU than MySQL spends running it.
_INSERT_SWIPE = ("INSERT INTO swipe (user_id, target_id, action, created_at, counted) "
                 "SELECT %s, u.id, %s, %s, %s FROM user AS u WHERE u.id = %s AND " + visibility.visible_sql("u.id"))


async def _rowcount(_db: object, cursor: object) -> int:
    return cursor.rowcount  # type: ignore[attr-defined]


async def _insert_swipe(user_id: int, target_id: int, code: int, counted: bool) -> bool:
    inserted = await db.aio_execute_sql(_INSERT_SWIPE, (user_id, code, utcnow(), counted, target_id,
                                                        *visibility.params(user_id)), fetch_results=_rowcount)
    return inserted == 1


# The pair's row, created by the first like of either side and written by every like: the two sides of a mutual
# like serialise here, first, so neither has inserted its swipe while the other looks for it. An upsert locks its
# row until the commit on InnoDB and in TiDB's pessimistic mode (the default); in its optimistic mode the two
# writes of one row conflict at commit (retried). Reading the row back would add a statement and no lock.
_LOCK_PAIR = ("INSERT INTO swipe_pair (low_id, high_id, likes) VALUES (%s, %s, 1) "
              "ON DUPLICATE KEY UPDATE likes = likes + 1")


async def _lock_pair(a: int, b: int) -> None:
    await db.aio_execute_sql(_LOCK_PAIR, pair(a, b))


# Their swipe on me, as last committed (a locking read reads the newest version, not the transaction's snapshot).
_THEIR_SWIPE_LOCKED = "SELECT action FROM swipe WHERE user_id = %s AND target_id = %s FOR UPDATE"


async def _first_value(_db: object, cursor: object) -> object:
    row = await cursor.fetchone()  # type: ignore[attr-defined]
    return row[0] if row else None


async def _their_swipe_locked(me: int, target_id: int) -> int | None:
    return await db.aio_execute_sql(_THEIR_SWIPE_LOCKED, (target_id, me), fetch_results=_first_value)


def _swipe_effects(*, me: int, target: int, action: str, other_action: int | None, sign: int,
                   superliked_at: float) -> list[tuple]:
    """The Redis side of a swipe (sign=+1) or of its undoing (sign=-1), as commands of one key each: the keys
    belong to two users (and the ranking), which a Redis Cluster keeps in different slots, so there is no one
    atomic step; ``_write_effects`` runs them and takes back the ones that ran if another failed."""
    effects: list[tuple] = [("zincrby", keys.hot_ranking(), sign * HOT_WEIGHTS[action], str(target))]
    if sign < 0:
        effects.append(("zrem", keys.superlikers(target), str(me)))
        return effects
    if action == "superlike" and other_action is None:  # they have not swiped me: I go to the front of their feed
        effects.append(("zadd", keys.superlikers(target), {str(me): superliked_at}))
    effects.append(("zrem", keys.superlikers(me), str(target)))
    return effects


def _inverse(effect: tuple) -> tuple | None:
    name, key, *args = effect
    if name == "zincrby":
        return ("zincrby", key, -args[0], args[1])
    if name == "zadd":
        return ("zrem", key, *args[0])
    return None  # a zrem: setting a member again is idempotent, and what it removed is not needed back


async def _write_effects(redis: Redis, effects: list[tuple]) -> None:
    """One round trip of single-key commands (idempotent but for the ranking's increment, which runs once); if
    any fails, the ones that ran are taken back before the error is raised, so a failed swipe leaves nothing."""
    async with redis.pipeline(transaction=False) as pipe:
        for name, *args in effects:
            getattr(pipe, name)(*args)
        results = await pipe.execute(raise_on_error=False)
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        undo = [_inverse(e) for e, r in zip(effects, results) if not isinstance(r, Exception)]
        try:
            await _write_effects(redis, [u for u in undo if u is not None])
        except RedisError:
            log.warning("swipe effects: could not take back %d applied effects", len(undo))
        raise errors[0]


async def record_swipe(*, redis: Redis, settings: Settings, events: EventPublisher, account: Account,
                       target_id: int, action: str) -> SwipeResult:
    """Like, dislike or superlike someone; a repeat of the same swipe answers the same and counts nothing."""
    me = account.user
    if target_id == me.id:
        raise ConflictError("You cannot swipe yourself.")
    if action == "superlike":
        await vip.require_permission(me, "superlike")
    unlimited = await vip.has_permission(me, "unlimit_like")
    day = quotas.quota_day(settings)
    code = ACTIONS[action]

    async def repeat(existing: Swipe) -> SwipeResult:
        if existing.action != code:
            raise ConflictError(f"You already swiped this user ({ACTION_NAMES[existing.action]}).")
        matched = code > 0 and await _match_exists(me.id, target_id)
        return await _answer(redis=redis, settings=settings, user_id=me.id, matched=matched, unlimited=unlimited,
                             day=day)

    async def transaction() -> tuple[bool, int | None]:
        quota_taken = effects_written = False
        other_action: int | None = None
        used: int | None = None
        try:
            async with db.aio_atomic():
                counted = code > 0 and not unlimited
                if code > 0:
                    await _lock_pair(me.id, target_id)
                if not await _insert_swipe(me.id, target_id, code, counted):
                    raise NotFoundError("No such user.")
                if counted:
                    used = await quotas.take(redis=redis, name="likes", user_id=me.id, day=day,
                                             limit=settings.daily_like_limit)
                    quota_taken = True
                elif not unlimited:  # read now, so nothing after the commit can fail the answer
                    used = await quotas.used(redis=redis, name="likes", user_id=me.id, day=day)
                if code > 0:  # a dislike can match nobody, and only a superlike's queue entry needs their swipe
                    other_action = await _their_swipe_locked(me.id, target_id)
                matched = code > 0 and other_action is not None and other_action > 0
                if matched:
                    low, high = pair(me.id, target_id)
                    now = utcnow()
                    await (Match.insert(user_a=low, user_b=high, created_at=now, last_activity_at=now)
                           .on_conflict_ignore().aio_execute())
                await _write_effects(redis, _swipe_effects(
                    me=me.id, target=target_id, action=action, other_action=other_action, sign=1,
                    superliked_at=time.time()))
                effects_written = True
            return matched, used
        except BaseException:
            if quota_taken:
                await quotas.give_back(redis=redis, name="likes", user_id=me.id, day=day)
            if effects_written:  # only the commit itself can have failed
                await _write_effects(redis, _swipe_effects(
                    me=me.id, target=target_id, action=action, other_action=other_action, sign=-1,
                    superliked_at=0))
            raise

    try:
        matched, used = await with_retries(transaction)
    except peewee.IntegrityError:
        existing = await Swipe.select().where((Swipe.user_id == me.id) & (Swipe.target_id == target_id)).aio_first()
        if existing is None:
            raise
        return await repeat(existing)
    if matched:
        await _announce_match(events=events, settings=settings, me=me, target_id=target_id)
    return await _answer(redis=redis, settings=settings, user_id=me.id, matched=matched, unlimited=unlimited,
                         day=day, used=used)


async def _announce_match(*, events: EventPublisher, settings: Settings, me: User, target_id: int) -> None:
    """Both get a ``match`` event with the other's public view (after the commit; best effort like every event)."""
    target = (await load_users([target_id])).get(target_id)
    if target is not None:  # each sees the other's distance from their own search origin, and (matched) album
        albums = await visible_albums(settings, me.id, [target, me])
        await events.publish_many([
            (me.id, {"type": "match", "user": public_view(target, settings, await search_origin(me),
                                                           photos=albums.get(target_id, []))}),
            (target_id, {"type": "match", "user": public_view(me, settings, await search_origin(target),
                                                              photos=albums.get(me.id, []))})])


async def rewind_last_swipe(*, redis: Redis, settings: Settings, events: EventPublisher, account: Account) -> int:
    """Undo my most recent swipe (once, within the window) and everything it caused; returns whom it was about."""
    me = account.user
    day = quotas.quota_day(settings)

    unmatched = False

    async def transaction() -> int:
        nonlocal unmatched
        rewinds_taken = effects_written = False
        last: Swipe | None = None
        other: Swipe | None = None
        try:
            async with db.aio_atomic():
                # Locking my own row first makes concurrent rewinds of mine run one after another.
                floor = await User.select(User.rewind_floor).where(User.id == me.id).for_update().aio_scalar()
                last = await (Swipe.select().where(Swipe.user_id == me.id)
                              .order_by(Swipe.created_at.desc(), Swipe.id.desc()).aio_first())
                window_start = utcnow() - dt.timedelta(seconds=settings.rewind_window)
                if last is None or last.id <= (floor or 0) or last.created_at < window_start:
                    raise NotFoundError("There is no recent swipe to rewind.")
                await quotas.take(redis=redis, name="rewinds", user_id=me.id, day=day, limit=REWINDS_PER_DAY)
                rewinds_taken = True
                other = await (Swipe.select().where((Swipe.user_id == last.target_id)
                                                     & (Swipe.target_id == me.id)).aio_first())
                await Swipe.delete().where(Swipe.id == last.id).aio_execute()
                low, high = pair(me.id, last.target_id)
                match = await (Match.select(Match.id).where((Match.user_a == low) & (Match.user_b == high))
                               .for_update().aio_first())
                if match is not None:  # the match this swipe made goes, and its conversation with it
                    await chat.delete_conversation(match.id)
                    await Match.delete().where(Match.id == match.id).aio_execute()
                unmatched = match is not None
                await User.update(rewind_floor=last.id).where(User.id == me.id).aio_execute()
                action = ACTION_NAMES[last.action]
                effects = _swipe_effects(me=me.id, target=last.target_id, action=action,
                                         other_action=other.action if other else None, sign=-1, superliked_at=0)
                if other is not None and ACTION_NAMES[other.action] == "superlike":
                    # they superliked me and I have not swiped them any more: back to the front of my queue
                    effects.append(("zadd", keys.superlikers(me.id),
                                    {str(last.target_id): other.created_at.replace(tzinfo=dt.timezone.utc).timestamp()}))
                await _write_effects(redis, effects)
                effects_written = True
        except BaseException:
            if rewinds_taken:
                await quotas.give_back(redis=redis, name="rewinds", user_id=me.id, day=day)
            if effects_written and last is not None:  # only the commit itself can have failed: put it back
                await _write_effects(redis, _swipe_effects(
                    me=me.id, target=last.target_id, action=ACTION_NAMES[last.action],
                    other_action=other.action if other else None, sign=1,
                    superliked_at=last.created_at.replace(tzinfo=dt.timezone.utc).timestamp()))
            raise
        swiped_on = quotas.quota_day(settings, last.created_at.replace(tzinfo=dt.timezone.utc))
        # what the swipe took, not what the user's level is now: a level bought or lost in between changes nothing
        if last.counted and swiped_on.key == day.key:
            try:  # the rewind has committed: a lost give-back costs one like, an error here would hide the rewind
                await quotas.give_back(redis=redis, name="likes", user_id=me.id, day=day)
            except RedisError:
                log.warning("rewind of swipe %s: could not give the like back to the quota", last.id)
        return last.target_id

    await vip.require_permission(me, "rewind")
    target_id = await with_retries(transaction)
    if unmatched:
        await chat.announce_unmatched(events=events, a=me.id, b=target_id)
    return target_id
