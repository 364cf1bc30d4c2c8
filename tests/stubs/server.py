"""What every provider stub shares: an HTTP server of its own on a free loopback port, and a stop that wakes its
held ("slow") handlers so no task outlives the test's loop."""
from __future__ import annotations

import asyncio
import socket
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web


class StubServer:
    def __init__(self) -> None:
        self.port = 0
        self._server: tornado.httpserver.HTTPServer | None = None
        self._stopping = asyncio.Event()

    async def listen(self, routes: list, *, port: int = 0, **server_options: Any) -> int:
        """Serve ``routes`` on 127.0.0.1 (``port`` 0: a free one); the port."""
        app = tornado.web.Application(routes, log_function=lambda _: None)
        sockets = tornado.netutil.bind_sockets(port, "127.0.0.1", family=socket.AF_INET)
        self._server = tornado.httpserver.HTTPServer(app, **server_options)
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None
