"""The seed's ``Model-<cls>-<pk>`` cache, made safe against stale reads.

A reader notes the entry's version before it reads MySQL and stores what it read only if the version is still
the same (one Lua compare-and-set). A writer commits, bumps the version and deletes the entry. Whatever the
interleaving, an entry written from rows older than a committed write is either refused or deleted, so a read
after a write never sees the old rows.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import peewee
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services import jsoncodec, keys
from services.redis_client import unreachable

T = TypeVar("T")
M = TypeVar("M", bound=peewee.Model)

_STORE_IF_UNCHANGED = """
local current = redis.call('GET', KEYS[2]) or '0'
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""
_VERSION_TTL = 2 * 24 * 3600
# One step on one slot (the entry and its version share the owner's hash tag). The announcement is a plain
# PUBLISH after it, not one inside: on a Redis Cluster a script's PUBLISH reaches the other nodes' subscribers
# later (over the cluster bus), a plain one goes to the channel's node, where every process subscribes, and has
# reached them when it returns, so no process can answer from its old copy after the writer has answered.
_INVALIDATE = """
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
redis.call('DEL', KEYS[2])
return 1
"""


def rows_to_data(*instances: peewee.Model) -> dict[str, Any]:
    """Model rows by field, keyed by their model's name, so ``rows_from_data`` can rebuild equal instances."""
    return {type(m).__name__: {f.name: _encode(m.__data__.get(f.name)) for f in m._meta.sorted_fields}
            for m in instances}


def rows_to_json(*instances: peewee.Model) -> bytes:
    return jsoncodec.dumps(rows_to_data(*instances))


def rows_from_json(raw: str, *models: type[peewee.Model]) -> list[peewee.Model]:
    return rows_from_data(jsoncodec.loads(raw), *models)


def rows_from_data(data: dict[str, Any], *models: type[peewee.Model]) -> list[peewee.Model]:
    rebuilt = []
    for model in models:
        fields = data[model.__name__]
        rebuilt.append(model(**{f.name: f.python_value(fields.get(f.name)) for f in model._meta.sorted_fields}))
    return rebuilt


def clone(instance: M) -> M:
    """A copy sharing nothing mutable with the original (peewee keeps a row's values in ``__data__``)."""
    copy = type(instance).__new__(type(instance))
    copy.__data__ = dict(instance.__data__)
    copy._dirty = set(instance._dirty)
    copy.__rel__ = {}
    return copy


def _encode(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return str(value)
    return value


def queue_read(pipe, *, name: str, pk: int) -> None:
    """Queue the entry's read on a pipeline, to share a round trip; pass the two results, as a list
    ``[entry, version]``, to ``read_through``. Two GETs, not MGET: a cluster pipeline refuses MGET."""
    pipe.get(keys.model_cache(name, pk))
    pipe.get(keys.model_cache_version(name, pk))


async def read_through(*, redis: Redis, name: str, pk: int, ttl: int, load: Callable[[], Awaitable[T]],
                       encode: Callable[[T], bytes], decode: Callable[[str], T],
                       prefetched: list | None = None) -> T:
    """Return the cached value, or load it and cache it unless a write happened meanwhile.

    ``prefetched`` is the ``[entry, version]`` a ``queue_read`` already fetched, read before the load as here.
    """
    entry_key, version_key = keys.model_cache(name, pk), keys.model_cache_version(name, pk)
    try:
        cached, version = prefetched if prefetched is not None else await redis.mget(entry_key, version_key)
    except RedisError as exc:
        if not unreachable(exc):
            raise
        return await load()  # the cache is down: MySQL is the truth, and nothing is stored
    if cached is not None:
        return decode(cached)
    value = await load()
    try:
        await redis.eval(_STORE_IF_UNCHANGED, 2, entry_key, version_key, version or "0", encode(value), ttl)
    except RedisError as exc:
        if not unreachable(exc):
            raise
    return value


async def invalidate(*, redis: Redis, name: str, pk: int) -> None:
    """Call after the write has committed; also tells every process to drop its local copy (``local_cache``)."""
    await redis.eval(_INVALIDATE, 2, keys.model_cache_version(name, pk), keys.model_cache(name, pk), _VERSION_TTL)
    await redis.publish(keys.invalidation_channel(), f"{name}\t{pk}")


@contextlib.asynccontextmanager
async def writing(*, redis: Redis, name: str, pk: int) -> AsyncIterator[None]:
    """Around a write of cached rows: invalidate before (so a write is refused, 503, while Redis cannot take the
    invalidation — it would leave the old rows cached for when Redis is back) and again after the commit (a
    reader between the two may have cached what it read before the commit)."""
    await invalidate(redis=redis, name=name, pk=pk)
    try:
        yield
    finally:
        await invalidate(redis=redis, name=name, pk=pk)
