"""The async engine, sessions, and migrations of the store.

One :class:`Store` per application: ``await Store.open(url, sealing=key)`` creates the engine,
applies the Alembic migrations up to ``head`` on the same database and returns a store whose
``session()`` hands out ``AsyncSession`` objects. SQLite runs in WAL mode with a busy timeout
and ``secure_delete``; its database file (and so its WAL and SHM files) is mode 0600.

Migrations that seal existing secrets read the server's sealing key from
``config.attributes["sealing_key"]``; a database that holds such secrets cannot be migrated
without it (a fresh one can).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from thalovant_server.files import touch_private
from thalovant_server.secrets import SealingKey

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA secure_delete=ON")  # deleted or rewritten secrets are zeroed, not left in free space
    cursor.close()


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def _upgrade(connection: Connection, sealing: SealingKey | None) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    config.attributes["sealing_key"] = sealing
    command.upgrade(config, "head")


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url``; SQLite files get their directory created and pragmas set."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            database = Path(parsed.database)
            database.parent.mkdir(parents=True, exist_ok=True)
            # SQLite gives its -wal and -shm files the database file's mode: create it 0600 first
            touch_private(database)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """The database of one server: an engine plus a session factory."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str, *, sealing: SealingKey | None = None, migrate: bool = True) -> Store:
        engine = create_engine(url)
        store = cls(engine)
        if migrate:
            await store.migrate(sealing)
        return store

    async def migrate(self, sealing: SealingKey | None = None) -> None:
        """Apply every pending migration (idempotent); ``sealing`` seals secrets found in clear.

        On SQLite the write-ahead log is then checkpointed and truncated, so no page a migration
        rewrote (a secret it sealed) survives in it.
        """
        async with self.engine.begin() as connection:
            await connection.run_sync(_upgrade, sealing)
        if self.dialect == "sqlite":
            async with self.engine.connect() as connection:
                await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction, committed on success and rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()
