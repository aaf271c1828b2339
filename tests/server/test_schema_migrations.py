"""The migrations build exactly the schema the ORM models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from thalovant_server.store.engine import Store
from thalovant_server.store.tables import metadata


def _differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_models_match_the_migrated_schema(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await store.close()
