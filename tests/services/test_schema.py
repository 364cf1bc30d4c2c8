"""The models and the migrations describe the same tables: every model field is a column after ``migrate``."""
from __future__ import annotations

from models import ALL_MODELS, db


async def _columns(table: str) -> set[str]:
    async def fetch(_db, cursor):
        return await cursor.fetchall()
    rows = await db.aio_execute_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s",
        (table,), fetch_results=fetch)
    return {row[0] for row in rows}


async def test_every_model_field_has_a_column(schema):
    for model in ALL_MODELS:
        columns = await _columns(model._meta.table_name)
        fields = {field.column_name for field in model._meta.sorted_fields}
        assert fields <= columns, (model.__name__, fields - columns)


async def test_text_columns_are_utf8mb4(schema):
    async def fetch(_db, cursor):
        return await cursor.fetchall()
    rows = await db.aio_execute_sql(
        "SELECT table_name, column_name, character_set_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND character_set_name IS NOT NULL "
        "AND column_name NOT IN ('phone', 'name', 'family')", fetch_results=fetch)
    assert rows and {row[2] for row in rows} == {"utf8mb4"}, rows
