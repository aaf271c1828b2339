"""What a hub records about each request it answers (the analytics request log).

The router hands an :class:`Activity` to its :class:`ActivitySink` after answering an
utterance, action or code. ``record`` must never block or raise: the server's sink queues the
entry and the database gets it later, in a batch (:mod:`thalovant_server.store.write_behind`).
``utterance`` is set only when the hub's owner turned utterance recording on (hub spec
``analytics.record_utterances``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Activity", "ActivitySink", "records_utterances"]


@dataclass(frozen=True, slots=True)
class Activity:
    """One answered request: who asked over which carrier, and which skill and intent answered
    (``handled`` is false when the fallback answered)."""

    hub_id: str
    client_id: str
    carrier: str
    kind: str
    skill: str
    intent: str
    handled: bool
    lang: str
    utterance: str | None
    at: float


class ActivitySink(Protocol):
    def record(self, activity: Activity) -> None:
        """Take one activity; never blocks, never raises."""
        ...


def records_utterances(spec: Mapping[str, Any]) -> bool:
    """Whether a hub spec turns utterance recording on (``analytics.record_utterances: true``)."""
    analytics = spec.get("analytics")
    return isinstance(analytics, Mapping) and analytics.get("record_utterances") is True
