"""Versioned schema migrations plus the VIP catalogue, applied by ``scripts/manage.py migrate``.

Each migration runs once and is recorded in ``schema_migrations``; the catalogue is upserted on every run.
Both are idempotent: running ``migrate`` twice changes nothing and raises nothing. Never edit a migration that
has shipped: append a new one.
"""
from __future__ import annotations

import logging
from decimal import Decimal

from models.db import db
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
    ("0004_location", [
        # positions as H3 cells only (services/location); user_near is the feed walk's covering index: a coarse
        # cell and a gender, newest activity first, with the age and the exact cell checked inside the index
        "ALTER TABLE `user` ADD COLUMN IF NOT EXISTS `geo_cell` BIGINT NULL, "
        "ADD COLUMN IF NOT EXISTS `geo_coarse` BIGINT NULL, "
        "ADD COLUMN IF NOT EXISTS `geo_updated_at` DATETIME(6) NULL, "
        "ADD COLUMN IF NOT EXISTS `passport_cell` BIGINT NULL",
        "ALTER TABLE `user` ADD INDEX IF NOT EXISTS `user_near` "
        "(`geo_coarse`, `gender`, `last_active_at`, `birthday`, `geo_cell`)",
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
