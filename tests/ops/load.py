"""A bounded load with a record of every request: a raw HTTP/1.1 keep-alive client on asyncio streams.

No retries and no hidden reconnects: a request that fails on a reused connection is a failure, as it would be for
a mobile client that does not retry. Each worker keeps one connection to nginx and reuses it until the server
says ``Connection: close`` or something breaks; the next request then opens a new one.
"""
from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Record:
    op: str
    method: str
    started: float          # seconds since the load began
    elapsed: float          # seconds
    status: int | None      # None: no answer (connection error or timeout)
    error: str | None = None
    reused: bool = False    # sent on a kept-alive connection
    key: Any = None         # what a write wrote (for the database check)
    body: bytes = b""
    rid: str = ""           # the X-Request-ID sent: nginx's access log and the process's log name it

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500


@dataclass
class Request:
    op: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    key: Any = None


class Connection:
    def __init__(self, host: str, port: int, local_addr: str | None = None) -> None:
        self.host, self.port, self.local_addr = host, port, local_addr
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0

    async def _open(self) -> None:
        kwargs = {"local_addr": (self.local_addr, 0)} if self.local_addr else {}
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, **kwargs)
        self.used = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None

    async def send(self, req: Request) -> tuple[int, dict[str, str], bytes, bool]:
        """Returns (status, headers, body, reused). Raises on any connection problem (the caller records it)."""
        if self.writer is None or self.reader is None or self.reader.at_eof():
            self.close()
            await self._open()
        reused = self.used > 0
        head = [f"{req.method} {req.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in req.headers.items()]
        if req.body or req.method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(req.body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + req.body)
        await self.writer.drain()
        status, headers, body = await self._read_response(req.method)
        self.used += 1
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body, reused

    async def _read_response(self, method: str) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("connection closed before a response")
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectionError(f"bad status line {line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("connection closed inside the headers")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await self.reader.readline()
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            return status, headers, b"".join(chunks)
        length = int(headers.get("content-length", "0"))
        return status, headers, await self.reader.readexactly(length)


async def run_load(host: str, port: int, next_request: Callable[[random.Random], Request | None], *,
                   duration: float, connections: int = 16, rate: float = 300.0, timeout: float = 10.0,
                   seed: int = 1, stop: asyncio.Event | None = None) -> list[Record]:
    """``connections`` workers, ``rate`` requests/s in all, for ``duration`` seconds at most (or until ``stop``
    is set); every request recorded. A request without an answer within ``timeout`` seconds is recorded with
    ``status=None`` (a failure); keep ``timeout`` well above the server's drain timeout so a hung request shows
    as one instead of as a slow answer. Each request carries ``X-Request-ID: L<seed>-<worker>-<n>``."""
    records: list[Record] = []
    start = time.monotonic()
    deadline = start + duration
    interval = connections / rate

    async def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        conn = Connection(host, port)
        due = start + rng.random() * interval
        sent = 0
        try:
            while True:
                now = time.monotonic()
                if now >= deadline or (stop is not None and stop.is_set()):
                    return
                if due > now:
                    await asyncio.sleep(due - now)
                due = max(due + interval, time.monotonic() - interval)
                req = next_request(rng)
                if req is None:
                    return
                sent += 1
                rid = req.headers.setdefault("X-Request-ID", f"L{seed}-{index}-{sent}")
                t0 = time.monotonic()
                try:
                    status, _headers, body, reused = await asyncio.wait_for(conn.send(req), timeout)
                    records.append(Record(req.op, req.method, t0 - start, time.monotonic() - t0, status,
                                          reused=reused, key=req.key, body=body[:300], rid=rid))
                except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                        ValueError) as exc:
                    reused = conn.used > 0
                    conn.close()
                    kind = "timeout" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
                    records.append(Record(req.op, req.method, t0 - start, time.monotonic() - t0, None,
                                          error=f"{kind}: {exc}"[:200], reused=reused, key=req.key, rid=rid))
        finally:
            conn.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    records.sort(key=lambda r: r.started)
    return records


# ---- summaries -----------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(records: list[Record], slow: float | None = None) -> dict[str, Any]:
    """Counts by op and status, failures, latency percentiles (ms). ``slow`` (seconds): answers that took longer
    are counted as ``slower_than_bound`` (and are failures too)."""
    by_op: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in records:
        by_op[r.op][str(r.status) if r.status is not None else "error"] += 1
    failures = [r for r in records if r.failed or (slow is not None and r.elapsed > slow)]
    latencies = [r.elapsed * 1000 for r in records]
    return {
        "requests": len(records),
        "failed": len(failures),
        "no_answer": sum(1 for r in records if r.status is None),
        **({"slower_than_bound": sum(1 for r in records if r.elapsed > slow), "bound_s": slow}
           if slow is not None else {}),
        "by_op": {op: dict(counter) for op, counter in sorted(by_op.items())},
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies, default=0.0), 1),
        "failures": [describe(r) for r in failures[:20]],
    }


def describe(record: Record) -> str:
    what = record.error or f"{record.status} {record.body[:120].decode(errors='replace')}"
    return (f"t={record.started:.2f}s {record.rid} {record.method} {record.op} reused={record.reused} "
            f"{record.elapsed * 1000:.0f}ms: {what}")


def timeline(records: list[Record], step: float = 1.0) -> list[dict[str, Any]]:
    """Per ``step`` seconds: 2xx, 503, other failures, the slowest answer (ms)."""
    buckets: dict[int, dict[str, Any]] = {}
    for r in records:
        b = buckets.setdefault(int(r.started // step), {"ok": 0, "503": 0, "failed": 0, "other": 0, "max_ms": 0.0})
        if r.status is not None and 200 <= r.status < 300:
            b["ok"] += 1
        elif r.status == 503:
            b["503"] += 1
        elif r.failed:
            b["failed"] += 1
        else:
            b["other"] += 1
        b["max_ms"] = max(b["max_ms"], round(r.elapsed * 1000, 1))
    return [{"t": k * step, **v} for k, v in sorted(buckets.items())]


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str)
