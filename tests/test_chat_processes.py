"""Chat across real ``server.py`` processes: two people on two processes, 200 concurrent sends, a dead Redis or
MySQL, and a stopping process that closes its sockets with 1012 so clients resume elsewhere."""
from __future__ import annotations

import asyncio
import signal

import pytest

from conf import parse_mysql_url
from models import Message
from tests.conftest import server_env
from tests.handlers.test_chat import matched, send
from tests.support.client import Client, assert_error
from tests.support.events import EventSocket
from tests.support.processes import ServerProcess
from tests.support.proxy import TcpProxy


@pytest.fixture
async def two_processes(settings, schema):
    first, second = ServerProcess(server_env(settings)), ServerProcess(server_env(settings))
    await asyncio.gather(first.start(), second.start())
    yield first, second
    assert [first.stop(), second.stop()] == [0, 0]


async def test_two_people_on_two_processes_talk_both_ways(two_processes, client, make_person):
    first, second = two_processes
    one, two = Client(first.base_url), Client(second.base_url)
    a, b = await matched(client, make_person)
    socket_a = await EventSocket.open(first.base_url, token=a.token)   # a's phone is on the first process
    socket_b = await EventSocket.open(second.base_url, token=b.token)  # b's on the second
    tablet_a = await EventSocket.open(second.base_url, token=a.token)  # and a's tablet on the second too
    sent_by_a = (await send(one, a, b, "hello from one")).data
    sent_by_b = (await send(two, b, a, "hello from two")).data
    assert (await socket_b.next_of("message"))["message"] == sent_by_a
    assert (await socket_a.next_of("message"))["message"] == sent_by_a  # my own, on my phone
    assert (await socket_a.next_of("message"))["message"] == sent_by_b
    tablet = await tablet_a.collect(2)
    assert [f["message"]["id"] for f in tablet] == [sent_by_a["id"], sent_by_b["id"]]
    assert tablet[1]["event_id"] == socket_a.frames[-1]["event_id"]
    await one.put(f"/api/v1/matches/{b.id}/read", {"seq": 2}, token=a.token)
    assert (await socket_b.next_of("read"))["seq"] == 2
    await socket_a.send({"type": "typing", "user_id": b.id})
    assert (await socket_b.next_of("typing"))["user_id"] == a.id
    for socket in (socket_a, socket_b, tablet_a):
        socket.close()


async def test_two_hundred_concurrent_sends_over_two_processes_get_seq_1_to_200(two_processes, client,
                                                                                 make_person):
    first, second = two_processes
    one, two = Client(first.base_url), Client(second.base_url)
    a, b = await matched(client, make_person)

    async def send_until_stored(n: int):
        """As a client does: a 503 (a process shedding the burst on a loaded machine) is sent again with the
        same client_id, which must not store it twice."""
        client_id = f"burst-{n}"
        for _ in range(10):
            answer = await send(one if n % 2 else two, a if n % 3 else b, b if n % 3 else a, f"n{n}", client_id)
            if answer.status != 503:
                return answer
            await asyncio.sleep(0.5)
        return answer

    answers = await asyncio.gather(*[send_until_stored(n) for n in range(200)])
    assert {r.status for r in answers} == {200}, [r.body for r in answers if r.status != 200][:3]
    assert sorted(r.data["seq"] for r in answers) == list(range(1, 201))
    history, query = [], "?after=0&limit=50"
    while query:
        page = (await one.get(f"/api/v1/matches/{b.id}/messages{query}", token=a.token)).data
        history += page["items"]
        query = f"?cursor={page['next_cursor']}&limit=50" if page["next_cursor"] else ""
    assert [m["seq"] for m in history] == list(range(1, 201))  # oldest first, every one, once


