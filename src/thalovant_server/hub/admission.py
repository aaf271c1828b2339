"""Admission of connection setups: a herd of clients is set up a few at a time, in order.

Each connection holds a slot of :class:`Admission` from its WebSocket upgrade to the end of its
Noise handshake; while ``limit`` slots are held, new setups wait (first come, first served),
so the first ones finish quickly instead of a thousand crawling along together. A setup
keeps its slot for at most ``hold`` seconds: one that waits longer (a slow or silent client)
gives its slot up and goes on without it, so no client can keep the others waiting for long.

All methods run on one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["Admission"]


class Admission:
    """At most ``limit`` setups at a time, each holding its slot at most ``hold`` seconds."""

    def __init__(self, limit: int, hold: float) -> None:
        self.limit = limit
        self.hold = hold
        self._slots = asyncio.Semaphore(limit)

    @property
    def waiting(self) -> bool:
        """True while every slot is held."""
        return self._slots.locked()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a slot and hold it inside the block (or until ``hold`` seconds passed)."""
        await self._slots.acquire()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._slots.release()

        timer = asyncio.get_running_loop().call_later(self.hold, release)
        try:
            yield
        finally:
            timer.cancel()
            release()
