"""Versioned schema migrations plus the VIP catalogue, applied by ``scripts/manage.py migrate``.

Each migration runs once and is recorded in ``schema_migrations``; the catalogue is upserted on every run.
Both are idempotent: running ``migrate`` twice changes nothing and raises nothing. Never edit a migration that
has shipped: append a new one.
"""
from __future__ import annotations

import logging
from decimal import Decimal

from models.db import db
from models.payments import VipPlan
from models.vip import Permission, VipLevel, VipPermission

log = logging.getLogger("swiper.migrate")

TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"

MIGRATIONS: list[tuple[str, list[str]]] = [
    ("0001_initial", [
        f"""CREATE TABLE IF NOT EXISTS `user` (
            `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `phone` CHAR(11) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            `nickname` VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            `gender` VARCHAR(6) NULL,
            `birthday` DATE NULL,
            `location` VARCHAR(32) NULL,
            `avatar_key` VARCHAR(255) NULL,
            `vip_level` SMALLINT NOT NULL DEFAULT 0,
            `vip_expires_at` DATETIME(6) NULL,
            `created_at` DATETIME(6) NOT NULL,
            `updated_at` DATETIME(6) NOT NULL,
            `last_active_at` DATETIME(6) NOT NULL,
            UNIQUE KEY `user_phone` (`phone`),
            UNIQUE KEY `user_nickname` (`nickname`),
            KEY `user_search` (`location`, `gender`, `birthday`),
            KEY `user_vip_expiry` (`vip_expires_at`)
        ) {TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS `preferences` (
            `user_id` BIGINT NOT NULL PRIMARY KEY,
            `dating_gender` VARCHAR(6) NULL,
            `location` VARCHAR(32) NULL,
            `min_distance` INT NOT NULL DEFAULT 1,
            `max_distance` INT NOT NULL DEFAULT 10,
            `min_dating_age` SMALLINT NOT NULL DEFAULT 18,
            `max_dating_age` SMALLINT NOT NULL DEFAULT 45,
            `vibration` BOOL NOT NULL DEFAULT 1,
            `only_match` BOOL NOT NULL DEFAULT 1,
            `auto_play` BOOL NOT NULL DEFAULT 1,
            CONSTRAINT `preferences_user` FOREIGN KEY (`user_id`) REFERENCES `user` (`id`) ON DELETE CASCADE
        ) {TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS `vip_level` (
            `level` SMALLINT NOT NULL PRIMARY KEY,
            `name` VARCHAR(32) NOT NULL,
            `price` DECIMAL(8, 2) NOT NULL
        ) {TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS `permission` (
            `id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `name` VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            `description` VARCHAR(128) NOT NULL,
            UNIQUE KEY `permission_name` (`name`)
        ) {TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS `vip_permission` (
            `id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `level` SMALLINT NOT NULL,
            `permission_id` INT NOT NULL,
            UNIQUE KEY `vip_permission_pair` (`level`, `permission_id`),
            CONSTRAINT `vip_permission_level` FOREIGN KEY (`level`) REFERENCES `vip_level` (`level`)
                ON DELETE CASCADE,
            CONSTRAINT `vip_permission_permission` FOREIGN KEY (`permission_id`) REFERENCES `permission` (`id`)
                ON DELETE CASCADE
        ) {TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS `swipe` (
            `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `user_id` BIGINT NOT NULL,
            `target_id` BIGINT NOT NULL,
            `action` SMALLINT NOT NULL,
            `created_at` DATETIME(6) NOT NULL,
            UNIQUE KEY `swipe_pair` (`user_id`, `target_id`),
            KEY `swipe_received` (`target_id`, `action`, `created_at`),
            KEY `swipe_recent` (`user_id`, `created_at`)
        ) {TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS `match` (
            `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `user_a` BIGINT NOT NULL,
            `user_b` BIGINT NOT NULL,
            `created_at` DATETIME(6) NOT NULL,
            UNIQUE KEY `match_pair` (`user_a`, `user_b`),
            KEY `match_a_recent` (`user_a`, `created_at`),
            KEY `match_b_recent` (`user_b`, `created_at`),
            CONSTRAINT `match_ordered` CHECK (`user_a` < `user_b`)
        ) {TABLE_OPTIONS}""",
    ]),
    ("0002_social", [
        "ALTER TABLE `user` ADD COLUMN IF NOT EXISTS `rewind_floor` BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE `user` ADD INDEX IF NOT EXISTS `user_feed` (`location`, `gender`, `last_active_at`, `birthday`)",
        "ALTER TABLE `swipe` ADD INDEX IF NOT EXISTS `swipe_received_recent` (`target_id`, `created_at`)",
        "ALTER TABLE `swipe` DROP INDEX IF EXISTS `swipe_received`",
    ]),
    ("0003_swipe_counted", [
        # whether the like was taken from the daily quota: a rewind gives back exactly what was taken
        "ALTER TABLE `swipe` ADD COLUMN IF NOT EXISTS `counted` BOOL NOT NULL DEFAULT 0",
    ]),
    ("0004_chat", [
        # A match is its conversation: the row every send locks, so seq is assigned in commit order.
        "ALTER TABLE `match` ADD COLUMN IF NOT EXISTS `last_seq` INT NOT NULL DEFAULT 0",
        "ALTER TABLE `match` ADD COLUMN IF NOT EXISTS `a_read_seq` INT NOT NULL DEFAULT 0",
        "ALTER TABLE `match` ADD COLUMN IF NOT EXISTS `b_read_seq` INT NOT NULL DEFAULT 0",
        "ALTER TABLE `match` ADD COLUMN IF NOT EXISTS `last_activity_at` DATETIME(6) NULL",
        "UPDATE `match` SET `last_activity_at` = `created_at` WHERE `last_activity_at` IS NULL",
        "ALTER TABLE `match` ADD INDEX IF NOT EXISTS `match_a_activity` (`user_a`, `last_activity_at`, `id`)",
        "ALTER TABLE `match` ADD INDEX IF NOT EXISTS `match_b_activity` (`user_b`, `last_activity_at`, `id`)",
        f"""CREATE TABLE IF NOT EXISTS `message` (
            `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `match_id` BIGINT NOT NULL,
            `seq` INT NOT NULL,
            `sender_id` BIGINT NOT NULL,
            `client_id` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            `text` TEXT NOT NULL,
            `created_at` DATETIME(6) NOT NULL,
            UNIQUE KEY `message_seq` (`match_id`, `seq`),
            UNIQUE KEY `message_client_id` (`match_id`, `sender_id`, `client_id`)
        ) {TABLE_OPTIONS}""",
        # Every revocation is written here too, so authentication can check it while Redis is down.
        f"""CREATE TABLE IF NOT EXISTS `session_revocation` (
            `family` CHAR(24) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
            `user_id` BIGINT NOT NULL,
            `expires_at` DATETIME(6) NOT NULL,
            KEY `session_revocation_expiry` (`expires_at`)
        ) {TABLE_OPTIONS}""",
    ]),
    ("0005_payments", [
        f"""CREATE TABLE IF NOT EXISTS `vip_plan` (
            `id` VARCHAR(32) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
            `level` SMALLINT NOT NULL,
            `months` SMALLINT NOT NULL,
            `price_fen` INT NOT NULL,
            `active` BOOL NOT NULL DEFAULT 1,
            CONSTRAINT `vip_plan_level` FOREIGN KEY (`level`) REFERENCES `vip_level` (`level`),
            CONSTRAINT `vip_plan_sane` CHECK (`months` > 0 AND `price_fen` > 0)
        ) {TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS `vip_order` (
            `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `order_no` CHAR(32) COLLATE utf8mb4_bin NOT NULL,
            `trade_no` VARCHAR(64) COLLATE utf8mb4_bin NULL,
            `user_id` BIGINT NOT NULL,
            `plan_id` VARCHAR(32) COLLATE utf8mb4_bin NOT NULL,
            `level` SMALLINT NOT NULL,
            `months` SMALLINT NOT NULL,
            `amount_fen` INT NOT NULL,
            `channel` VARCHAR(8) NOT NULL,
            `status` VARCHAR(8) NOT NULL DEFAULT 'pending',
            `created_at` DATETIME(6) NOT NULL,
            `expires_at` DATETIME(6) NOT NULL,
            `paid_at` DATETIME(6) NULL,
            `closed_at` DATETIME(6) NULL,
            `refunded_at` DATETIME(6) NULL,
            `updated_at` DATETIME(6) NOT NULL,
            `granted_level` SMALLINT NULL,
            `granted_seconds` BIGINT NULL,
            `notification` MEDIUMTEXT NULL,
            `refund_notification` MEDIUMTEXT NULL,
            UNIQUE KEY `vip_order_no` (`order_no`),
            UNIQUE KEY `vip_order_trade_no` (`trade_no`),
            KEY `vip_order_user_recent` (`user_id`, `id`),
            KEY `vip_order_pending` (`status`, `created_at`),
            CONSTRAINT `vip_order_status` CHECK (`status` IN ('pending', 'paid', 'closed', 'refunded'))
        ) {TABLE_OPTIONS}""",
    ]),
    ("0006_location", [
        # positions as H3 cells only (services/location); user_near is the feed walk's covering index: a coarse
        # cell and a gender, newest activity first, with the age and the exact cell checked inside the index
        "ALTER TABLE `user` ADD COLUMN IF NOT EXISTS `geo_cell` BIGINT NULL, "
        "ADD COLUMN IF NOT EXISTS `geo_coarse` BIGINT NULL, "
        "ADD COLUMN IF NOT EXISTS `geo_updated_at` DATETIME(6) NULL, "
        "ADD COLUMN IF NOT EXISTS `passport_cell` BIGINT NULL",
        "ALTER TABLE `user` ADD INDEX IF NOT EXISTS `user_near` "
        "(`geo_coarse`, `gender`, `last_active_at`, `birthday`, `geo_cell`)",
    ]),
    ("0007_safety", [
        # session_gen: every token carries the generation it was issued in; a ban (or anything that must end
        # every session of a user at once) bumps it, and authentication compares the two on every request
        "ALTER TABLE `user` ADD COLUMN IF NOT EXISTS `session_gen` INT NOT NULL DEFAULT 0, "
        "ADD COLUMN IF NOT EXISTS `banned_at` DATETIME(6) NULL, "
        "ADD COLUMN IF NOT EXISTS `ban_reason` VARCHAR(500) NULL",
        # one row per direction; every list probes both (user_id, target_id) and (target_id, user_id) by the key
        f"""CREATE TABLE IF NOT EXISTS `block` (
            `user_id` BIGINT NOT NULL,
            `target_id` BIGINT NOT NULL,
            `created_at` DATETIME(6) NOT NULL,
            PRIMARY KEY (`user_id`, `target_id`),
            KEY `block_target` (`target_id`, `user_id`)
        ) {TABLE_OPTIONS}""",
        # the users banned now, probed by the feed walks like a swipe; ban_event is the record of who, when, why
        f"""CREATE TABLE IF NOT EXISTS `ban` (
            `user_id` BIGINT NOT NULL PRIMARY KEY,
            `reason` VARCHAR(500) NOT NULL,
            `banned_at` DATETIME(6) NOT NULL
        ) {TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS `ban_event` (
            `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `user_id` BIGINT NOT NULL,
            `action` VARCHAR(5) NOT NULL,
            `reason` VARCHAR(500) NOT NULL DEFAULT '',
            `operator` VARCHAR(64) NOT NULL DEFAULT '',
            `created_at` DATETIME(6) NOT NULL,
            KEY `ban_event_user` (`user_id`, `id`),
            CONSTRAINT `ban_event_action` CHECK (`action` IN ('ban', 'unban'))
        ) {TABLE_OPTIONS}""",
        # a case is one reporter about one user while open; each report is a filing of it
        f"""CREATE TABLE IF NOT EXISTS `report_case` (
            `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `reporter_id` BIGINT NOT NULL,
            `reported_id` BIGINT NOT NULL,
            `reason` VARCHAR(16) NOT NULL,
            `state` VARCHAR(6) NOT NULL DEFAULT 'open',
            `filings` INT NOT NULL DEFAULT 0,
            `opened_at` DATETIME(6) NOT NULL,
            `updated_at` DATETIME(6) NOT NULL,
            `open_pair` VARCHAR(48) AS
                (IF(`state` = 'open', CONCAT(`reporter_id`, ':', `reported_id`), NULL)) PERSISTENT,
            UNIQUE KEY `report_case_open_pair` (`open_pair`),
            KEY `report_case_reporter` (`reporter_id`),
            KEY `report_case_reported` (`reported_id`),
            KEY `report_case_state` (`state`, `id`),
            CONSTRAINT `report_case_state` CHECK (`state` IN ('open', 'closed'))
        ) {TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS `report_filing` (
            `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `case_id` BIGINT NOT NULL,
            `reason` VARCHAR(16) NOT NULL,
            `detail` VARCHAR(500) NOT NULL DEFAULT '',
            `created_at` DATETIME(6) NOT NULL,
            KEY `report_filing_case` (`case_id`, `id`),
            CONSTRAINT `report_filing_case` FOREIGN KEY (`case_id`) REFERENCES `report_case` (`id`) ON DELETE CASCADE
        ) {TABLE_OPTIONS}""",
        # copies, so they outlive the conversation (which unmatching, blocking or deleting removes)
        f"""CREATE TABLE IF NOT EXISTS `report_message` (
            `case_id` BIGINT NOT NULL,
            `message_id` BIGINT NOT NULL,
            `seq` INT NOT NULL,
            `sender_id` BIGINT NOT NULL,
            `text` TEXT NOT NULL,
            `sent_at` DATETIME(6) NOT NULL,
            PRIMARY KEY (`case_id`, `message_id`),
            CONSTRAINT `report_message_case` FOREIGN KEY (`case_id`) REFERENCES `report_case` (`id`)
                ON DELETE CASCADE
        ) {TABLE_OPTIONS}""",
        f"""CREATE TABLE IF NOT EXISTS `photo` (
            `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            `user_id` BIGINT NOT NULL,
            `key` VARCHAR(255) NOT NULL,
            `position` INT NOT NULL,
            `created_at` DATETIME(6) NOT NULL,
            KEY `photo_user` (`user_id`, `position`)
        ) {TABLE_OPTIONS}""",
        # stored objects to delete (replaced avatars, deleted photos, deleted accounts): the periodic jobs retry
        # them until the storage says they are gone
        f"""CREATE TABLE IF NOT EXISTS `storage_deletion` (
            `key` VARCHAR(255) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
            `created_at` DATETIME(6) NOT NULL,
            `attempts` INT NOT NULL DEFAULT 0
        ) {TABLE_OPTIONS}""",
    ]),
    ("0008_swipe_pair", [
        # one row per unordered pair that has liked: the two sides of a mutual like serialise on it (services/
        # swipes.py), on any engine, instead of on InnoDB's gap locks (TiDB has none). No AUTO_INCREMENT: the
        # key is the pair, led by the lower id (the shard column if the table is ever sharded)
        f"""CREATE TABLE IF NOT EXISTS `swipe_pair` (
            `low_id` BIGINT NOT NULL,
            `high_id` BIGINT NOT NULL,
            `likes` INT NOT NULL DEFAULT 0,
            PRIMARY KEY (`low_id`, `high_id`)
        ) {TABLE_OPTIONS}""",
    ]),
    ("0009_photo_count", [
        # how many photos the user has, kept by the album's writes in their transactions: a profile or a list
        # whose people have none (most lists' most people) reads no `photo` row at all
        "ALTER TABLE `user` ADD COLUMN IF NOT EXISTS `photo_count` TINYINT UNSIGNED NOT NULL DEFAULT 0",
        "UPDATE `user` AS u JOIN (SELECT user_id, COUNT(*) AS n FROM photo GROUP BY user_id) AS c "
        "ON c.user_id = u.id SET u.photo_count = c.n",
    ]),
]

