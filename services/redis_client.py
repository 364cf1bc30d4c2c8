"""The one way to get Redis: a bounded pool with short timeouts so a dead server fails fast — one Redis, or a
Redis Cluster (``SWIPER_REDIS_CLUSTER``) through redis-py's ``redis.asyncio.cluster.RedisCluster``.

The slot guard (``SWIPER_REDIS_SLOT_GUARD``, on in the tests) makes a standalone client behave like a cluster
about keys: a command, script or pipeline whose keys hash to more than one slot fails, and so does what a cluster
pipeline refuses (``transaction=True``, which redis-py runs on a thread with ``asyncio.run`` blocking the loop;
EVALSHA, MGET, MSET and PUBLISH inside a pipeline). So the ordinary tests catch a cross-slot key.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from conf import Settings


def build_redis(settings: Settings) -> Redis:
    """The process's client (a ``RedisCluster`` quacks like ``Redis`` for everything Swiper calls)."""
    common = dict(socket_connect_timeout=settings.redis_timeout, socket_timeout=settings.redis_timeout,
                  health_check_interval=30, decode_responses=True)
    if settings.redis_cluster:
        cluster = BoundedRedisCluster.from_url(settings.redis_url, max_connections=settings.redis_pool_size + 2,
                                               **common)  # +2: the two subscriptions hold one each
        cluster.bound(settings.redis_pool_size, settings.redis_timeout)
        return cluster  # type: ignore[return-value]
    pool = BlockingConnectionPool.from_url(settings.redis_url, max_connections=settings.redis_pool_size,
                                           timeout=settings.redis_timeout, **common)
    if settings.redis_slot_guard:
        return SlotGuardedRedis(connection_pool=pool)
    return Redis(connection_pool=pool)


class BoundedRedisCluster(RedisCluster):
    """A cluster client that waits for a free connection, as the standalone BlockingConnectionPool does: redis-py's
    cluster nodes raise MaxConnectionsError at once when their pool is full, which would shed a burst the
    standalone client serves. At most ``size`` calls are in flight (so no node's pool is ever full); a call that
    waits ``timeout`` for its turn fails the way the blocking pool does (see ``pool_exhausted``)."""

    def bound(self, size: int, timeout: float) -> None:
        self._turns = asyncio.Semaphore(size)
        self._turn_timeout = timeout

    @contextlib.asynccontextmanager
    async def turn(self):
        try:
            await asyncio.wait_for(self._turns.acquire(), self._turn_timeout)
        except asyncio.TimeoutError as exc:
            raise RedisConnectionError("No connection available.") from exc
        try:
            yield
        finally:
            self._turns.release()

    async def execute_command(self, *args, **kwargs):
        async with self.turn():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction=None, shard_hint=None):
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _BoundedClusterPipeline(self, transaction)


class _BoundedClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True):
        async with self.cluster_client.turn():
            return await super().execute(raise_on_error, allow_redirections)


async def pubsub(redis: Redis):
    """A PubSub on either kind of client; a cluster's must know its slots first (it picks a node by channel).
    Classic PUBLISH reaches subscribers on every node of a cluster, so any node will do."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()
    return redis.pubsub()


async def run_subscription(redis: Redis, channel: str, *, ping_interval: float, on_subscribed: Callable[[], None],
                           on_message: Callable[[str], None], on_lost: Callable[[Exception | None], None]) -> None:
    """Listen to ``channel`` for as long as the task runs: the one subscription loop of the process's listeners
    (the local caches' invalidations, the event sockets' fan-out).

    ``on_subscribed`` runs at each (re)subscription, also one that redis-py makes inside after a reconnect, so
    whatever was published meanwhile is lost to the caller; ``on_lost`` when the connection fails, goes silent for
    three ping intervals (a Redis that is frozen, not refused) or the task is cancelled (``None``). Then it
    subscribes again, backing off up to 2 s. Each subscription's connection is closed when it is given up."""
    backoff = 0.1
    while True:
        try:
            await _listen(redis, channel, ping_interval, on_subscribed, on_message)
        except asyncio.CancelledError:
            on_lost(None)
            raise
        except Exception as exc:
            on_lost(exc)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 2.0)


