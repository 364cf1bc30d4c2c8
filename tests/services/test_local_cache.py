"""The per-process copies of revocations and accounts: exact through Redis pub/sub, off whenever in doubt."""
from __future__ import annotations

import asyncio
import secrets
import time
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from models import User
from services import accounts, keys, tokens
from services.accounts import authenticate, find_or_register, forget_account, load_account
from services.errors import NotAuthenticatedError
from services.local_cache import MISSING, LocalCache, LocalCaches
from services.redis_client import build_redis
from tests.conftest import new_phone
from tests.support.proxy import TcpProxy


def test_an_entry_read_before_an_announcement_is_not_stored_after_it():
    cache = LocalCache(ttl=60, max_entries=10)
    cache.set_enabled(True)
    snapshot = cache.snapshot()
    cache.invalidate("other key")  # any announcement: the read may have seen the state before it
    cache.store("k", "old", snapshot)
    assert cache.get("k") is MISSING
    cache.store("k", "new", cache.snapshot())
    assert cache.get("k") == "new"
    cache.invalidate("k")
    assert cache.get("k") is MISSING


def test_nothing_is_kept_or_served_while_off():
    cache = LocalCache(ttl=60, max_entries=10)
    cache.store("k", "v", cache.snapshot())  # off: the snapshot is -1
    cache.set_enabled(True)
    assert cache.get("k") is MISSING
    cache.store("k", "v", cache.snapshot())
    snapshot = cache.snapshot()
    cache.set_enabled(False)
    assert cache.get("k") is MISSING
    cache.set_enabled(True)
    assert cache.get("k") is MISSING  # what was kept before going off is gone
    cache.store("k", "v", snapshot)  # a read begun before the switch is refused
    assert cache.get("k") is MISSING


def test_entries_expire_and_the_oldest_make_room():
    cache = LocalCache(ttl=0.05, max_entries=2)
    cache.set_enabled(True)
    for key in ("a", "b", "c"):
        cache.store(key, key, cache.snapshot())
    assert [cache.get(k) for k in ("a", "b", "c")] == [MISSING, "b", "c"]
    time.sleep(0.06)
    assert cache.get("b") is MISSING and len(cache) == 1


def named(settings, name: str):
    """The app's own Redis client (build_redis), its connections named in CLIENT LIST so a test finds its own."""
    return build_redis(settings.replace(redis_url=f"{settings.redis_url}?client_name={name}"))


async def clients_named(redis: Redis, name: str) -> list[str]:
    """Ids of the connections called ``name``: the other clients of this Redis (other tests, other runs) are
    only listed, never touched."""
    listing = await redis.execute_command("CLIENT", "LIST")
    entries = [dict(field.split("=", 1) for field in line.split() if "=" in field) for line in listing.splitlines()]
    return [entry["id"] for entry in entries if entry.get("name") == name]


@pytest.fixture
async def caches(settings, caches_name):
    client = named(settings, caches_name)
    local = LocalCaches(ttl=60, ping_interval=0.2)
    local.start(client)
    await asyncio.wait_for(local.live.wait(), 5)
    yield local
    await local.stop()
    await client.aclose()


@pytest.fixture
def caches_name() -> str:
    return f"swiper-test-caches-{secrets.token_hex(4)}"


