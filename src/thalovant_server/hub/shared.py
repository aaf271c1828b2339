"""Shared loads: concurrent callers asking for the same key wait for one load, not one each.

:meth:`SharedLoads.get` runs the loader of a key at most once at a time; callers that come while
it runs get its result (or its exception). With a ``ttl`` the result is kept that many seconds
for later callers too, when ``keep`` accepts it (a result it refuses, or an exception, is never
kept). :meth:`SharedLoads.forget` drops kept results at once, and a load already running when
it is called is still shared by its waiters but not kept (it may have read what changed).

All methods run on one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SharedLoads"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _always(_value: object) -> bool:
    return True


class SharedLoads(Generic[K, V]):
    """One load per key at a time; with ``ttl`` > 0, results kept for ``ttl`` seconds."""

    def __init__(self, *, ttl: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._running: dict[K, asyncio.Future[V]] = {}
        self._kept: dict[K, tuple[float, V]] = {}
        self._generation = 0

    async def get(self, key: K, load: Callable[[], Awaitable[V]], *, keep: Callable[[V], bool] = _always) -> V:
        """The value of ``key``: kept, being loaded by another caller, or loaded now by ``load``."""
        kept = self._kept.get(key)
        if kept is not None:
            if kept[0] > self._clock():
                return kept[1]
            del self._kept[key]
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        generation = self._generation
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            if self._running.get(key) is future:
                del self._running[key]
        future.set_result(value)
        if self._ttl > 0 and generation == self._generation and keep(value):
            self._kept[key] = (self._clock() + self._ttl, value)
        return value

    def forget(self, which: Callable[[K, V], bool]) -> None:
        """Drop the kept results ``which`` selects; loads running now will not be kept."""
        self._generation += 1
        for key in [key for key, (_expires, value) in self._kept.items() if which(key, value)]:
            del self._kept[key]

    def __len__(self) -> int:
        """How many results are kept (expired ones included until next asked for)."""
        return len(self._kept)
