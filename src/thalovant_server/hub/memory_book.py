"""What hubs remember about each client identity, across conversations and restarts.

The memory skill reads and writes facts (``subject -> value``) here while it answers, so
nothing here touches the database on the hot path:

- a client's facts are loaded once, when it connects to a hub that runs the memory skill
  (:meth:`MemoryBook.ensure_loaded`), and kept in a bounded LRU cache;
- :meth:`MemoryBook.remember` updates the cache at once and queues the write (the store turns
  it into a memory item of scope ``client``, which the owner sees, corrects and deletes
  through ``/v1/memory``);
- the API tells the book about such corrections (:meth:`put`, :meth:`drop`), so a hub never
  recalls what the owner deleted.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from thalovant_server.hub.shared import SharedLoads

__all__ = ["Fact", "MemoryBook", "Remembered", "subject_key"]

MAX_CLIENTS = 10_000
MAX_FACTS = 32
MAX_TEXT = 200


def subject_key(subject: str) -> str:
    """The form subjects are compared in: lowercase, single spaces."""
    return " ".join(subject.lower().split())[:MAX_TEXT]


@dataclass(frozen=True, slots=True)
class Fact:
    """One remembered fact; ``expires_at`` is a Unix time or ``None``."""

    subject: str
    value: str
    expires_at: float | None = None

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class Remembered:
    """A fact a hub was told, on its way to the database."""

    hub_id: str
    client_id: str
    subject: str
    value: str
    at: float


class MemoryBook:
    """Per-client facts for the hub runtime (see the module)."""

    def __init__(
        self,
        load: Callable[[str], Awaitable[list[Fact]]],
        write: Callable[[Remembered], bool],
        *,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self._load = load
        self._write = write
        self._max_clients = max_clients
        self._facts: OrderedDict[str, dict[str, Fact]] = OrderedDict()
        self._partial: set[str] = set()
        self._loads = SharedLoads[str, list[Fact]]()

    def loaded(self, client_id: str) -> bool:
        return client_id in self._facts and client_id not in self._partial

    async def ensure_loaded(self, client_id: str) -> None:
        """Load a client's facts unless cached: one query, which the client's connections that
        come while it runs wait for instead of making their own.

        Facts the hub was told before the load finished win over the stored ones."""
        if self.loaded(client_id):
            self._facts.move_to_end(client_id)
            return
        stored = await self._loads.get(client_id, lambda: self._load(client_id))
        if self.loaded(client_id):
            return
        merged = {subject_key(f.subject): f for f in stored}
        for key, fact in self._facts.get(client_id, {}).items():
            merged.pop(key, None)
            merged[key] = fact
        self._facts[client_id] = dict(list(merged.items())[-MAX_FACTS:])
        self._partial.discard(client_id)
        while len(self._facts) > self._max_clients:
            evicted, _ = self._facts.popitem(last=False)
            self._partial.discard(evicted)

    def facts(self, client_id: str) -> dict[str, str]:
        """The client's live facts (subject -> value), oldest first; empty when none or unknown."""
        now = time.time()
        known = self._facts.get(client_id, {})
        return {fact.subject: fact.value for fact in known.values() if fact.live(now)}

    def remember(self, hub_id: str, client_id: str, subject: str, value: str) -> None:
        """Keep a fact now and queue its write (a full queue only loses the database copy)."""
        subject, value = " ".join(subject.split())[:MAX_TEXT], " ".join(value.split())[:MAX_TEXT]
        self.put(client_id, subject, value, force=True)
        self._write(Remembered(hub_id, client_id, subject, value, time.time()))

    def put(
        self, client_id: str, subject: str, value: str, *, expires_at: float | None = None, force: bool = False
    ) -> None:
        """Set a fact of a cached client (``force`` starts a partial entry for a client not
        loaded yet; its stored facts join it when it is loaded)."""
        known = self._facts.get(client_id)
        if known is None:
            if not force:
                return
            known = self._facts[client_id] = {}
            self._partial.add(client_id)
        key = subject_key(subject)
        known.pop(key, None)
        known[key] = Fact(subject, value, expires_at)
        while len(known) > MAX_FACTS:
            known.pop(next(iter(known)))

    def drop(self, client_id: str, subject: str) -> None:
        """Forget a fact of a cached client."""
        known = self._facts.get(client_id)
        if known is not None:
            known.pop(subject_key(subject), None)
