"""The fixture chain: settings → database → redis → SMS stub → server → client → logged-in user.

Tests talk to a real MariaDB and Redis. Each run creates its own database (dropped at the end) and uses its own
Redis key prefix (every key under it deleted after each test), so runs never see each other's data.

The app's Redis client runs with the slot guard on (``SWIPER_REDIS_SLOT_GUARD``): a call whose keys would span two
Redis Cluster slots fails on the standalone Redis too. With ``SWIPER_TEST_REDIS_CLUSTER=1`` the run starts its own
local 3-master Redis Cluster (tests/support/redis_cluster.py) and everything uses it (``scripts/test.sh`` runs
the Redis-dependent tests that way after the whole suite).
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import secrets
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conf import Settings, load_settings, parse_mysql_url  # noqa: E402
from handlers.base import InFlight  # noqa: E402
from models import db, init_db  # noqa: E402
from models.migrations import migrate  # noqa: E402
from server import MAX_UPLOAD_BODY, make_app, start_listeners  # noqa: E402
from models import Preferences, User  # noqa: E402
from models.base import utcnow  # noqa: E402
from services import keys, tokens  # noqa: E402
from services.accounts import find_or_register, forget_account  # noqa: E402
from services.vip import grant_membership  # noqa: E402
from services.redis_client import build_redis  # noqa: E402
from services.sms import build_sms_sender  # noqa: E402
from tests.stubs.aliyun_sms import AliyunSmsStub  # noqa: E402
from tests.support.client import Client  # noqa: E402
from tests.support.dates import SERVER_TIMEZONE, birthday_for_age  # noqa: E402
from tests.support.slow_callbacks import SuiteStepTimer  # noqa: E402

warnings.filterwarnings("ignore", module="aiomysql")

TEST_MYSQL = os.environ.get("SWIPER_TEST_MYSQL_URL", "mysql://swiper:swiper@127.0.0.1:3306/swiper_test")
TEST_REDIS = os.environ.get("SWIPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REDIS_CLUSTER = os.environ.get("SWIPER_TEST_REDIS_CLUSTER", "") in ("1", "true")
RUN_ID = secrets.token_hex(4)
ACCESS_KEY_ID, ACCESS_KEY_SECRET = "LTAI-test-key", "test-secret-" + RUN_ID
JWT_SECRET = "test-jwt-secret-that-is-long-enough-" + RUN_ID
_phones = itertools.count(int(secrets.token_hex(3), 16) % 10**6 * 100)


def pytest_collection_modifyitems(config, items):
    if REDIS_CLUSTER:
        skip = pytest.mark.skip(reason="needs a standalone Redis (SWIPER_TEST_REDIS_CLUSTER=1)")
        for item in items:
            if "standalone_redis" in item.keywords:
                item.add_marker(skip)


def new_phone() -> str:
    """A phone no other test in this run uses."""
    return f"139{next(_phones) % 10**8:08d}"


def admin_connect() -> pymysql.Connection:
    url = parse_mysql_url(TEST_MYSQL)
    return pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password,
                           charset="utf8mb4", autocommit=True)


@pytest.fixture(scope="session", autouse=True)
async def _asyncio_debug():
    """Every loop step of the suite is timed; a step of the app's using over 50 ms of CPU fails the run.

    asyncio's debug mode stays off: it records a stack trace for every future and handle it creates, which made
    ordinary request steps cost 5-10 times their real CPU and the 50 ms bound meaningless (and flaky)."""
    timer = SuiteStepTimer()
    timer.install()
    yield timer
    timer.uninstall()
    assert not timer.app, "slow callbacks in the app:\n" + "\n".join(timer.app)


@pytest.fixture(autouse=True)
def _name_the_test_for_the_step_timer(_asyncio_debug, request):
    _asyncio_debug.current_test = request.node.nodeid
    yield
    _asyncio_debug.current_test = ""


@contextlib.contextmanager
def scratch_database(suffix: str) -> Iterator[str]:
    """A database of its own (``<test db>_<suffix>``) for as long as the block runs; its URL."""
    name = f"{parse_mysql_url(TEST_MYSQL).database}_{suffix}"
    with admin_connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield TEST_MYSQL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin_connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def database_url() -> str:
    with scratch_database(RUN_ID) as url:
        yield url


@pytest.fixture(scope="session")
async def sms_stub() -> AliyunSmsStub:
    stub = AliyunSmsStub(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The standalone test Redis, or (SWIPER_TEST_REDIS_CLUSTER=1) a startup node of this run's own cluster."""
    if not REDIS_CLUSTER:
        yield TEST_REDIS
        return
    from tests.support.redis_cluster import local_cluster
    with local_cluster() as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, sms_stub: AliyunSmsStub,
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(
        {}, env="test", mysql_url=database_url, redis_url=redis_url, redis_cluster=REDIS_CLUSTER,
        redis_slot_guard=True, redis_prefix=f"swiper_test_{RUN_ID}:",
        jwt_secret=JWT_SECRET, sms_backend="aliyun", aliyun_access_key_id=ACCESS_KEY_ID,
        aliyun_access_key_secret=ACCESS_KEY_SECRET, aliyun_sms_endpoint=sms_stub.endpoint,
        aliyun_sms_protocol="http", sms_timeout=1.0, mysql_connect_timeout=1.0, redis_timeout=1.0,
        media_dir=str(tmp_path_factory.mktemp("media")),  # local avatar storage, never the repository's var/
        timezone=SERVER_TIMEZONE,  # the zone every date in the tests is built in (tests/support/dates.py)
        rate_limit_enabled=False,  # tests/handlers/test_ratelimit.py runs its own app with the limits on
        message_rate_limit=10_000)  # the chat tests send hundreds; tests/handlers/test_chat.py tests the limit