async def eventually(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_write_anywhere_drops_the_local_account(schema, settings, redis, caches):
    user_id, _ = await find_or_register(phone=new_phone())
    first = await load_account(redis=redis, settings=settings, user_id=user_id, local=caches)
    first.user.location = "changed by the caller"  # callers get copies: the cache is not touched
    await User.update(location="北京").where(User.id == user_id).aio_execute()  # a write without an announcement
    assert (await load_account(redis=redis, settings=settings, user_id=user_id, local=caches)).user.location is None
    await forget_account(redis=redis, user_id=user_id)  # what every writer does after committing
    await eventually(lambda: caches.accounts.get(str(user_id)) is MISSING)
    assert (await load_account(redis=redis, settings=settings, user_id=user_id, local=caches)).user.location == "北京"


async def test_a_logout_in_another_process_ends_the_session_here(schema, settings, redis, caches):
    user_id, _ = await find_or_register(phone=new_phone())
    pair = await tokens.start_session(redis=redis, settings=settings, user_id=user_id)
    claims, _ = await authenticate(redis=redis, settings=settings, access_token=pair.access_token, local=caches)
    await load_account(redis=redis, settings=settings, user_id=user_id, local=caches)
    assert caches.revocations.get(claims.family) is True
    # with both copies local, authentication makes no Redis round trip at all: a dead client still works
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert (await authenticate(redis=dead, settings=settings, access_token=pair.access_token, local=caches))[1] is None
    await dead.aclose()
    await tokens.end_session(redis=redis, settings=settings, claims=claims)  # "another process": no local
    await eventually(lambda: caches.revocations.get(claims.family) is MISSING)
    with pytest.raises(NotAuthenticatedError):
        await authenticate(redis=redis, settings=settings, access_token=pair.access_token, local=caches)


async def test_a_reused_refresh_token_ends_the_session_here_too(schema, settings, redis, caches):
    user_id, _ = await find_or_register(phone=new_phone())
    pair = await tokens.start_session(redis=redis, settings=settings, user_id=user_id)
    await authenticate(redis=redis, settings=settings, access_token=pair.access_token, local=caches)
    await tokens.rotate_session(redis=redis, settings=settings, refresh_token=pair.refresh_token)
    with pytest.raises(NotAuthenticatedError):  # reuse: the whole family is revoked, its access tokens too
        await tokens.rotate_session(redis=redis, settings=settings, refresh_token=pair.refresh_token)
    await eventually(lambda: not caches.revocations)
    with pytest.raises(NotAuthenticatedError):
        await authenticate(redis=redis, settings=settings, access_token=pair.access_token, local=caches)


@pytest.mark.standalone_redis
async def test_a_lost_subscription_turns_the_caches_off_until_it_is_back(schema, settings, redis, caches,
                                                                         caches_name):
    user_id, _ = await find_or_register(phone=new_phone())
    await load_account(redis=redis, settings=settings, user_id=user_id, local=caches)
    assert len(caches.accounts) == 1
    bystander_name = f"swiper-test-bystander-{secrets.token_hex(4)}"
    bystander = named(settings, bystander_name).pubsub()  # another subscriber, as other processes' would be
    await bystander.subscribe("swiper-test-bystander")
    [bystander_id] = await clients_named(redis, bystander_name)
    try:
        [own] = await clients_named(redis, caches_name)  # the caches' one connection: their subscription
        assert await redis.execute_command("CLIENT", "KILL", "ID", own)
        await eventually(lambda: not caches.live.is_set())
        assert await clients_named(redis, bystander_name) == [bystander_id]  # nobody else was cut
    finally:
        await bystander.aclose()
    assert len(caches.accounts) == 0 and caches.accounts.get(str(user_id)) is MISSING
    await asyncio.wait_for(caches.live.wait(), 5)  # it subscribes again by itself
    await load_account(redis=redis, settings=settings, user_id=user_id, local=caches)
    assert caches.accounts.get(str(user_id)) is not MISSING


@pytest.mark.standalone_redis
async def test_a_silent_subscription_is_given_up(schema, settings, redis):
    """No answer to pings (a frozen connection): the caches go off, rather than trusting a silent channel."""
    host, port = urlsplit(settings.redis_url).hostname, urlsplit(settings.redis_url).port
    proxy = TcpProxy(host, port)  # only this client's connections go silent, never the shared Redis
    await proxy.start()
    client = build_redis(settings.replace(redis_url=f"redis://{host}:{proxy.port}/"
                                                                  f"{urlsplit(settings.redis_url).path[1:]}"))
    local = LocalCaches(ttl=60, ping_interval=0.1)
    local.start(client)
    try:
        await asyncio.wait_for(local.live.wait(), 5)
        local.caches["revoked"].store("fam", True, local.revocations.snapshot())
        assert local.revocations.get("fam") is True
        proxy.freeze()  # the connection stays open; no answer comes back
        await eventually(lambda: not local.live.is_set())
        assert local.revocations.get("fam") is MISSING
    finally:
        proxy.thaw()
        await local.stop()
        await client.aclose()
        await proxy.cut()


async def test_the_announcement_channel_carries_only_keys(schema, settings, redis, caches):
    """What other processes receive: the cache's name and the key, nothing of the user's data."""
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.invalidation_channel())
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    await forget_account(redis=redis, user_id=42)
    message = await pubsub.get_message(timeout=1)
    await pubsub.aclose()
    assert message["data"] == "User\t42"
    assert accounts.LocalCaches.ACCOUNTS == "User"