@pytest.fixture
async def redis_behind_a_proxy(settings, schema):
    """One server whose Redis goes through a proxy the test can cut, and a second with a direct Redis."""
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    redis_db = settings.redis_url.rsplit("/", 1)[1]
    cut_off = ServerProcess(server_env(settings, redis_url=f"redis://127.0.0.1:{proxy.port}/{redis_db}"))
    await cut_off.start()
    yield cut_off, proxy
    assert cut_off.stop() == 0
    await proxy.cut()


@pytest.mark.standalone_redis
async def test_without_redis_sends_still_commit_and_missed_events_end_in_a_resync(redis_behind_a_proxy, client,
                                                                                    make_person, app_url):
    cut_off, proxy = redis_behind_a_proxy
    a, b = await matched(client, make_person)
    watcher = await EventSocket.open(app_url, token=b.token)  # b's socket is on the in-process app (Redis fine)
    await send(client, a, b, "before")
    last_seen = (await watcher.next_of("message"))["event_id"]
    watcher.close()
    lonely = Client(cut_off.base_url)
    assert (await lonely.get("/api/v1/profile", token=a.token)).status == 200  # a warm process
    await proxy.cut()
    during = await send(lonely, a, b, "while Redis is down")
    assert during.status == 200 and during.data["seq"] == 2  # MySQL is the truth: committed and answered
    assert await Message.select().where(Message.sender_id == a.id).aio_count() == 2
    await proxy.restore()
    for _ in range(100):  # the process owes b a resync; it publishes it once Redis answers
        if (await lonely.get("/metrics")).body.decode().count("swiper_events_resyncs_owed 0.0"):
            break
        await asyncio.sleep(0.1)
    resumed = await EventSocket.open(app_url, token=b.token, after=last_seen)
    assert (await resumed.next())["type"] == "resync"  # the lost event is not silently skipped
    history = (await client.get(f"/api/v1/matches/{a.id}/messages", token=b.token)).data["items"]
    assert [m["text"] for m in history] == ["while Redis is down", "before"]
    resumed.close()


async def test_a_dead_mysql_refuses_sends_and_stores_nothing(settings, schema, client, make_person):
    mysql = parse_mysql_url(settings.mysql_url)
    proxy = TcpProxy(mysql.host, mysql.port)
    await proxy.start()
    server = ServerProcess(server_env(settings, mysql_url=(f"mysql://{mysql.user}:{mysql.password}@127.0.0.1:"
                                                           f"{proxy.port}/{mysql.database}")))
    await server.start()
    try:
        a, b = await matched(client, make_person)
        lonely = Client(server.base_url)
        assert (await send(lonely, a, b, "fine")).status == 200
        await proxy.cut()
        refused = await send(lonely, a, b, "lost?")
        assert assert_error(refused, 503, "unavailable")["data"] == {"dependency": "mysql"}
        await proxy.restore()
        texts = [m.text for m in await Message.select().where(Message.sender_id == a.id).aio_execute()]
        assert texts == ["fine"]
    finally:
        assert server.stop() == 0
        await proxy.cut()


async def test_a_stopping_process_closes_its_sockets_with_1012_and_they_resume_elsewhere(settings, schema, client,
                                                                                         make_person, app_url):
    stopping = ServerProcess(server_env(settings))
    await stopping.start()
    a, b = await matched(client, make_person)
    socket = await EventSocket.open(stopping.base_url, token=b.token)
    await send(client, a, b, "one")
    last = (await socket.next_of("message"))["event_id"]
    stopping.proc.send_signal(signal.SIGTERM)
    assert await socket.wait_closed() == 1012
    # its own exit (a second SIGTERM from stop() could land after asyncio.run removed the handlers: killed, -15)
    assert await asyncio.get_running_loop().run_in_executor(None, stopping.proc.wait, 20) == 0
    assert stopping.stop() == 0
    await send(client, a, b, "two")  # while b is reconnecting
    elsewhere = await EventSocket.open(app_url, token=b.token, after=last)
    assert (await elsewhere.next_of("message"))["message"]["text"] == "two"
    elsewhere.close()
