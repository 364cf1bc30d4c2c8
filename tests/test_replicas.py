"""Read replicas against a real MariaDB GTID replica (tests/support/replication.py): lag-tolerant reads go to the
replica, a user's own reads stay on the primary for the window after their write (proved with replication held
back), a lagging or dead replica is skipped and reported, and no replica read can happen inside a transaction."""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import pytest

from models import db
from models.replicas import allow_replica_reads, reader, replicas
from tests.conftest import ROOT, login, server_env
from tests.support.client import Client
from tests.support.processes import ServerProcess
from tests.support.replication import replicated_pair, run, wait_caught_up

WINDOW = 1.5  # SWIPER_READ_YOUR_WRITES_WINDOW for the server under test


@pytest.fixture(scope="module")
def pair():
    with replicated_pair() as (primary, replica):
        env = {**os.environ, "SWIPER_MYSQL_URL": primary.url, "SWIPER_ENV": "test"}
        subprocess.run([sys.executable, "scripts/manage.py", "migrate"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=120)
        wait_caught_up(primary, replica)
        yield primary, replica


@pytest.fixture
async def server(pair, settings, redis):
    primary, replica = pair
    process = ServerProcess(server_env(settings, mysql_url=primary.url, mysql_replica_urls=replica.url,
                                       read_your_writes_window=str(WINDOW), replica_max_lag="60"))
    await process.start()
    yield process
    assert process.stop() == 0


async def metric(client: Client, name: str) -> dict[str, float]:
    await asyncio.sleep(1.05)  # /metrics renders at most once a second
    text = (await client.get("/metrics")).body.decode()
    return {labels: float(value) for labels, value in re.findall(rf"^{name}{{(.*?)}} (\S+)$", text, re.M)}


async def replica_state(client: Client) -> str:
    ready = await client.get("/readyz")
    return next(iter(ready.json["data"]["replicas"].values()))


async def until_state(client: Client, state: str) -> None:
    for _ in range(100):
        if await replica_state(client) == state:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"replica never reported {state!r}")


def match_ids(answer) -> list[int]:
    assert answer.status == 200, answer.body
    return [item["id"] for item in answer.data["items"]]


async def test_reads_go_to_the_replica_but_never_hide_my_own_writes(pair, server, sms_stub):
    primary, replica = pair
    client = Client(server.base_url)
    await until_state(client, "ok")
    a, c = await login(client, sms_stub), await login(client, sms_stub)
    assert (await client.post("/api/v1/swipes", {"user_id": a.user_id, "action": "like"}, token=c.access_token)
            ).status == 200
    wait_caught_up(primary, replica)
    await asyncio.sleep(WINDOW)  # nobody has written within the window any more
    before = await metric(client, "swiper_mysql_lag_tolerant_reads_total")
    assert match_ids(await client.get("/api/v1/matches", token=c.access_token)) == []
    after = await metric(client, "swiper_mysql_lag_tolerant_reads_total")
    assert after['target="replica"'] > before.get('target="replica"', 0)  # that list came from the replica

    # Replication held back: the replica answers (its lag is within the limit) but has not applied new writes.
    run(replica, "STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY=600", "START SLAVE")
    try:
        liked = await client.post("/api/v1/swipes", {"user_id": c.user_id, "action": "like"}, token=a.access_token)
        assert liked.status == 200 and liked.data["matched"] is True
        assert match_ids(await client.get("/api/v1/matches", token=a.access_token)) == [c.user_id]  # my write
        assert match_ids(await client.get("/api/v1/matches", token=c.access_token)) == []  # c: the stale replica
        await asyncio.sleep(WINDOW + 0.2)  # past a's window a's reads go to the replica too: the window held it
        assert match_ids(await client.get("/api/v1/matches", token=a.access_token)) == []
        assert await replica_state(client) == "ok"

        # The SQL thread stopped: no lag figure, so the replica is skipped and every read sees the primary.
        run(replica, "STOP SLAVE SQL_THREAD")
        await until_state(client, "lagging")
        assert match_ids(await client.get("/api/v1/matches", token=c.access_token)) == [a.user_id]
        up = await metric(client, "swiper_mysql_replica_up")
        assert list(up.values()) == [0.0] and 'state="lagging"' in next(iter(up))
    finally:
        run(replica, "STOP SLAVE", "CHANGE MASTER TO MASTER_DELAY=0", "START SLAVE")
    wait_caught_up(primary, replica)
    await until_state(client, "ok")
    assert match_ids(await client.get("/api/v1/matches", token=c.access_token)) == [a.user_id]


async def test_a_dead_replica_is_skipped_and_reported(pair, server, sms_stub):
    primary, replica = pair
    client = Client(server.base_url)
    await until_state(client, "ok")
    me = await login(client, sms_stub)
    replica.stop()
    try:
        await until_state(client, "down")
        ready = await client.get("/readyz")
        assert ready.status == 200  # readiness is the primary's and Redis's: reads fall back
        assert (await client.get("/api/v1/matches", token=me.access_token)).status == 200
        lag = await metric(client, "swiper_mysql_replica_lag_seconds")
        assert list(lag.values()) == [-1.0]
    finally:
        replica.start()
    await until_state(client, "ok")


async def test_no_replica_read_inside_a_transaction(schema, settings, pair):
    """peewee-async shares one connection context between databases: inside a transaction, only the primary."""
    _, replica = pair
    saved = replicas.replicas
    replicas.configure(settings.replace(mysql_replica_urls=replica.url))
    try:
        await replicas.check()
        assert replicas.states() == {f"127.0.0.1:{replica.port}": "ok"}
        allow_replica_reads(True)
        assert reader() is replicas.replicas[0].database
        async with db.aio_atomic():
            assert reader() is db
        async with db.aio_connection():
            assert reader() is db
        assert reader() is replicas.replicas[0].database
        allow_replica_reads(False)
        assert reader() is db  # not allowed for this task (a recent writer, a job, a socket)
    finally:
        allow_replica_reads(False)
        await replicas.close()
        replicas.replicas = saved


def test_replica_settings():
    from conf import SettingsError, load_settings
    settings = load_settings({"SWIPER_MYSQL_REPLICA_URLS": "mysql://u:p@10.0.0.2:3306/swiper, mysql://u:p@10.0.0.3/swiper"})
    assert [(r.host, r.port) for r in settings.replicas] == [("10.0.0.2", 3306), ("10.0.0.3", 3306)]
    assert (settings.read_your_writes_window, settings.replica_max_lag) == (5.0, 5.0)
    with pytest.raises(SettingsError, match="SWIPER_MYSQL_REPLICA_URLS"):
        load_settings({"SWIPER_MYSQL_REPLICA_URLS": "postgres://10.0.0.2/swiper"})