async def stop_subscription(task: asyncio.Task | None) -> None:
    """Cancel a ``run_subscription`` task and wait until its connection is closed."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _listen(redis: Redis, channel: str, ping_interval: float, on_subscribed: Callable[[], None],
                  on_message: Callable[[str], None]) -> None:
    subscription = await pubsub(redis)
    loop = asyncio.get_running_loop()
    try:
        await subscription.subscribe(channel)
        last_heard = loop.time()
        while True:
            message = await subscription.get_message(timeout=ping_interval)
            now = loop.time()
            if message is None:
                if now - last_heard > 3 * ping_interval:
                    raise TimeoutError("no answer to pings")
                await subscription.ping()
                continue
            last_heard = now
            if message["type"] == "subscribe":
                on_subscribed()
            elif message["type"] == "message":
                on_message(message["data"])
    finally:
        with contextlib.suppress(Exception):
            await subscription.aclose()


def pool_exhausted(exc: BaseException) -> bool:
    """redis-py's BlockingConnectionPool gives up waiting for a free connection with this error (a cluster node's
    pool raises MaxConnectionsError at once): this process is overloaded, Redis may be fine, so such a request is
    shed (503), never served by a fallback."""
    return isinstance(exc, MaxConnectionsError) or (
        isinstance(exc, RedisConnectionError) and isinstance(exc.__cause__, TimeoutError))


def unreachable(exc: BaseException) -> bool:
    """Redis itself cannot be reached or did not answer in time (a fallback may serve the request)."""
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError)) and not pool_exhausted(exc)


# ---- the slot guard ----------------------------------------------------------------------------------------

class CrossSlotError(RedisClusterException):
    """A call a Redis Cluster would refuse (keys in two slots, or a command a cluster pipeline blocks)."""


_ALL_KEYS = {"DEL", "UNLINK", "EXISTS", "TOUCH", "MGET", "WATCH", "SINTER", "SUNION", "SDIFF", "PFCOUNT"}
_SCRIPTS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}
_KEYLESS = {"PING", "PUBLISH", "SCAN", "INFO", "ECHO", "TIME", "COMMAND", "CLIENT", "CONFIG", "DBSIZE", "FLUSHDB",
            "FLUSHALL", "SCRIPT", "SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "MULTI", "EXEC",
            "DISCARD", "UNWATCH", "SELECT", "AUTH", "HELLO", "QUIT", "KEYS", "RANDOMKEY", "WAIT"}
_PIPELINE_BLOCKED = {"EVALSHA", "MGET", "MSET", "MSETNX", "PUBLISH", "PING", "KEYS", "SCAN", "INFO"}


def command_keys(args: tuple) -> list:
    """The keys of one command, for the commands Swiper can send (single-key commands name theirs first)."""
    name = str(args[0]).upper()
    if name in _KEYLESS or len(args) < 2:
        return []
    if name in _ALL_KEYS:
        return list(args[1:])
    if name in ("MSET", "MSETNX"):
        return list(args[1::2])
    if name in _SCRIPTS:
        return list(args[3:3 + int(args[2])])
    if name in ("XREAD", "XREADGROUP"):
        upper = [str(a).upper() for a in args]
        streams = args[upper.index("STREAMS") + 1:]
        return list(streams[:len(streams) // 2])
    if name in ("RENAME", "RENAMENX", "RPOPLPUSH", "LMOVE", "SMOVE", "COPY", "BLMOVE"):
        return list(args[1:3])
    return [args[1]]


def _slot(key) -> int:
    return key_slot(key if isinstance(key, bytes) else str(key).encode())


def check_one_slot(keys: list, what: str) -> None:
    slots = {_slot(k) for k in keys}
    if len(slots) > 1:
        raise CrossSlotError(f"{what}: keys in {len(slots)} hash slots: {', '.join(map(str, keys))}")


class SlotGuardedRedis(Redis):
    """A standalone client that refuses what a cluster would (see the module's docstring)."""

    async def execute_command(self, *args, **options):
        check_one_slot(command_keys(args), str(args[0]))
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        if transaction:
            raise CrossSlotError("pipeline(transaction=True): a cluster runs it blocking the event loop")
        return _SlotGuardedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _SlotGuardedPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True):
        for args, _options in self.command_stack:
            name = str(args[0]).upper()
            if name in _PIPELINE_BLOCKED:
                raise CrossSlotError(f"{name} inside a pipeline: a cluster pipeline refuses it")
            check_one_slot(command_keys(args), name)
        return await super().execute(raise_on_error)
