"""Swiper's benchmarks: Python run from the repository root with the repository's .venv.

- ``python -m bench.full``: THE benchmark, the whole production stack (supervisord + server.py processes +
  nginx) against a bare Tornado ceiling behind the same nginx; ``--compare REV`` measures another revision's
  stack in the same session (see BENCH.md).
- ``python -m bench.social``: the feed and swipes on ONE server.py process, with the feed query's plan and
  optional py-spy profiles.
- ``python -m bench.chat``: chat over WebSocket on the whole stack (sockets held, memory per socket, messages
  through REST delivered over the sockets, exactly-once) against ``bench.bare_chat``, a bare Tornado relay; its
  pairs are ``bench.chat_fixtures``', its load clients ``bench.chat_load``; ``bench.chat_memory`` probes what a
  closed socket leaves in a process.
- ``python -m bench.fixtures``: the data set both use (robots, a viewer, swipers, tokens); ``bench.bare``: the
  ceiling; ``bench/lua/``: the wrk scripts.

Everything they share (the private stack, the bench database, wrk and its output, the tables, the cleanup) is in
``bench.lib``; a new benchmark is built from it.
"""
