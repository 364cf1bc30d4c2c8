"""Per-process copies of the two Redis reads every signed-in request makes, kept exact through Redis pub/sub.

Every authenticated request checks its token family's revocation and reads the user's cached rows. Both change
rarely (a logout, a profile or VIP write) and every change already goes through one place
(``tokens`` scripts, ``model_cache.invalidate``), which also publishes the changed key on one channel. Each
process keeps what it read for a few seconds and drops a key as soon as the announcement arrives.

Exactness rests on three rules:
- an entry is only used while the subscription is confirmed; on any doubt (disconnect, error, no answer to a ping)
  every entry is dropped and reads go to Redis until a new subscription is confirmed;
- a read that started before an announcement is not stored after it (a per-cache epoch, bumped by every
  announcement, must be unchanged between the read's start and its store);
- entries expire after ``settings.local_cache_ttl`` even if an announcement were lost.
Between a write's commit and the announcement reaching another process lies one Redis delivery: the writer's
PUBLISH returns after Redis has queued the message to every subscriber, so on loopback the other processes have
it before the writer's HTTP answer can reach a client.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from services import keys
from services.redis_client import run_subscription, stop_subscription

log = logging.getLogger("swiper.local_cache")
MISSING: Any = object()


class LocalCache:
    """A bounded, short-lived dict whose entries only count while the subscription is live."""

    def __init__(self, *, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.enabled = False
        self._epoch = 0
        self._entries: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        if not self.enabled:
            return MISSING
        hit = self._entries.get(key)
        if hit is None:
            return MISSING
        if hit[0] < time.monotonic():
            del self._entries[key]
            return MISSING
        return hit[1]

    def snapshot(self) -> int:
        """Take before reading Redis; ``store`` refuses the value if anything was announced meanwhile."""
        return self._epoch if self.enabled else -1

    def store(self, key: str, value: Any, snapshot: int) -> None:
        if snapshot < 0 or snapshot != self._epoch or not self.enabled or self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries and key not in self._entries:
            del self._entries[next(iter(self._entries))]  # the oldest insertion
        self._entries[key] = (time.monotonic() + self.ttl, value)

    def invalidate(self, key: str) -> None:
        self._epoch += 1
        self._entries.pop(key, None)

    def set_enabled(self, enabled: bool) -> None:
        """Any change of state drops everything: what was read before it can't be trusted after it."""
        self._epoch += 1
        self._entries.clear()
        self.enabled = enabled

    def __len__(self) -> int:
        return len(self._entries)


class LocalCaches:
    """The process's local caches, and the subscription that keeps them exact."""

    REVOCATIONS = "revoked"
    ACCOUNTS = "User"

    def __init__(self, *, ttl: float, max_entries: int = 10_000, ping_interval: float = 1.0) -> None:
        self.caches = {name: LocalCache(ttl=ttl, max_entries=max_entries)
                       for name in (self.REVOCATIONS, self.ACCOUNTS)}
        # Not a copy of anything: users this process recently told Redis were active (``accounts.mark_active``).
        self.recently_active = LocalCache(ttl=60.0 if ttl > 0 else 0.0, max_entries=max_entries)
        self.ping_interval = ping_interval
        self.live = asyncio.Event()
        self.on_announcement: list[Callable[[str, str], None]] = []  # (cache, key) of each change announced
        self._task: asyncio.Task | None = None

    @property
    def revocations(self) -> LocalCache:
        return self.caches[self.REVOCATIONS]

    @property
    def accounts(self) -> LocalCache:
        return self.caches[self.ACCOUNTS]

    def start(self, redis: Redis) -> None:
        if self._task is None and any(cache.ttl > 0 for cache in self.caches.values()):
            self._task = asyncio.get_running_loop().create_task(self._run(redis), name="local-cache-subscriber")

    async def stop(self) -> None:
        await stop_subscription(self._task)
        self._task = None
        self._set_live(False)

    def clear(self) -> None:
        """Drop every entry (tests, between cases); the state, live or not, stays."""
        for cache in (*self.caches.values(), self.recently_active):
            cache.set_enabled(cache.enabled)

    def apply(self, message: str) -> None:
        """An announcement ``<cache>\\t<key>``; unknown caches are ignored (a newer process may announce more)."""
        name, _, key = message.partition("\t")
        cache = self.caches.get(name)
        if cache is not None:
            cache.invalidate(key)
        for callback in self.on_announcement:
            callback(name, key)

    def _set_live(self, live: bool) -> None:
        for cache in (*self.caches.values(), self.recently_active):
            cache.set_enabled(live)
        if live:
            self.live.set()
        else:
            self.live.clear()

    async def _run(self, redis: Redis) -> None:
        await run_subscription(redis, keys.invalidation_channel(), ping_interval=self.ping_interval,
                               on_subscribed=self._subscribed, on_message=self.apply, on_lost=self._lost)

    def _subscribed(self) -> None:
        """Also after a reconnect done inside redis-py: announcements may have been missed, so start afresh."""
        self._set_live(False)
        self._set_live(True)
        log.info("local caches on")

    def _lost(self, exc: Exception | None) -> None:
        """Any doubt: no local reads until a new subscription is confirmed."""
        if exc is not None and self.live.is_set():
            log.warning("local caches off: invalidation subscription lost (%s)", exc)
        self._set_live(False)
