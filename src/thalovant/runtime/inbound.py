"""Inbound routing: envelopes from the link become :class:`ThalovantEvent` objects (spec 5.1, 7.3).

- ``hello`` and unknown kinds are ignored;
- ``bus`` payloads are delivered as bus events;
- a ``broadcast`` whose inner frame is ``bus`` and whose ``target_site_id`` is this client's
  site is delivered as a bus event too;
- before delivery ``context.hivemind_verified_source_peer`` is dropped (a hub cannot assert a
  verified origin to a client) and ``context.destination`` becomes ``context.source``.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thalovant.events import ThalovantEvent
from thalovant.protocol.envelope import BusMessage, HiveMessage

VERIFIED_PEER_KEY = "hivemind_verified_source_peer"
RECENT_EVENTS = 256
RECENT_SECONDS = 30.0


def normalise_context(context: dict[str, Any]) -> dict[str, Any]:
    """The context as the client sees it (spec 7.3); the original is left untouched."""
    result = copy.copy(context)
    result.pop(VERIFIED_PEER_KEY, None)
    if "destination" in result:
        result["source"] = result.pop("destination")
    return result


def bus_event(bus: BusMessage) -> ThalovantEvent:
    return ThalovantEvent(
        name=bus.type, data=bus.data, context=normalise_context(bus.context), routing_context=bus.context
    )


def bus_of(envelope: HiveMessage, site_id: str) -> BusMessage | None:
    """The bus message an inbound envelope delivers to this client, if any."""
    if envelope.msg_type == "bus":
        return envelope.bus_message()
    if envelope.msg_type == "broadcast":
        inner = envelope.inner()
        if inner is not None and inner.msg_type == "bus" and envelope.target_site_id == site_id:
            return inner.bus_message()
    return None


@dataclass
class RecentEvent:
    seq: int
    at: float
    event: ThalovantEvent
    consumed: bool = False


class RecentEvents:
    """The last few events with a sequence number, so ``wait_for_event`` and ``listen`` called
    right after a publication still see what the hub answered in the meantime."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: deque[RecentEvent] = deque(maxlen=RECENT_EVENTS)
        self.seq = 0

    def add(self, event: ThalovantEvent) -> RecentEvent:
        self.seq += 1
        item = RecentEvent(self.seq, self._clock(), event)
        self._items.append(item)
        return item

    def since(self, seq: int) -> list[RecentEvent]:
        horizon = self._clock() - RECENT_SECONDS
        return [item for item in self._items if item.seq > seq and item.at >= horizon]
