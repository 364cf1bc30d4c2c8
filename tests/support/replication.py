"""A MariaDB primary and a GTID replica of it on free ports, each in its own temporary datadir, for the replica
tests. ``replicated_pair()`` yields both (``tests.ops.deps.PrivateMariaDB``) with the ``swiper`` database and
user on each, replication running, and the replica read-only; everything is stopped and removed afterwards."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql

from tests.ops.deps import PrivateMariaDB


def admin(server: PrivateMariaDB) -> pymysql.Connection:
    return pymysql.connect(unix_socket=str(server.socket), user="root", autocommit=True)


def run(server: PrivateMariaDB, *statements: str) -> list[tuple]:
    with admin(server) as conn, conn.cursor() as cur:
        rows: list[tuple] = []
        for statement in statements:
            cur.execute(statement)
            rows = list(cur.fetchall())
        return rows


def replica_status(replica: PrivateMariaDB) -> dict:
    with admin(replica) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW SLAVE STATUS")
        return cur.fetchone() or {}


def wait_caught_up(primary: PrivateMariaDB, replica: PrivateMariaDB, timeout: float = 30.0) -> None:
    """Until the replica has applied everything the primary has committed (MASTER_GTID_WAIT)."""
    gtid = run(primary, "SELECT @@gtid_binlog_pos")[0][0]
    waited = run(replica, f"SELECT MASTER_GTID_WAIT('{gtid}', {timeout})")[0][0]
    assert waited == 0, f"replica did not reach {gtid} within {timeout} s"


@contextlib.contextmanager
def replicated_pair() -> Iterator[tuple[PrivateMariaDB, PrivateMariaDB]]:
    root = Path(tempfile.mkdtemp(prefix="swiper-replication-"))
    primary = PrivateMariaDB(root / "primary", ("--server-id=1", "--log-bin=mysql-bin", "--binlog-format=ROW"))
    replica = PrivateMariaDB(root / "replica", ("--server-id=2", "--skip-log-bin", "--read-only=1"))
    try:
        for server in (primary, replica):
            server.initialise()  # the same swiper database and user on both, before replication starts
        for host in ("localhost", "127.0.0.1"):  # the app checks its replicas' lag with SHOW SLAVE STATUS
            run(replica, f"GRANT SLAVE MONITOR ON *.* TO 'swiper'@'{host}'")
        run(primary, "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'",
            "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'", "RESET MASTER")  # history starts empty
        run(replica, f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, MASTER_USER='repl', "
                     "MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos", "START SLAVE")
        deadline = time.monotonic() + 30
        while replica_status(replica).get("Slave_IO_Running") != "Yes":
            assert time.monotonic() < deadline, replica_status(replica)
            time.sleep(0.2)
        yield primary, replica
    finally:
        for server in (replica, primary):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
