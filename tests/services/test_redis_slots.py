"""Redis Cluster readiness: the slot guard refuses what a cluster would, every owner's keys share one slot, and the
app's client really is a cluster client when the run uses one (SWIPER_TEST_REDIS_CLUSTER=1)."""
from __future__ import annotations

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from services import keys
from services.redis_client import CrossSlotError, SlotGuardedRedis, build_redis, command_keys


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_every_key_of_one_owner_hashes_to_one_slot(settings):
    user = {keys.model_cache("User", 42), keys.model_cache_version("User", 42), keys.quota("likes", 42, "20261201"),
            keys.quota("rewinds", 42, "20261201"), keys.superlikers(42), keys.feed_candidates(42), keys.active(42),
            keys.location_cells(42), keys.event_stream(42), keys.typing(42, 7)}
    assert {slot(k) for k in user} == {slot(keys.user_tag(42))}
    phone = [keys.sms_code("13800138000"), keys.sms_cooldown("13800138000"), keys.sms_hour("13800138000"),
             keys.sms_day("13800138000")]
    assert len({slot(k) for k in phone}) == 1
    assert slot(keys.auth_family("abc")) == slot(keys.auth_revoked("abc"))
    assert slot(keys.superlikers(42)) != slot(keys.superlikers(43))  # users spread over the slots


def test_a_prefix_with_braces_is_refused():
    with pytest.raises(ValueError):
        keys.configure("swiper{x}:")


def test_command_keys():
    assert command_keys(("EVAL", "return 1", 2, "a", "b", "arg")) == ["a", "b"]
    assert command_keys(("MSET", "a", 1, "b", 2)) == ["a", "b"]
    assert command_keys(("XREAD", "COUNT", 1, "STREAMS", "s1", "s2", "0", "0")) == ["s1", "s2"]
    assert command_keys(("PUBLISH", "channel", "x")) == []
    assert command_keys(("ZADD", "z", 1, "m")) == ["z"]


@pytest.fixture
async def guarded(settings):
    if settings.redis_cluster:
        pytest.skip("the guard stands in for a cluster on one Redis")
    client = build_redis(settings)
    assert isinstance(client, SlotGuardedRedis)  # the tests' settings turn it on
    yield client
    await client.aclose()


async def test_the_guard_refuses_keys_of_two_slots(guarded, settings):
    a, b = keys.superlikers(1), keys.superlikers(2)
    with pytest.raises(CrossSlotError):
        await guarded.eval("return 1", 2, a, b)
    with pytest.raises(CrossSlotError):
        await guarded.mget(a, b)
    with pytest.raises(CrossSlotError):
        await guarded.delete(a, b)
    assert await guarded.eval("return 1", 2, a, keys.feed_candidates(1)) == 1  # one owner: fine
    assert await guarded.mget(keys.model_cache("User", 1), keys.model_cache_version("User", 1)) == [None, None]


async def test_the_guard_refuses_what_a_cluster_pipeline_refuses(guarded):
    with pytest.raises(CrossSlotError):
        guarded.pipeline(transaction=True)  # redis-py runs it with asyncio.run on a thread, blocking the loop
    for queue in (lambda p: p.mget(keys.active(1), keys.feed_candidates(1)),
                  lambda p: p.publish(keys.events_channel(), "x"),
                  lambda p: p.evalsha("0" * 40, 1, keys.active(1))):
        async with guarded.pipeline(transaction=False) as pipe:
            queue(pipe)
            with pytest.raises(CrossSlotError):
                await pipe.execute()
    async with guarded.pipeline(transaction=False) as pipe:  # single-key commands of many owners: fine
        pipe.get(keys.active(1))
        pipe.get(keys.active(2))
        assert await pipe.execute() == [None, None]


async def test_the_app_client_is_a_cluster_client_on_a_cluster_run(app, settings):
    client = app.settings["redis"]
    assert isinstance(client, RedisCluster) == settings.redis_cluster
    if settings.redis_cluster:
        nodes = client.get_primaries()
        assert len(nodes) == 3


def test_a_cluster_url_names_db_0_or_none():
    from conf import SettingsError, load_settings
    assert load_settings({"SWIPER_REDIS_CLUSTER": "true", "SWIPER_REDIS_URL": "redis://10.0.0.1:7000/0"}).redis_cluster
    assert load_settings({"SWIPER_REDIS_CLUSTER": "true", "SWIPER_REDIS_URL": "redis://10.0.0.1:7000"}).redis_cluster
    with pytest.raises(SettingsError, match="SWIPER_REDIS_URL"):
        load_settings({"SWIPER_REDIS_CLUSTER": "true", "SWIPER_REDIS_URL": "redis://10.0.0.1:7000/15"})
