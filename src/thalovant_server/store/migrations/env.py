"""Alembic environment: runs on the connection the store hands over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from thalovant_server.store.tables import metadata

target_metadata = metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("thalovant migrations run through thalovant_server.store.engine.migrate()")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
