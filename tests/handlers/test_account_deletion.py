"""Deleting an account: no row of any table names the user, no Redis key under the test prefix does, no stored
file is left; tokens die at once; the phone registers again as a new user; others' lists forget the account."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from models import db
from models.base import utcnow
from services import keys
from tests.conftest import login, unique_city
from tests.handlers.test_blocks import hot_ids, like, likes_ids, match_ids
from tests.handlers.test_chat import send
from tests.handlers.test_photos import added
from tests.support.client import assert_error
from tests.support.events import EventSocket
from tests.support.images import multipart, png

PROFILE = "/api/v1/profile"
# every column that holds a user id, by table: a new table naming users must be added here (the test checks)
USER_COLUMNS = {
    "user": ["id"], "preferences": ["user_id"], "swipe": ["user_id", "target_id"], "match": ["user_a", "user_b"],
    "message": ["sender_id"], "session_revocation": ["user_id"], "vip_order": ["user_id"],
    "block": ["user_id", "target_id"], "ban": ["user_id"], "ban_event": ["user_id"],
    "report_case": ["reporter_id", "reported_id"], "report_message": ["sender_id"], "photo": ["user_id"],
    "swipe_pair": ["low_id", "high_id"],
}
NO_USER_COLUMNS = {"vip_level", "permission", "vip_permission", "vip_plan", "schema_migrations", "report_filing",
                   "storage_deletion"}


async def _all(_db: Any, cursor: Any) -> list[tuple]:
    return await cursor.fetchall()


async def rows_naming(user_id: int, phone: str) -> dict[str, int]:
    """Rows of every table that name the user: by a user-id column, or the phone or id in any text column."""
    tables = [row[0] for row in await db.aio_execute_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()", fetch_results=_all)]
    assert set(tables) == set(USER_COLUMNS) | NO_USER_COLUMNS, set(tables) ^ (set(USER_COLUMNS) | NO_USER_COLUMNS)
    found: dict[str, int] = {}
    for table in tables:
        text_columns = [row[0] for row in await db.aio_execute_sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s "
            "AND data_type IN ('char', 'varchar', 'text', 'mediumtext', 'longtext')", (table,), fetch_results=_all)]
        conditions = [f"`{column}` = %s" for column in USER_COLUMNS.get(table, [])]
        params: list[Any] = [user_id] * len(conditions)
        for column in text_columns:
            conditions += [f"`{column}` LIKE %s", f"`{column}` LIKE %s"]
            params += [f"%{phone}%", f"%/{user_id}/%"]
        if table == "report_case":
            conditions.append("`open_pair` LIKE %s OR `open_pair` LIKE %s")
            params += [f"{user_id}:%", f"%:{user_id}"]
        if not conditions:
            continue
        count = (await db.aio_execute_sql(f"SELECT COUNT(*) FROM `{table}` WHERE " + " OR ".join(conditions),
                                          params, fetch_results=_all))[0][0]
        if count:
            found[table] = count
    return found


async def keys_naming(redis, prefix: str, user_id: int, phone: str) -> list[str]:
    """Keys under the test prefix with the user id as one of their parts, or the phone (other than the SMS send
    windows, kept by design: ``safety.deletion``)."""
    kept = {keys.sms_cooldown(phone), keys.sms_hour(phone), keys.sms_day(phone)}
    named = []
    async for key in redis.scan_iter(match=prefix + "*", count=1000):
        parts = key[len(prefix):].replace("{", ":").replace("}", ":").split(":")
        if str(user_id) in parts or (phone in key and key not in kept):
            named.append(key)
    return named


async def test_deletion_leaves_nothing_naming_the_user(client, make_person, sms_stub, redis, settings, app, app_url):
    city = unique_city()
    session = await login(client, sms_stub, redis=redis)
    me_id, phone = session.user_id, session.phone
    token = session.access_token
    body, headers = multipart([("avatar", "a.png", "image/png", png())])
    assert (await client.request("PUT", "/api/v1/profile/avatar", body=body, headers=headers, token=token)).status == 200

    class Me:  # the person helpers take anything with .id and .token
        id, token = me_id, session.access_token
    me = Me()
    assert (await client.patch(PROFILE, {"gender": "female", "birthday": "1998-04-02", "location": city,
                                         "preferences": {"dating_gender": "male"}}, token=token)).status == 200
    await added(client, me)
    await added(client, me)
    assert (await client.put("/api/v1/location", {"lat": 39.9, "lng": 116.4}, token=token)).status == 200
    partner = await make_person(gender="male", city=city, dating_gender="female", level=2)
    fan = await make_person(city=city, level=2)
    admirer = await make_person(gender="male", city=city, level=2)
    await like(client, me, partner)
    assert (await like(client, partner, me))["matched"]
    await send(client, me, partner, "hello")
    await send(client, partner, me, "hi")
    await like(client, fan, me)
    await like(client, me, admirer)   # waits in admirer's likes received
    reported = await make_person()
    case = await client.post("/api/v1/reports", {"user_id": reported.id, "reason": "spam"}, token=token)
    assert case.status == 200
    reporter = await make_person()
    assert (await client.post("/api/v1/reports", {"user_id": me_id, "reason": "fake"}, token=reporter.token)).status == 200
    assert (await client.post("/api/v1/blocks", {"user_id": (await make_person()).id}, token=token)).status == 200
    assert (await client.get("/api/v1/recommendations", token=token)).status == 200  # the feed list
    assert (await client.get("/api/v1/likes/received/count", token=token)).status == 200
    assert (await client.post("/api/v1/events/tickets", token=token)).status == 200
    second = await login(client, sms_stub, phone=phone, redis=redis)
    assert (await client.delete("/api/v1/sessions/current", token=second.access_token)).status == 200  # a revocation
    await db.aio_execute_sql(
        "INSERT INTO vip_order (order_no, user_id, plan_id, level, months, amount_fen, channel, status, created_at, "
        "expires_at, updated_at) VALUES (%s, %s, 'gold-1m', 2, 1, 3000, 'alipay', 'paid', %s, %s, %s)",
        (secrets.token_hex(16), me_id, utcnow(), utcnow(), utcnow()))
    assert await rows_naming(me_id, phone)  # the check finds what is there
    assert await keys_naming(redis, settings.redis_prefix, me_id, phone)
    assert me_id in await match_ids(client, partner) and me_id in await likes_ids(client, admirer)
    assert me_id in await hot_ids(client, partner)
    files = list(Path(settings.media_dir).glob(f"*/{me_id}/*"))
    assert len(files) == 3

    socket = await EventSocket.open(app_url, token=partner.token)
    try:
        resp = await client.delete(PROFILE, json_body={"confirm": "DELETE"}, token=token)
        assert resp.status == 200 and resp.data is None, resp.body
        assert (await socket.next_of("unmatched"))["user_id"] == me_id
    finally:
        socket.close()
    await app.settings["storage_cleanup"].wait()

    assert await rows_naming(me_id, phone) == {}
    assert await keys_naming(redis, settings.redis_prefix, me_id, phone) == []
    assert not any(Path(settings.media_dir).glob(f"*/{me_id}"))  # no file, not even the directories
    assert_error(await client.get(PROFILE, token=token), 401, "not_authenticated")
    assert_error(await client.put("/api/v1/sessions/current", {"refresh_token": session.refresh_token}),
                 401, "not_authenticated")
    assert me_id not in await match_ids(client, partner) and me_id not in await likes_ids(client, admirer)
    assert me_id not in await hot_ids(client, partner)
    assert_error(await client.get(f"/api/v1/users/{me_id}", token=partner.token), 404, "not_found")
    again = await login(client, sms_stub, phone=phone, redis=redis)
    assert again.body["is_new_user"] and again.user_id != me_id
    assert again.body["user"]["photos"] == [] and again.body["user"]["avatar"] is None


async def test_a_storage_failure_is_retried_by_the_periodic_job(client, make_person, app, settings):
    from models import StorageDeletion
    me = await make_person()
    [photo] = await added(client, me)
    storage = app.settings["storage"]
    cleanup = app.settings["storage_cleanup"]
    path = Path(settings.media_dir, photo["url"].removeprefix("/media/"))
    original = storage.delete

    async def failing(key: str) -> None:
        from services.errors import UpstreamError
        raise UpstreamError("storage down")
    storage.delete = failing
    try:
        resp = await client.delete(PROFILE, json_body={"confirm": "DELETE"}, token=me.token)
        assert resp.status == 200  # a storage failure never fails the user's request
        await cleanup.wait()
    finally:
        storage.delete = original
    pending = await StorageDeletion.select().aio_execute()
    assert [row.key for row in pending if f"/{me.id}/" in row.key] and path.exists()
    assert await cleanup.purge() >= 1
    assert not path.exists()
    assert not await StorageDeletion.select().where(StorageDeletion.key.contains(f"/{me.id}/")).aio_exists()


@pytest.mark.parametrize("body", [None, {}, {"confirm": "delete"}, {"confirm": True}, {"confirm": "DELETE", "x": 1}])
async def test_bad_confirmations_delete_nothing(client, make_person, body):
    me = await make_person()
    if body is None:
        resp = await client.delete(PROFILE, token=me.token)
    else:
        resp = await client.delete(PROFILE, json_body=body, token=me.token)
    assert_error(resp, 400, "invalid_params")
    assert (await client.get(PROFILE, token=me.token)).status == 200
    assert_error(await client.delete(PROFILE, body=b"{", token=me.token, headers={"Content-Type": "application/json"}),
                 400, "invalid_params")
    assert_error(await client.delete(PROFILE, json_body={"confirm": "DELETE"}), 401, "not_authenticated")
