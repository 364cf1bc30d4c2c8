"""The one helper every benchmark shares.

- ``session``: the work directory, every process a benchmark starts, and their cleanup on exit, failure,
  Ctrl-C and SIGTERM (``Session``, ``main_guard``).
- ``system``: free port blocks below the ephemeral range, RSS and CPU ticks of processes, the machine, git.
- ``stack``: a private copy of this tree or of another revision, brought up by its own ``scripts/start.sh``
  with the bare ceiling behind the same nginx (``Stack``); the Aliyun SMS stub (``SmsStub``).
- ``data``: the bench database, Redis db and prefix, the settings of a session, the data set of
  ``bench.fixtures`` (``World``), swipe-row counts, disjoint swipe targets and login phones per run.
- ``wrk``: one load run and its figures (``Result``, ``parse``).
- ``report``: the command, the code and the machine, markdown tables, before/after tables.
"""
