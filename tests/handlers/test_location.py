"""PUT/DELETE /api/v1/location and /api/v1/passport: validation, snapping, the cell budget, the passport's
permission, and that raw coordinates reach no table, no Redis key and no log line."""
from __future__ import annotations

import datetime as dt
import itertools
import math

import pytest
from h3.api import basic_int as h3

from models import User, db
from models.base import utcnow
from services import keys
from conf import parse_mysql_url
from tests.conftest import server_env
from tests.support.client import Client, assert_error
from tests.support.processes import ServerProcess
from tests.support.proxy import TcpProxy

LOCATION, PASSPORT = "/api/v1/location", "/api/v1/passport"
# Far apart (>= 500 km): each test gets its own region, so no test's feed sees another's people.
_regions = itertools.count()


def region() -> tuple[float, float]:
    """A point of its own for one test, at least 500 km from every other test's."""
    i = next(_regions)
    return -50.0 + 6.0 * (i // 20), -175.0 + 9.0 * (i % 20)


def offset(point: tuple[float, float], north_km: float, east_km: float = 0.0) -> tuple[float, float]:
    lat, lng = point
    return lat + north_km / 111.195, lng + east_km / (111.195 * math.cos(math.radians(lat)))


def cell_of(point: tuple[float, float]) -> int:
    return h3.latlng_to_cell(point[0], point[1], 8)


def expected_km(a: int, b: int) -> int:
    """API.md's rule, computed here independently of services/location: the cell-centre distance rounded up to
    1, 2, 5, 10, 25, 50, 100, then whole hundreds; the same cell is 1."""
    if a == b:
        return 1
    km = h3.great_circle_distance(h3.cell_to_latlng(min(a, b)), h3.cell_to_latlng(max(a, b)), unit="km")
    return next((edge for edge in (1, 2, 5, 10, 25, 50, 100) if km <= edge), math.ceil(km / 100) * 100)


async def put_location(client, person, point) -> object:
    return await client.put(LOCATION, {"lat": point[0], "lng": point[1]}, token=person.token)


async def place(client, person, point) -> int:
    resp = await put_location(client, person, point)
    assert resp.status == 200, resp.body
    return cell_of(point)


async def test_a_position_is_kept_only_as_its_cell(client, make_person):
    me = await make_person()
    point = region()
    resp = await put_location(client, me, point)
    assert resp.status == 200, resp.body
    assert set(resp.data) == {"updated_at"}
    assert abs(dt.datetime.fromisoformat(resp.data["updated_at"]) - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(
        seconds=30)
    row = await User.select(User.geo_cell, User.geo_coarse).where(User.id == me.id).aio_first()
    assert row.geo_cell == cell_of(point) and row.geo_coarse == h3.cell_to_parent(cell_of(point), 5)
    assert (await client.get("/api/v1/profile", token=me.token)).data.keys().isdisjoint({"lat", "lng"})
    forgot = await client.delete(LOCATION, token=me.token)
    assert forgot.status == 200 and forgot.json == {"code": 0, "data": None}
    row = await User.select(User.geo_cell, User.geo_coarse).where(User.id == me.id).aio_first()
    assert (row.geo_cell, row.geo_coarse) == (None, None)


BAD_BODIES = [
    ({"lat": "39.9", "lng": 116.4}, {"lat": "must be a number"}),
    ({"lat": 39.9, "lng": "116.4"}, {"lng": "must be a number"}),
    ({"lat": 90.0001, "lng": 0}, {"lat": "must be at most 90.0"}),
    ({"lat": -90.5, "lng": 0}, {"lat": "must be at least -90.0"}),
    ({"lat": 0, "lng": 180.25}, {"lng": "must be at most 180.0"}),
    ({"lat": 0, "lng": -181}, {"lng": "must be at least -180.0"}),
    ({"lat": True, "lng": 10}, {"lat": "must be a number"}),
    ({"lat": None, "lng": 10}, {"lat": "must be a number"}),
    ({"lng": 10}, {"lat": "required"}),
    ({}, {"lat": "required", "lng": "required"}),
    ({"lat": 10, "lng": 10, "accuracy": 5}, {"accuracy": "unknown field"}),
    ({"lat": [10], "lng": 10}, {"lat": "must be a number"}),
]


@pytest.mark.parametrize("path", [LOCATION, PASSPORT])
@pytest.mark.parametrize("body, fields", BAD_BODIES)
async def test_bad_coordinates_are_1002_naming_the_field_before_any_permission(client, make_person, path, body,
                                                                                fields):
    free = await make_person()  # no anylocation: the passport's 1004 must not come first
    resp = await client.put(path, body, token=free.token)
    assert assert_error(resp, 400, "invalid_params")["data"]["fields"] == fields


@pytest.mark.parametrize("raw", [b'{"lat": NaN, "lng": 1}', b'{"lat": 1, "lng": Infinity}', b'{"lat": 1e999, "lng": 1}',
                                 b'{"lat": -Infinity, "lng": 1}', b'[39.9, 116.4]', b'', b'{"lat": 1, "lng": 2'])
async def test_nan_infinity_and_non_json_are_1002(client, make_person, raw):
    me = await make_person()
    resp = await client.request("PUT", LOCATION, body=raw, token=me.token, headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_params")
    assert await User.select(User.geo_cell).where(User.id == me.id).aio_scalar() is None


async def test_the_cell_budget_counts_distinct_cells_per_hour(client, make_person, redis, settings):
    me = await make_person(level=3)
    start = region()
    route = [offset(start, 2.0 * i) for i in range(settings.location_cells_per_hour)]  # 2 km apart: new cells
    assert len({cell_of(p) for p in route}) == len(route)
    for point in route[:-1]:
        await place(client, me, point)
    passport = await client.put(PASSPORT, {"lat": route[-1][0], "lng": route[-1][1]}, token=me.token)
    assert passport.status == 200, passport.body  # the passport spends the same budget: the 12th cell
    beyond = offset(start, 50)
    refused = await put_location(client, me, beyond)
    body = assert_error(refused, 429, "rate_limited")
    assert body["data"]["scope"] == "location_cells"
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600 and body["data"]["retry_after"] == int(
        refused.headers["Retry-After"])
    assert_error(await client.put(PASSPORT, {"lat": beyond[0], "lng": beyond[1]}, token=me.token), 429,
                 "rate_limited")
    assert await User.select(User.geo_cell).where(User.id == me.id).aio_scalar() == cell_of(route[-2])
    # Free: the current cell again (from anywhere inside it), and any cell already entered this hour.
    inside = offset(route[-2], 0.01, 0.01)
    assert cell_of(inside) == cell_of(route[-2])
    assert (await put_location(client, me, inside)).status == 200
    assert (await put_location(client, me, route[0])).status == 200
    # Forgetting the position does not give the budget back.
    assert (await client.delete(LOCATION, token=me.token)).status == 200
    assert_error(await put_location(client, me, beyond), 429, "rate_limited")
    # An hour after a cell was entered, it no longer counts (what the window's sliding does).
    window = keys.location_cells(me.id)
    oldest, score = (await redis.zrange(window, 0, 0, withscores=True))[0]
    await redis.zadd(window, {oldest: score - 3600 * 1000})
    assert (await put_location(client, me, beyond)).status == 200
    assert_error(await put_location(client, me, offset(start, 60)), 429, "rate_limited")


async def test_concurrent_moves_never_pass_the_budget(client, make_person, settings):
    import asyncio
    me = await make_person()
    start = region()
    points = [offset(start, 2.0 * i) for i in range(settings.location_cells_per_hour + 8)]
    answers = await asyncio.gather(*[put_location(client, me, p) for p in points])
    assert sorted(r.status for r in answers).count(200) == settings.location_cells_per_hour
    assert {r.status for r in answers} == {200, 429}


async def test_the_passport_needs_anylocation(client, make_person):
    free, vip = await make_person(), await make_person(level=3)
    point = region()
    body = assert_error(await client.put(PASSPORT, {"lat": point[0], "lng": point[1]}, token=free.token), 403,
                        "permission_denied")
    assert body["data"] == {"permission": "anylocation"}
    resp = await client.put(PASSPORT, {"lat": point[0], "lng": point[1]}, token=vip.token)
    assert resp.status == 200 and resp.json == {"code": 0, "data": None}
    assert await User.select(User.passport_cell).where(User.id == vip.id).aio_scalar() == cell_of(point)
    for who in (vip, free):  # ending one needs no permission (a lapsed member can clear theirs)
        ended = await client.delete(PASSPORT, token=who.token)
        assert ended.status == 200 and ended.json == {"code": 0, "data": None}
    assert await User.select(User.passport_cell).where(User.id == vip.id).aio_scalar() is None


async def _all_text_in_mysql() -> str:
    """Every value of every column of every table of the test database, as text."""
    tables = [row[0] for row in await db.aio_execute_sql("SHOW TABLES", fetch_results=_fetchall)]
    chunks = []
    for table in tables:
        for row in await db.aio_execute_sql(f"SELECT * FROM `{table}`", fetch_results=_fetchall):
            chunks.append("|".join(str(value) for value in row))
    return "\n".join(chunks)


async def _fetchall(_db, cursor):
    return await cursor.fetchall()


async def _all_text_in_redis(redis, prefix: str) -> str:
    chunks = []
    async for key in redis.scan_iter(match=prefix + "*", count=500):
        kind = await redis.type(key)
        chunks.append(key)
        if kind == "string":
            chunks.append(str(await redis.get(key)))
        elif kind == "hash":
            chunks.append(str(await redis.hgetall(key)))
        elif kind == "zset":
            chunks.append(str(await redis.zrange(key, 0, -1, withscores=True)))
        elif kind == "set":
            chunks.append(str(await redis.smembers(key)))
        elif kind == "list":
            chunks.append(str(await redis.lrange(key, 0, -1)))
        elif kind == "stream":
            chunks.append(str(await redis.xrange(key)))
    return "\n".join(chunks)


def _traces(lat: float, lng: float) -> list[str]:
    """How a raw coordinate could show up: its digits at a few precisions, and scaled to integers."""
    out = []
    for value in (lat, lng):
        out += [repr(value), f"{value:.6f}", f"{value:.5f}", f"{value:.4f}", str(round(value * 1e6)),
                str(round(value * 1e7))]
    return out


# Distinctive values: digits no cell id, time or token would contain by chance.
RAW = (-33.8675391, 151.2069843)
RAW_BAD = (91.7315372, 151.2069843)


async def test_raw_coordinates_reach_no_table_no_redis_key_and_no_log_line(client, make_person, redis, settings,
                                                                            caplog):
    caplog.set_level("DEBUG")
    me, vip = await make_person(gender="male"), await make_person(level=3)
    assert (await put_location(client, me, RAW)).status == 200
    assert (await client.put(PASSPORT, {"lat": RAW[0], "lng": RAW[1]}, token=vip.token)).status == 200
    assert_error(await put_location(client, me, RAW_BAD), 400, "invalid_params")
    assert_error(await client.put(LOCATION, {"lat": str(RAW[0]), "lng": RAW[1]}, token=me.token), 400,
                 "invalid_params")
    await client.get(f"/api/v1/users/{me.id}", token=vip.token)
    await client.get("/api/v1/recommendations", token=vip.token)
    stored = await _all_text_in_mysql() + "\n" + await _all_text_in_redis(redis, settings.redis_prefix)
    assert str(cell_of(RAW)) in stored  # the scan does see the cells
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert f"PUT {LOCATION} 200" in logged and f"PUT {LOCATION} 400" in logged  # the access lines were captured
    for trace in _traces(*RAW) + _traces(*RAW_BAD):
        assert trace not in stored, trace
        assert trace not in logged, trace


async def test_a_server_process_logs_no_coordinates(settings, make_person):
    """The real process's access and error log (server.py's stdout and stderr, at DEBUG), including requests that
    fail inside the handler: MySQL cut mid-run, so the transaction raises and the error path logs it."""
    me = await make_person()
    mysql = parse_mysql_url(settings.mysql_url)
    proxy = TcpProxy(mysql.host, mysql.port)
    await proxy.start()
    url = f"mysql://{mysql.user}:{mysql.password}@127.0.0.1:{proxy.port}/{mysql.database}"
    server = ServerProcess(server_env(settings, log_level="DEBUG", mysql_url=url))
    await server.start()
    try:
        client = Client(server.base_url)
        assert (await put_location(client, me, RAW)).status == 200
        assert_error(await put_location(client, me, RAW_BAD), 400, "invalid_params")
        assert_error(await client.put(LOCATION, {"lat": RAW[0], "lng": RAW[1], "raw": RAW[0]}, token=me.token),
                     400, "invalid_params")
        await proxy.cut()
        assert_error(await put_location(client, me, offset(RAW, 3)), 503, "unavailable")
    finally:
        assert server.stop() == 0
        await proxy.cut()
    output = server.output()
    assert "PUT /api/v1/location 200" in output and "PUT /api/v1/location 400" in output
    assert "PUT /api/v1/location 503" in output and "unavailable" in output
    for trace in _traces(*RAW) + _traces(*RAW_BAD) + _traces(*offset(RAW, 3)):
        assert trace not in output, trace


async def test_resending_the_current_cell_is_free_even_when_its_hour_is_over(client, make_person, redis, settings):
    """The window is full of other cells and mine has aged out of it: sending my current cell again costs
    nothing (a phone that reports the same place every few minutes is never refused), a new cell is refused."""
    me = await make_person(level=3)
    start = region()
    here = h3.cell_to_latlng(cell_of(offset(start, -30)))  # a cell's centre: 50 m away is the same cell
    await place(client, me, here)
    for i in range(settings.location_cells_per_hour - 1):
        trip = offset(start, 2.0 * i)
        assert (await client.put(PASSPORT, {"lat": trip[0], "lng": trip[1]}, token=me.token)).status == 200
    window = keys.location_cells(me.id)
    entries = await redis.zrange(window, 0, -1, withscores=True)
    oldest, score = entries[0]  # my position's cell, entered first
    await redis.zadd(window, {oldest: score - 3700 * 1000})
    trip = offset(start, 40)
    assert (await client.put(PASSPORT, {"lat": trip[0], "lng": trip[1]}, token=me.token)).status == 200  # full now
    assert (await put_location(client, me, offset(here, 0.05, 0.05))).status == 200
    assert_error(await put_location(client, me, offset(here, 5)), 429, "rate_limited")
