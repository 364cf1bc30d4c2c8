"""One load-client process of the chat benchmark: ``python -m bench.chat_load --plan FILE --worker N``.

``bench.chat`` starts several of these and steers them through files in the plan's ``state`` directory:

1. **connect**: open every socket of this worker's pairs (each user ``devices`` sockets; user u's device d on
   port ``ports[(u + d) % len(ports)]``, so both users of a pair and both devices of a user sit on different
   processes), ``connect_parallel`` handshakes at a time; then write ``worker-N.held.json`` (held, refused by
   reason).
2. on ``go-send``: ``senders`` concurrent senders, each with its own keep-alive HTTP connection per port, post
   messages for ``warmup`` + ``duration`` seconds (only those sent after the warm-up make the rate and the
   latencies; all count for exactly-once) (closed loop: the next after the answer), each from one device of one user
   of its pairs (alternating sides and devices) to the port of that device; ``t0`` is taken before the request.
   Every socket reads all the while and notes, per ``client_id``, which socket got the ``message`` frame and
   when (``time.monotonic()``, the same clock in every process on the machine).
3. after the last answer, up to ``drain`` seconds for the deliveries still owed; then ``worker-N.sent.json``:
   the counts (acknowledged, failed, exactly-once; each conversation's seqs 1..n, or in a later ``round`` a run
   without gaps), and the latency samples.
4. on ``go-close``: close every socket, wait for the closes, write ``worker-N.closed.json``, exit 0.

Each pair belongs to one worker, so a worker checks exactly-once for its pairs alone: every acknowledged message
must reach every socket of both its users (the recipient's devices, the sender's other devices, and the sending
device's own socket: the server cannot know which socket the REST call came from) once, and nothing else may
arrive.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect


@dataclass
class Sock:
    index: int
    user: int
    device: int
    port_index: int
    conn: WebSocketClientConnection | None = None
    received: int = 0
    closed_early: bool = False


@dataclass
class Sent:
    t0: float
    port_index: int
    sender: int
    other: int
    acked: bool = False
    seq: int | None = None
    answer_ms: float | None = None
    match_key: tuple[int, int] = (0, 0)
    deliveries: list[tuple[int, float]] = field(default_factory=list)  # (socket index, monotonic time)


class KeepAlive:
    """One HTTP/1.1 keep-alive connection: POST a JSON body, read a Content-Length answer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n{headers}\r\n").encode()
        try:
            self.writer.write(head + body)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("closed")
            status = int(status_line.split()[1])
            length, close = None, False
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            if length is None:
                raise ConnectionError("no Content-Length")
            data = await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Worker:
    def __init__(self, plan: dict[str, Any], n: int) -> None:
        self.plan, self.n = plan, n
        self.state = Path(plan["state"])
        self.host = plan["host"]
        self.ports: list[int] = plan["ports"]
        self.swiper = plan["target"] == "swiper"
        self.pairs: list[list] = plan["pairs"][n]  # [a_id, a_token, b_id, b_token, global pair index]
        self.tokens = {int(p[0]): p[1] for p in self.pairs} | {int(p[2]): p[3] for p in self.pairs}
        self.socks: list[Sock] = []
        self.by_user: dict[int, list[Sock]] = defaultdict(list)
        for a, _, b, _, k in self.pairs:
            for u_local, user in ((0, int(a)), (1, int(b))):
                for d in range(plan["devices"]):
                    sock = Sock(len(self.socks), user, d, (2 * k + u_local + d) % len(self.ports))
                    self.socks.append(sock)
                    self.by_user[user].append(sock)
        self.sent: dict[str, Sent] = {}
        self.stray: Counter[str] = Counter()  # frames for a client_id this worker never sent
        self.frames_other: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.send_errors: Counter[str] = Counter()
        self.owed = 0  # deliveries of acknowledged messages not yet seen

    def write_state(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.state / f".worker-{self.n}.{name}.json"
        tmp.write_bytes(orjson.dumps(data))
        tmp.rename(self.state / f"worker-{self.n}.{name}.json")

    async def wait_for(self, name: str) -> None:
        while not (self.state / name).exists():
            await asyncio.sleep(0.05)

    # --- sockets ---------------------------------------------------------------------------------------------
    def socket_url(self, sock: Sock) -> HTTPRequest:
        port = self.ports[sock.port_index]
        timeout = self.plan["connect_timeout"]
        if self.swiper:
            return HTTPRequest(f"ws://{self.host}:{port}/api/v1/events", connect_timeout=timeout,
                               request_timeout=timeout, headers={"Authorization": f"Bearer {self.tokens[sock.user]}"})
        return HTTPRequest(f"ws://{self.host}:{port}/ws?user={sock.user}", connect_timeout=timeout,
                           request_timeout=timeout)

    async def connect(self, sock: Sock, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                sock.conn = await websocket_connect(self.socket_url(sock), max_message_size=1 << 20)
            except HTTPClientError as exc:
                self.refused[f"HTTP {exc.code}"] += 1
                return
            except (OSError, asyncio.TimeoutError) as exc:
                self.refused[type(exc).__name__ + (f" {exc.errno}" if getattr(exc, "errno", None) else "")] += 1
                return
            except Exception as exc:  # a handshake that failed some other way is a refusal too
                self.refused[type(exc).__name__] += 1
                return
        asyncio.ensure_future(self.read(sock))

    async def read(self, sock: Sock) -> None:
        conn = sock.conn
        while True:
            raw = await conn.read_message()
            if raw is None:
                if not self.closing:
                    sock.closed_early = True
                return
            now = time.monotonic()
            frame = orjson.loads(raw)
            if frame.get("type") != "message":
                self.frames_other[str(frame.get("type"))] += 1
                continue
            sock.received += 1
            client_id = frame["message"]["client_id"]
            sent = self.sent.get(client_id)
            if sent is None:
                self.stray[client_id] += 1
                continue
            sent.deliveries.append((sock.index, now))
            if sent.acked:
                self.owed -= 1

    # --- sending ---------------------------------------------------------------------------------------------
    async def sender(self, i: int, pairs: list[list], deadline: float) -> None:
        conns = [KeepAlive(self.host, p) for p in self.ports]
        devices = self.plan["devices"]
        step = 0
        try:
            while time.monotonic() < deadline:
                a, _, b, _, k = pairs[step % len(pairs)]
                turn = step // len(pairs)
                sender, other, u_local = (int(a), int(b), 0) if turn % 2 == 0 else (int(b), int(a), 1)
                device = (turn // 2) % devices
                port_index = (2 * k + u_local + device) % len(self.ports)
                step += 1
                client_id = f"r{self.plan.get('round', 1)}w{self.n}s{i}n{step}"
                text = f"bench {client_id}"
                if self.swiper:
                    path = f"/api/v1/matches/{other}/messages"
                    body = orjson.dumps({"text": text, "client_id": client_id})
                    headers = f"Authorization: Bearer {self.tokens[sender]}\r\n"
                else:
                    path, headers = "/send", ""
                    body = orjson.dumps({"from": sender, "to": other, "text": text, "client_id": client_id})
                sent = Sent(time.monotonic(), port_index, sender, other,
                            match_key=(min(sender, other), max(sender, other)))
                self.sent[client_id] = sent
                try:
                    status, data = await asyncio.wait_for(conns[port_index].post(path, body, headers),
                                                          self.plan["request_timeout"])
                except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                    self.send_errors[type(exc).__name__] += 1
                    conns[port_index].close()
                    continue
                sent.answer_ms = 1000 * (time.monotonic() - sent.t0)
                if status != 200:
                    self.send_errors[f"HTTP {status}"] += 1
                    continue
                answer = orjson.loads(data)
                if answer.get("code") != 0 or answer["data"].get("client_id") != client_id:
                    self.send_errors["bad body"] += 1
                    continue
                sent.acked, sent.seq = True, answer["data"]["seq"]
                self.owed += self.held[sender] + self.held[other] - len(sent.deliveries)
        finally:
            for conn in conns:
                conn.close()

    async def send_phase(self) -> dict[str, Any]:
        plan = self.plan
        senders = max(1, min(plan["senders"], len(self.pairs)))
        measure_from = time.monotonic() + plan.get("warmup", 0)
        deadline = measure_from + plan["duration"]
        await asyncio.gather(*[self.sender(i, self.pairs[i::senders], deadline) for i in range(senders)])
        sending = time.monotonic() - measure_from
        drain_until = time.monotonic() + plan["drain"]
        while self.owed > 0 and time.monotonic() < drain_until:
            await asyncio.sleep(0.05)
        return self.check(sending, measure_from)

    def check(self, seconds: float, measure_from: float = 0.0) -> dict[str, Any]:
        """Exactly-once over this worker's pairs (every message, the warm-up's too); the rate and the latencies of
        the messages sent from ``measure_from`` on; the seqs."""
        held = {s.index for s in self.socks if s.conn is not None}
        expected = once = missing = duplicated = unexpected = unacked_delivered = 0
        cross, same, answers = [], [], []
        measured = 0
        seqs: dict[tuple[int, int], list[int]] = defaultdict(list)
        last_delivery = 0.0
        for sent in self.sent.values():
            got = Counter(index for index, _ in sent.deliveries)
            if sent.deliveries:
                last_delivery = max(last_delivery, max(t for _, t in sent.deliveries))
            if not sent.acked:
                unacked_delivered += len(sent.deliveries)
                continue
            seqs[sent.match_key].append(sent.seq)
            targets = {s.index for s in self.by_user[sent.sender] + self.by_user[sent.other]} & held
            expected += len(targets)
            for index in targets:
                n = got.get(index, 0)
                once += n == 1
                missing += n == 0
                duplicated += max(0, n - 1)
            unexpected += sum(n for index, n in got.items() if index not in targets)
            if sent.t0 < measure_from:
                continue
            measured += 1
            if sent.answer_ms is not None:
                answers.append(sent.answer_ms)
            for index, t in sent.deliveries:
                if index in targets:
                    (same if self.socks[index].port_index == sent.port_index else cross).append(
                        1000 * (t - sent.t0))
        fresh = self.plan.get("fresh", True)  # the fixtures reset the conversations: seqs start at 1

        def gap(values: list[int]) -> bool:
            first = 1 if fresh else values[0]
            return values != list(range(first, first + len(values)))

        seq_gaps = sum(gap(sorted(values)) for values in seqs.values())
        acked = sum(1 for s in self.sent.values() if s.acked)
        return {"seconds": seconds, "acked": acked, "measured": measured, "attempted": len(self.sent),
                "send_errors": dict(self.send_errors),
                "expected": expected, "once": once, "missing": missing, "duplicated": duplicated,
                "unexpected": unexpected, "stray": sum(self.stray.values()), "unacked_delivered": unacked_delivered,
                "seq_gaps": seq_gaps, "conversations": len(seqs), "answer_ms": answers, "cross_ms": cross,
                "same_ms": same, "closed_early": sum(s.closed_early for s in self.socks),
                "frames_other": dict(self.frames_other), "last_delivery": last_delivery}

    # --- the phases ------------------------------------------------------------------------------------------
    async def main(self) -> None:
        self.closing = False
        gate = asyncio.Semaphore(self.plan["connect_parallel"])
        start = time.monotonic()
        await asyncio.gather(*[self.connect(s, gate) for s in self.socks])
        held_per_port = Counter(self.ports[s.port_index] for s in self.socks if s.conn is not None)
        self.held = Counter(s.user for s in self.socks if s.conn is not None)
        self.write_state("held", {"asked": len(self.socks), "held": sum(held_per_port.values()),
                                  "held_per_port": {str(p): n for p, n in held_per_port.items()},
                                  "refused": dict(self.refused), "seconds": time.monotonic() - start})
        await self.wait_for("go-send")
        self.write_state("sent", await self.send_phase())
        await self.wait_for("go-close")
        self.closing = True
        open_now = [s for s in self.socks if s.conn is not None and s.conn.protocol is not None]
        for sock in open_now:
            sock.conn.close(1000)
        deadline = time.monotonic() + 10
        while any(s.conn.protocol is not None for s in open_now) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.write_state("closed", {"closed": len(open_now),
                                    "still_open": sum(s.conn.protocol is not None for s in open_now)})


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--worker", type=int, required=True)
    args = parser.parse_args(argv)
    plan = json.loads(Path(args.plan).read_text())
    raise_fd_limit()
    worker = Worker(plan, args.worker)
    if os.environ.get("SWIPER_EVENT_LOOP", "uvloop") == "uvloop":
        import uvloop
        uvloop.run(worker.main())
    else:
        asyncio.run(worker.main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
