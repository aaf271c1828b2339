"""The one owner of a client's link: connecting, noticing losses, reconnecting, waiting for it.

Every loss of the link, however it is noticed (the reader saw the close, a send failed, a caller
found the link dead), is reported with :meth:`LinkSupervisor.lost`; with ``auto_reconnect`` it
starts the one reconnect loop, which retries on :class:`~thalovant.runtime.policy.RetrySchedule`
until the link is back or :func:`~thalovant.runtime.policy.next_step` says stop. Callers that
need the link call :meth:`LinkSupervisor.wait_up`: they wait (up to their own timeout) for the
loop, and get an error early only when the policy says waiting cannot help. Without
``auto_reconnect`` a caller that finds the link down makes one attempt itself.

All methods run on the client's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from thalovant.errors import ThalovantConnectionError, ThalovantError
from thalovant.runtime.info import redact_error
from thalovant.runtime.link import Link
from thalovant.runtime.policy import RetrySchedule, Step, Verdict, next_step, verdict_of, waiter_gives_up

log = logging.getLogger("thalovant.client")


class LinkSupervisor:
    """Dials through ``dial`` (which returns a started :class:`Link`); calls ``on_down`` with
    the error each time an established link is lost."""

    def __init__(
        self,
        dial: Callable[[], Awaitable[Link]],
        *,
        auto_reconnect: bool,
        on_down: Callable[[ThalovantError], None] = lambda _e: None,
        schedule: RetrySchedule | None = None,
    ) -> None:
        self._dial = dial
        self.auto_reconnect = auto_reconnect
        self._on_down = on_down
        self._schedule = schedule or RetrySchedule()
        self.link: Link | None = None
        self.last_error: ThalovantError | None = None
        self.reconnects = 0
        self._was_up = False
        self._closed = False
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._outcomes = 0  # attempts finished, for waiters
        self._loop_task: asyncio.Task[None] | None = None
        self._down_since: float | None = None
        self._refused_since: float | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    @property
    def up(self) -> bool:
        return self.link is not None and self.link.alive

    @property
    def reconnecting(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    # ------------------------------------------------------------------ attempts

    async def connect(self) -> Link:
        """One attempt now, unless the link is up; raises the attempt's typed error."""
        self._closed = False
        async with self._lock:
            if self.up:
                assert self.link is not None
                return self.link
            return await self._attempt()

    async def _attempt(self) -> Link:
        """Dial once (the lock is held): the new link, or the typed error."""
        old, self.link = self.link, None
        if old is not None:
            await old.close()
        try:
            link = await self._dial()
        except ThalovantError as exc:
            self._record(exc)
            raise
        if self._closed:  # closed while dialling
            await link.close()
            raise ThalovantConnectionError("The client was closed.")
        self.link = link
        if self._was_up:
            self.reconnects += 1
        self._was_up = True
        self._down_since = self._refused_since = None
        self._record(None)
        return link

    def _record(self, error: ThalovantError | None) -> None:
        self.last_error = error
        now = time.monotonic()
        if error is not None:
            self._down_since = self._down_since or now
        if error is not None and verdict_of(error) is Verdict.REFUSED:
            self._refused_since = self._refused_since or now
        elif error is not None:
            self._refused_since = None
        self._outcomes += 1
        self._background(self._notify())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ losses and the loop

    def lost(self, link: Link, error: ThalovantError) -> None:
        """``link`` ended with ``error``; idempotent, and a no-op for a link already replaced."""
        if link is not self.link or self._closed:
            return
        self.link = None
        self.last_error = error
        self._down_since = time.monotonic()
        log.warning("Hub link lost: %s", redact_error(str(error)))
        self._background(link.close())
        self._on_down(error)
        if self.auto_reconnect:
            self._start_loop(immediate=False)
        self._background(self._notify())

    def _start_loop(self, *, immediate: bool) -> None:
        if self._closed or self.reconnecting:
            return
        self._loop_task = asyncio.get_running_loop().create_task(
            self._reconnect_loop(immediate), name="thalovant-reconnect"
        )

    async def _reconnect_loop(self, immediate: bool) -> None:
        """Attempt (at once when ``immediate``, else after the first delay) until the link is
        up, the client is closed or the policy says stop."""
        first, late = True, 0
        while not self._closed and not self.up:
            if not (first and immediate):
                down_for = time.monotonic() - (self._down_since or time.monotonic())
                await asyncio.sleep(self._schedule.delay(late, down_for))
                if down_for >= self._schedule.restart_window:
                    late += 1
            first = False
            async with self._lock:
                if self._closed or self.up:
                    return
                try:
                    await self._attempt()
                except ThalovantError as exc:
                    refused_for = time.monotonic() - (self._refused_since or time.monotonic())
                    if next_step(exc, refused_for=refused_for) is Step.STOP:
                        log.error("Not reconnecting: %s", redact_error(str(exc)))
                        return
                    log.info("Reconnect failed (%s); retrying.", redact_error(str(exc)))
                    continue
            log.info("Connected to the hub.")
            return

    # ------------------------------------------------------------------ waiting for the link

    async def wait_up(self, timeout: float) -> Link:
        """The live link, waiting up to ``timeout`` seconds for it. Raises the policy's error
        at once when waiting cannot help (refused, key rejected or changed), else
        :class:`ThalovantConnectionError` naming the last failure when the time is up."""
        link = self.link
        if link is not None and link.alive:
            return link
        if link is not None:  # dead, but nobody reported it yet
            link.report_dead()
            if self.link is link:  # closed by the client itself
                self.lost(link, link.error or ThalovantConnectionError("The hub connection is closed."))
        if not self.auto_reconnect:
            return await self.connect()
        self._closed = False
        deadline = time.monotonic() + timeout
        seen = self._outcomes
        async with self._changed:
            while True:
                if self.up:
                    assert self.link is not None
                    return self.link
                if self._closed:
                    raise ThalovantConnectionError("The client was closed.")
                error = self.last_error
                if self._outcomes > seen and error is not None and waiter_gives_up(error):
                    raise error
                if not self.reconnecting:
                    self._start_loop(immediate=True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    reason = f" (last error: {redact_error(str(error))})" if error is not None else ""
                    raise ThalovantConnectionError(f"The hub link was not back within {timeout:g} s{reason}.")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def close(self) -> None:
        """Stop reconnecting and close the link normally. Idempotent."""
        self._closed = True
        task, self._loop_task = self._loop_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        link, self.link = self.link, None
        if link is not None:
            await link.close()
        await self._notify()