def server_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The ``SWIPER_*`` environment that makes a ``server.py`` process use this run's settings."""
    env = {f"SWIPER_{name.upper()}": str(getattr(settings, name)) for name in (
        "env", "mysql_url", "redis_url", "redis_prefix", "jwt_secret", "sms_backend", "aliyun_access_key_id",
        "aliyun_access_key_secret", "aliyun_sms_endpoint", "aliyun_sms_protocol", "sms_timeout",
        "mysql_connect_timeout", "redis_timeout", "rate_limit_enabled", "media_dir", "timezone", "message_rate_limit",
        "redis_cluster", "redis_slot_guard")}
    env.update({f"SWIPER_{k.upper()}": v for k, v in overrides.items()})
    return env


@pytest.fixture(scope="session")
async def schema(settings: Settings) -> None:
    keys.configure(settings.redis_prefix)
    init_db(settings)
    await migrate()
    yield
    await db.aio_close()


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> Redis:
    """The tests' own client (no slot guard: tests may read several users' keys at once)."""
    client = (RedisCluster.from_url(settings.redis_url, decode_responses=True) if settings.redis_cluster
              else Redis.from_url(settings.redis_url, decode_responses=True))
    yield client
    await _delete_prefixed(client, settings.redis_prefix)
    await client.aclose()


async def _delete_prefixed(client: Redis, prefix: str) -> None:
    batch = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
    by_slot: dict[int, list[str]] = {}
    for key in batch:  # one DEL per slot: a cluster refuses keys of two slots in one command
        by_slot.setdefault(key_slot(key.encode()), []).append(key)
    if by_slot:
        async with client.pipeline(transaction=False) as pipe:
            for slot_keys in by_slot.values():
                pipe.delete(*slot_keys)
            await pipe.execute()


