"""Database writes the hub's hot path asks for, committed later and in batches.

The hub never waits for the database while it answers a message: it hands an entry to
:meth:`WriteBehind.submit` (a bounded in-memory queue, never blocking) and goes on. One task
takes whatever is queued, groups it by kind, and lets each kind's handler write its entries in
one transaction. A batch starts with the first entry queued and is written ``linger`` seconds
later (at once when it is full, or when :meth:`flush` or :meth:`close` waits for it), so a
steady trickle of entries costs one transaction per ``linger``, not one per entry. Failure
policy, in one place:

- a full queue drops the new entry and counts it (``dropped``), logging at most once a minute;
- a batch that fails is retried entry by entry, each in its own transaction; an entry that
  still fails is logged (by kind and exception type only) and dropped;
- :meth:`flush` waits until every entry submitted before the call is written or dropped, so a
  reader (the API) sees what the hub was asked to write; :meth:`close` flushes and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from thalovant_server.store.engine import Store

__all__ = ["BatchHandler", "WriteBehind"]

log = logging.getLogger(__name__)

BatchHandler = Callable[[Any, Sequence[Any]], Awaitable[None]]
"""Writes a batch of one kind's entries with the given ``AsyncSession``."""

MAX_QUEUE = 10_000
MAX_BATCH = 500
LINGER = 0.05
DROP_LOG_INTERVAL = 60.0


class WriteBehind:
    """A bounded queue of ``(kind, entry)`` and the task that writes them."""

    def __init__(
        self, store: Store, *, max_queue: int = MAX_QUEUE, max_batch: int = MAX_BATCH, linger: float = LINGER
    ) -> None:
        self._store = store
        self._handlers: dict[str, BatchHandler] = {}
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(max_queue)
        self._max_batch = max_batch
        self._linger = linger
        self._hurry = asyncio.Event()
        self._submitted = 0
        self._done = 0
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._last_drop_log = 0.0
        self.dropped = 0
        self.failed = 0

    def register(self, kind: str, handler: BatchHandler) -> None:
        """Write entries of ``kind`` with ``handler`` (one call per batch, in order)."""
        self._handlers[kind] = handler

    def submit(self, kind: str, entry: Any) -> bool:
        """Queue one entry; ``False`` (and counted in ``dropped``) when the queue is full."""
        if kind not in self._handlers:
            raise KeyError(f"no handler registered for {kind!r}")
        try:
            self._queue.put_nowait((kind, entry))
        except asyncio.QueueFull:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_INTERVAL:
                self._last_drop_log = now
                log.warning("write-behind queue full: %d entries dropped so far", self.dropped)
            return False
        self._submitted += 1
        if self._queue.qsize() >= self._max_batch:
            self._hurry.set()
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="write-behind")

    async def flush(self) -> None:
        """Wait until every entry submitted so far is written (or dropped after failing)."""
        target = self._submitted
        if self._done >= target:
            return
        if self._task is None or self._task.done():
            raise RuntimeError("the write-behind task is not running")
        self._hurry.set()
        async with self._progress:
            await self._progress.wait_for(lambda: self._done >= target)

    async def close(self) -> None:
        """Write what is queued, then stop the task."""
        if self._task is None:
            return
        with contextlib.suppress(RuntimeError):
            await self.flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._linger):
                        await self._hurry.wait()
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            if self._queue.empty():
                self._hurry.clear()  # else the rest is due at once too
            await self._write(batch)
            self._done += len(batch)
            async with self._progress:
                self._progress.notify_all()

    async def _write(self, batch: list[tuple[str, Any]]) -> None:
        grouped: dict[str, list[Any]] = defaultdict(list)
        for kind, entry in batch:
            grouped[kind].append(entry)
        try:
            async with self._store.session() as session:
                for kind, entries in grouped.items():
                    await self._handlers[kind](session, entries)
            return
        except Exception:
            log.warning("a write-behind batch of %d entries failed; writing them one by one", len(batch))
        for kind, entry in batch:
            try:
                async with self._store.session() as session:
                    await self._handlers[kind](session, [entry])
            except Exception as exc:
                self.failed += 1
                log.error("write-behind %s entry dropped after %s", kind, type(exc).__name__)
