"""Bus subscriptions: handlers and queues keyed by event name, fed by the link's reader.

Delivery happens on the event loop, in arrival order. A handler that raises is logged and kept;
a coroutine handler is scheduled as a task. ``"*"`` subscribes to every bus event.

Filtering (spec 7.4): a subscription with a request id (or session id) accepts an event whose
request id (session id) is equal, or an event that has none; request ids are compared first.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thalovant.events import ThalovantEvent

log = logging.getLogger("thalovant.client")

ANY_EVENT = "*"

Handler = Callable[[ThalovantEvent], Any]


def event_matches(event: ThalovantEvent, request_id: str | None, session_id: str | None) -> bool:
    """Spec 7.4: by request id when both sides have one, else by session id, else accept."""
    if request_id and event.request_id:
        return bool(event.request_id == request_id)
    if session_id and event.session_id:
        return bool(event.session_id == session_id)
    return True


@dataclass(eq=False)
class Subscription:
    """A live registration; :meth:`close` removes it (idempotent)."""

    name: str
    handler: Handler
    request_id: str | None = None
    session_id: str | None = None
    _registry: SubscriptionRegistry | None = field(default=None, repr=False)

    def close(self) -> None:
        registry, self._registry = self._registry, None
        if registry is not None:
            registry.remove(self)

    @property
    def active(self) -> bool:
        return self._registry is not None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SubscriptionRegistry:
    """Name -> subscriptions. Not thread-safe: use it on the client's event loop only."""

    def __init__(self) -> None:
        self._by_name: dict[str, list[Subscription]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def add(
        self, name: str, handler: Handler, *, request_id: str | None = None, session_id: str | None = None
    ) -> Subscription:
        sub = Subscription(name, handler, request_id, session_id, self)
        self._by_name.setdefault(name, []).append(sub)
        return sub

    def remove(self, sub: Subscription) -> None:
        subs = self._by_name.get(sub.name)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._by_name[sub.name]

    def wants(self, name: str) -> bool:
        return name in self._by_name or ANY_EVENT in self._by_name

    def deliver(self, event: ThalovantEvent) -> None:
        """Hand ``event`` to every matching subscription of its name and of ``*``."""
        targets = [*self._by_name.get(event.name, ()), *self._by_name.get(ANY_EVENT, ())]
        for sub in targets:
            if not event_matches(event, sub.request_id, sub.session_id):
                continue
            try:
                result = sub.handler(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._task_done)
            except Exception:
                log.exception("A handler for %r raised; it stays subscribed.", sub.name)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("An async handler raised: %r", task.exception())

    def clear(self) -> None:
        self._by_name.clear()
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()


class EventQueue:
    """An asyncio queue fed by a subscription, for ``wait_for_event`` and ``listen``."""

    def __init__(
        self,
        registry: SubscriptionRegistry,
        name: str,
        *,
        request_id: str | None = None,
        session_id: str | None = None,
    ) -> None:
        self._queue: asyncio.Queue[ThalovantEvent | BaseException] = asyncio.Queue()
        self._sub = registry.add(name, self._queue.put_nowait, request_id=request_id, session_id=session_id)

    def feed_early(self, event: ThalovantEvent) -> None:
        """Queue an event that arrived before this queue existed (see ``RecentEvents``)."""
        self._queue.put_nowait(event)

    def fail(self, exc: BaseException) -> None:
        """Wake the reader with ``exc`` (the link was lost, the client closed)."""
        self._queue.put_nowait(exc)

    async def get(self, timeout: float | None) -> ThalovantEvent:
        """The next event; :class:`TimeoutError` after ``timeout`` seconds."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._sub.close()