# (level, name, price, permissions) as API.md's VIP table defines them.
VIP_LEVELS: list[tuple[int, str, Decimal, tuple[str, ...]]] = [
    (0, "普通用户", Decimal("0.00"), ()),
    (1, "白银会员", Decimal("12.00"), ("vipflag", "superlike")),
    (2, "黄金会员", Decimal("30.00"), ("superlike", "rewind", "unlimit_like", "liked_me")),
    (3, "钻石会员", Decimal("68.00"), ("vipflag", "superlike", "rewind", "anylocation", "unlimit_like",
                                      "liked_me")),
]
# (id, level, months, price in fen): every paid level for 1, 3 and 12 months; the 1-month price is the level's
# monthly price above (upgrades convert days at the ratio of these), longer plans are cheaper per month.
VIP_PLANS: list[tuple[str, int, int, int]] = [
    ("silver-1m", 1, 1, 1200), ("silver-3m", 1, 3, 3000), ("silver-12m", 1, 12, 9800),
    ("gold-1m", 2, 1, 3000), ("gold-3m", 2, 3, 7800), ("gold-12m", 2, 12, 25800),
    ("diamond-1m", 3, 1, 6800), ("diamond-3m", 3, 3, 17800), ("diamond-12m", 3, 12, 58800),
]
PERMISSIONS: dict[str, str] = {
    "vipflag": "VIP badge",
    "superlike": "may superlike",
    "rewind": "may rewind",
    "anylocation": "may look for matches in any city",
    "unlimit_like": "no daily like cap",
    "liked_me": "may see who liked me",
}


