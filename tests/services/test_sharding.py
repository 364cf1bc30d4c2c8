"""The schema stays one that TiDB and Vitess can take (OPERATIONS.md "Past one machine"): every table has a decided
shard column, every unique key contains it or is a listed exception with its reason, and no table gains an
AUTO_INCREMENT beyond the listed ones (each needs TiDB's AUTO_RANDOM or a Vitess sequence). A new table or
unique key fails here until it is classified below and in OPERATIONS.md."""
from __future__ import annotations

from models import db

# table -> the column it would be sharded by (None: a small reference table, unsharded / copied to every shard)
SHARD_COLUMN: dict[str, str | None] = {
    "user": "id", "preferences": "user_id", "swipe": "user_id", "swipe_pair": "low_id", "match": "user_a",
    "message": "match_id", "session_revocation": "family", "vip_order": "user_id",
    "block": "user_id", "ban": "user_id", "ban_event": "user_id", "photo": "user_id",
    "report_case": "reporter_id", "report_filing": "case_id", "report_message": "case_id", "storage_deletion": "key",
    "vip_level": None, "permission": None, "vip_permission": None, "vip_plan": None, "schema_migrations": None,
}
# unique keys without the shard column, and why that is acceptable
EXCEPTIONS = {
    ("user", "user_phone"): "login by phone: a Vitess lookup vindex phone -> id (TiDB: a global index)",
    ("user", "user_nickname"): "a lookup vindex nickname -> id, like the phone",
    ("vip_order", "vip_order_no"): "provider notifications name the order: a lookup vindex order_no -> user_id",
    ("vip_order", "vip_order_trade_no"): "the provider's id, the same way",
    ("report_case", "report_case_open_pair"): "generated from reporter_id:reported_id, so it holds the shard value",
}
# existing AUTO_INCREMENT ids: globally unique ids from a Vitess sequence / TiDB AUTO_RANDOM (or AUTO_INCREMENT's
# per-server batches: unique, not monotonic; nothing here orders by id alone across users)
AUTO_INCREMENT = {"user", "swipe", "match", "message", "vip_order", "permission", "vip_permission",
                  # low-volume (a user's photos, operators' and reporters' records): a sequence is no hot spot
                  "photo", "ban_event", "report_case", "report_filing"}


async def _rows(sql: str) -> list[tuple]:
    async def fetch(_db, cursor):
        return await cursor.fetchall()
    return await db.aio_execute_sql(sql, fetch_results=fetch)


async def test_every_unique_key_contains_its_tables_shard_column(schema):
    rows = await _rows("SELECT table_name, index_name, GROUP_CONCAT(column_name) FROM information_schema.statistics "
                       "WHERE table_schema = DATABASE() AND non_unique = 0 GROUP BY table_name, index_name")
    tables = {row[0] for row in rows}
    assert tables <= set(SHARD_COLUMN), f"decide the shard column of {tables - set(SHARD_COLUMN)}"
    for table, index, columns in rows:
        shard = SHARD_COLUMN[table]
        if shard is None or shard in columns.split(",") or (table, index) in EXCEPTIONS:
            continue
        if index == "PRIMARY" and columns == "id" and table in AUTO_INCREMENT:
            continue  # a global id from a sequence
        raise AssertionError(f"unique key {table}.{index} ({columns}) lacks the shard column {shard}")


async def test_no_new_auto_increment_hot_spots(schema):
    rows = await _rows("SELECT table_name FROM information_schema.columns WHERE table_schema = DATABASE() "
                       "AND LOCATE('auto_increment', extra) > 0")
    assert {row[0] for row in rows} <= AUTO_INCREMENT
