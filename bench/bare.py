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

from tornado import web
from tornado.httpserver import HTTPServer

BODY = b'{"code":0,"data":"ok"}'


class BareHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.write(BODY)


def _no_log(handler: web.RequestHandler) -> None:
    """No access line: the ceiling does no per-request logging."""


async def serve(port: int) -> None:
    app = web.Application([(r"/", BareHandler)], log_function=_no_log, compress_response=False)
    server = HTTPServer(app, idle_connection_timeout=75)
    server.listen(port, address="127.0.0.1")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    server.stop()
    await server.close_all_connections()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bare Tornado handler for benchmarks.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=os.environ.get("SWIPER_EVENT_LOOP", "uvloop"),
                        help="the event loop, as server.py picks it (default: $SWIPER_EVENT_LOOP, else uvloop)")
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        import uvloop
        uvloop.run(serve(args.port))
    else:
        asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
