"""The write-behind queue: batches, the failure policy, a full queue, flush and close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from thalovant_server.store.engine import Store
from thalovant_server.store.write_behind import WriteBehind


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'wb.db'}")
    async with opened.session() as session:
        await session.execute(text("CREATE TABLE notes (value TEXT UNIQUE)"))
    try:
        yield opened
    finally:
        await opened.close()


async def stored(store: Store) -> list[str]:
    async with store.session() as session:
        return [row[0] for row in (await session.execute(text("SELECT value FROM notes ORDER BY value"))).all()]


async def test_batches_are_written_and_a_bad_entry_costs_only_itself(store: Store) -> None:
    batches: list[int] = []

    async def write(session: Any, values: Sequence[str]) -> None:
        batches.append(len(values))
        for value in values:
            await session.execute(text("INSERT INTO notes (value) VALUES (:v)"), {"v": value})

    writer = WriteBehind(store)
    writer.register("note", write)
    for value in ("a", "b", "a", "c"):  # the second "a" breaks the UNIQUE constraint
        assert writer.submit("note", value)
    writer.start()
    await writer.flush()
    assert await stored(store) == ["a", "b", "c"]
    assert writer.failed == 1 and writer.dropped == 0
    assert batches[0] == 4  # all four were queued before the task ran: one batch first
    writer.submit("note", "d")
    await writer.close()  # close writes what is queued
    assert await stored(store) == ["a", "b", "c", "d"]


async def test_a_full_queue_drops_new_entries_and_never_blocks(store: Store) -> None:
    async def write(session: Any, values: Sequence[str]) -> None:
        for value in values:
            await session.execute(text("INSERT INTO notes (value) VALUES (:v)"), {"v": value})

    writer = WriteBehind(store, max_queue=2)
    writer.register("note", write)
    assert [writer.submit("note", v) for v in ("x", "y", "z")] == [True, True, False]
    assert writer.dropped == 1
    with pytest.raises(KeyError):
        writer.submit("unknown-kind", "w")
    writer.start()
    await writer.flush()
    assert await stored(store) == ["x", "y"]
    await writer.close()


async def test_a_trickle_lingers_into_one_batch_and_flush_does_not_wait_for_the_linger(store: Store) -> None:
    batches: list[list[str]] = []

    async def write(session: Any, values: Sequence[str]) -> None:
        batches.append(list(values))
        for value in values:
            await session.execute(text("INSERT INTO notes (value) VALUES (:v)"), {"v": value})

    writer = WriteBehind(store, linger=3600.0)
    writer.register("note", write)
    writer.start()
    for value in ("a", "b", "c"):
        assert writer.submit("note", value)
        await asyncio.sleep(0)  # the writer task runs between entries, as it does between asks
    await writer.flush()
    assert batches == [["a", "b", "c"]]
    assert await stored(store) == ["a", "b", "c"]
    assert writer.submit("note", "d")
    await writer.close()
    assert batches[-1] == ["d"] and await stored(store) == ["a", "b", "c", "d"]