@pytest.fixture(autouse=True)
async def _clean_redis(request: pytest.FixtureRequest):
    yield
    if "redis" in request.fixturenames or "app_url" in request.fixturenames:
        client = request.getfixturevalue("redis")
        settings = request.getfixturevalue("settings")
        await _delete_prefixed(client, settings.redis_prefix)
    if "app_url" in request.fixturenames:  # what the app's process remembers goes with what Redis held
        request.getfixturevalue("app").settings["local_caches"].clear()


@pytest.fixture(scope="session")
async def app(settings: Settings, schema: None, redis: Redis) -> web.Application:
    """The in-process application, local caches and event hub on (as in production) once subscribed."""
    sms = build_sms_sender(settings)
    app_redis = build_redis(settings)
    app = make_app(settings, redis=app_redis, sms=sms, in_flight=InFlight())
    caches, hub = start_listeners(app)
    await asyncio.wait_for(caches.live.wait(), 10)
    await asyncio.wait_for(hub.live.wait(), 10)
    yield app
    await hub.stop()
    await caches.stop()
    await app_redis.aclose()
    await sms.aclose()


@pytest.fixture(scope="session")
async def app_url(app: web.Application) -> str:
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app, max_body_size=MAX_UPLOAD_BODY)
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()
    await server.close_all_connections()


@pytest.fixture
def client(app_url: str) -> Client:
    return Client(app_url)


@dataclass
class Session:
    phone: str
    user_id: int
    access_token: str
    refresh_token: str
    body: dict


async def login(client: Client, sms_stub: AliyunSmsStub, phone: str | None = None,
                ip: str | None = None, redis: Redis | None = None) -> Session:
    """Request a code, read it from the SMS stub, and log in (with ``redis``, skipping the send cooldown)."""
    phone = phone or new_phone()
    if redis is not None:
        await redis.delete(keys.sms_cooldown(phone))
    headers = {"X-Real-IP": ip or f"10.{secrets.randbelow(255)}.{secrets.randbelow(255)}.1"}
    sent = await client.post("/api/v1/sms-codes", {"phone": phone}, headers=headers)
    assert sent.status == 200, sent.body
    code = sms_stub.last_code(phone)
    resp = await client.post("/api/v1/sessions", {"phone": phone, "code": code}, headers=headers)
    assert resp.status == 200, resp.body
    data = resp.data
    return Session(phone, data["user"]["id"], data["access_token"], data["refresh_token"], data)


@pytest.fixture
async def user(client: Client, sms_stub: AliyunSmsStub) -> Session:
    return await login(client, sms_stub)


@dataclass
class Person:
    id: int
    phone: str
    token: str
    city: str


@pytest.fixture
def make_person(schema, settings, redis, app_url):
    """Create a user with a full profile, straight through the services, and a session token for HTTP."""
    async def make(*, gender: str | None = "female", age: int | None = 25, city: str | None = "北京",
                   dating_gender: str | None = "male", min_age: int = 18, max_age: int = 45, level: int = 0,
                   pref_city: str | None = None, active_minutes_ago: float = 0) -> Person:
        phone = new_phone()
        user_id, _ = await find_or_register(phone=phone)
        await User.update(gender=gender, birthday=birthday_for_age(age) if age else None, location=city,
                          last_active_at=utcnow() - dt.timedelta(minutes=active_minutes_ago)
                          ).where(User.id == user_id).aio_execute()
        await Preferences.update(dating_gender=dating_gender, min_dating_age=min_age, max_dating_age=max_age,
                                 location=pref_city).where(Preferences.user == user_id).aio_execute()
        if level:
            await grant_membership(redis=redis, phone=phone, level=level,
                                   until=utcnow() + dt.timedelta(days=30))
        await forget_account(redis=redis, user_id=user_id)
        pair = await tokens.start_session(redis=redis, settings=settings, user_id=user_id)
        return Person(user_id, phone, pair.access_token, city or "")
    return make


def unique_city() -> str:
    """A city no other test uses, so a feed sees only the people its test made."""
    return "城" + secrets.token_hex(4)