async def migrate() -> list[str]:
    """Apply pending migrations and upsert the VIP catalogue; return the names of migrations applied now."""
    if "schema_migrations" not in await db.aio_get_tables():
        await db.aio_execute_sql(
            "CREATE TABLE `schema_migrations` (`name` VARCHAR(64) NOT NULL PRIMARY KEY, "
            f"`applied_at` DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) {TABLE_OPTIONS}")
    rows = await db.aio_execute_sql("SELECT name FROM schema_migrations", fetch_results=_fetchall)
    done = {row[0] for row in rows}
    applied = []
    for name, statements in MIGRATIONS:
        if name in done:
            continue
        for statement in statements:
            await db.aio_execute_sql(statement)
        await db.aio_execute_sql("INSERT IGNORE INTO schema_migrations (name) VALUES (%s)", (name,))
        log.info("applied migration %s", name)
        applied.append(name)
    await _upsert_vip_catalogue()
    return applied


async def _fetchall(_db: object, cursor: object) -> list[tuple]:
    return await cursor.fetchall()  # type: ignore[attr-defined]


async def _upsert_vip_catalogue() -> None:
    async with db.aio_atomic():
        for name, description in PERMISSIONS.items():
            await (Permission.insert(name=name, description=description)
                   .on_conflict(update={Permission.description: description}).aio_execute())
        ids = {p.name: p.id for p in await Permission.select().aio_execute()}
        for level, name, price, permissions in VIP_LEVELS:
            await (VipLevel.insert(level=level, name=name, price=price)
                   .on_conflict(update={VipLevel.name: name, VipLevel.price: price}).aio_execute())
            wanted = {ids[p] for p in permissions}
            await VipPermission.delete().where((VipPermission.level == level)
                                               & VipPermission.permission.not_in(wanted or {0})).aio_execute()
            have = {row.permission_id for row in
                    await VipPermission.select().where(VipPermission.level == level).aio_execute()}
            for permission_id in wanted - have:
                await VipPermission.insert(level=level, permission=permission_id).aio_execute()
        if "vip_plan" in await db.aio_get_tables():
            for plan_id, level, months, price_fen in VIP_PLANS:
                await (VipPlan.insert(id=plan_id, level=level, months=months, price_fen=price_fen, active=True)
                       .on_conflict(update={VipPlan.level: level, VipPlan.months: months,
                                            VipPlan.price_fen: price_fen, VipPlan.active: True}).aio_execute())
            await VipPlan.update(active=False).where(VipPlan.id.not_in([p[0] for p in VIP_PLANS])).aio_execute()
