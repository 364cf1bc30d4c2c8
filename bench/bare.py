"""The ceiling of the full-stack benchmark (``bench/full.py``): ``python -m bench.bare --port N``.

One Tornado process on the same event loop as the app's processes (``SWIPER_EVENT_LOOP``: uvloop unless set to
asyncio; the same Tornado as the app), one ``RequestHandler`` at ``/`` whose
``get`` writes ``{"code":0,"data":"ok"}`` as JSON. No middleware, no logging of requests, no database or Redis:
whatever the real endpoint costs beyond this is Swiper's own work. SIGTERM/SIGINT stop it with exit 0.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable

from tornado import web
from tornado.httpserver import HTTPServer

BODY = b'{"code":0,"data":"ok"}'


class BareHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.write(BODY)


def no_log(handler: web.RequestHandler) -> None:
    """No access line: the ceiling does no per-request logging."""


async def serve(app: web.Application, port: int, before_close: Callable[[], None] | None = None) -> None:
    """Serve ``app`` on 127.0.0.1:port until SIGTERM/SIGINT; ``before_close`` runs after it stops accepting."""
    server = HTTPServer(app, idle_connection_timeout=75)
    server.listen(port, address="127.0.0.1")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    server.stop()
    if before_close is not None:
        before_close()
    await server.close_all_connections()


def run_ceiling(argv: list[str] | None, description: str, app: web.Application,
                before_close: Callable[[], None] | None = None) -> int:
    """A ceiling's main: ``--port``, ``--loop`` (as server.py picks it), then ``serve``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=os.environ.get("SWIPER_EVENT_LOOP", "uvloop"),
                        help="the event loop, as server.py picks it (default: $SWIPER_EVENT_LOOP, else uvloop)")
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        import uvloop
        uvloop.run(serve(app, args.port, before_close))
    else:
        asyncio.run(serve(app, args.port, before_close))
    return 0


def main(argv: list[str] | None = None) -> int:
    app = web.Application([(r"/", BareHandler)], log_function=no_log, compress_response=False)
    return run_ceiling(argv, "Bare Tornado handler for benchmarks.", app)


if __name__ == "__main__":
    sys.exit(main())
