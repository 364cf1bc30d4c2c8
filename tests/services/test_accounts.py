"""Races in account creation and in the profile cache, driven directly against MariaDB and Redis."""
from __future__ import annotations

import asyncio

from models import Preferences, User
from services import keys, model_cache
from services import accounts
from services.accounts import Account, find_or_register, forget_account, load_account
from tests.conftest import new_phone


async def test_concurrent_first_logins_create_one_user(schema):
    phone = new_phone()
    results = await asyncio.gather(*[find_or_register(phone=phone) for _ in range(10)])
    assert len({user_id for user_id, _ in results}) == 1
    assert [is_new for _, is_new in results].count(True) == 1
    assert await User.select().where(User.phone == phone).aio_count() == 1
    assert await Preferences.select().where(Preferences.user == results[0][0]).aio_count() == 1


async def test_a_load_racing_a_write_never_caches_old_rows(schema, settings, redis):
    """The reader reads the old rows, then a writer commits and invalidates, then the reader tries to cache."""
    user_id, _ = await find_or_register(phone=new_phone())
    await User.update(location="旧城").where(User.id == user_id).aio_execute()
    await forget_account(redis=redis, user_id=user_id)

    async def load_then_write_meanwhile() -> Account:
        old = Account(user=await User.aio_get(User.id == user_id),
                      prefs=await Preferences.aio_get(Preferences.user == user_id))
        await User.update(location="新城").where(User.id == user_id).aio_execute()
        await forget_account(redis=redis, user_id=user_id)
        return old

    raced = await model_cache.read_through(redis=redis, name="User", pk=user_id, ttl=60,
                                           load=load_then_write_meanwhile, encode=accounts._encode,
                                           decode=accounts._decode)
    assert raced.user.location == "旧城"  # that reader answered with what it read...
    assert not await redis.exists(keys.model_cache("User", user_id))  # ...but did not cache it
    assert (await load_account(redis=redis, settings=settings, user_id=user_id)).user.location == "新城"
    assert (await load_account(redis=redis, settings=settings, user_id=user_id)).user.location == "新城"


async def test_cached_rows_round_trip(schema, settings, redis):
    user_id, _ = await find_or_register(phone=new_phone())
    from_db = await load_account(redis=redis, settings=settings, user_id=user_id)
    from_cache = await load_account(redis=redis, settings=settings, user_id=user_id)
    assert await redis.exists(keys.model_cache("User", user_id))
    assert from_cache.user.__data__ == from_db.user.__data__
    assert from_cache.prefs.__data__ == from_db.prefs.__data__
