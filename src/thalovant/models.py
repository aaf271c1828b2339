"""Data-plane result models: the reply of ``ask``, the health and the doctor report.

Plain data objects; the runtime client builds them, users read and print them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from thalovant.events import (
    EVENT_OVOS_UTTERANCE_SPEAK,
    EVENT_SPEAK,
    THALOVANT_CLAIMED_META_KEY,
    DisplayItem,
    ThalovantEvent,
)

__all__ = ["ThalovantBinary", "ThalovantDoctorCheck", "ThalovantDoctorReport", "ThalovantHealth", "ThalovantReply"]

_SPEECH = frozenset({EVENT_SPEAK, EVENT_OVOS_UTTERANCE_SPEAK})


def _strings_in_order(values: Iterable[Any]) -> tuple[str, ...]:
    seen: list[str] = []
    for value in values:
        if isinstance(value, str) and value and value not in seen:
            seen.append(value)
    return tuple(seen)


@dataclass
class ThalovantReply:
    """The answer to one ``ask``.

    ``text`` is the spoken answer (its sentences joined by a space); ``events`` every
    correlated event in arrival order; ``media_events`` the speech and sound events in order;
    ``handled`` is true when the hub finished the request without a failure.
    """

    text: str
    request_id: str | None = None
    session_id: str | None = None
    lang: str | None = None
    handled: bool = False
    events: list[ThalovantEvent] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    media_events: list[ThalovantEvent] = field(default_factory=list)
    failure_event: ThalovantEvent | None = None
    dropped_media: int = 0
    pipeline_ids: tuple[str, ...] = ()
    skill_ids: tuple[str, ...] = ()
    claimed: bool = True

    @classmethod
    def from_events(
        cls,
        *,
        text: str,
        events: list[ThalovantEvent],
        request_id: str | None = None,
        session_id: str | None = None,
        fragments: list[str] | None = None,
        media_events: list[ThalovantEvent] | None = None,
        handled: bool = False,
        failure_event: ThalovantEvent | None = None,
        dropped_media: int = 0,
    ) -> ThalovantReply:
        """Build a reply and derive ``session_id``, ``lang``, ``pipeline_ids``, ``skill_ids``
        and ``claimed`` from the events (dataplane.md 6.3)."""
        first = events[0] if events else None
        reply_session = (first.session_id if first is not None else None) or session_id
        lang = first.lang if first is not None else None
        pipeline_ids = _strings_in_order(event.context.get("pipeline_id") for event in events)
        skill_ids = _strings_in_order(event.context.get("skill_id") for event in events)
        claimed = cls._claimed(events, pipeline_ids, failed=failure_event is not None)
        return cls(
            text=text,
            request_id=request_id,
            session_id=reply_session,
            lang=lang,
            handled=handled,
            events=list(events),
            fragments=list(fragments if fragments is not None else ([text] if text else [])),
            media_events=list(media_events if media_events is not None else []),
            failure_event=failure_event,
            dropped_media=dropped_media,
            pipeline_ids=pipeline_ids,
            skill_ids=skill_ids,
            claimed=claimed,
        )

    @staticmethod
    def _claimed(events: list[ThalovantEvent], pipeline_ids: tuple[str, ...], *, failed: bool) -> bool:
        if failed:
            return False
        for event in events:
            meta = event.data.get("meta")
            if event.name in _SPEECH and isinstance(meta, Mapping) and meta.get(THALOVANT_CLAIMED_META_KEY) is True:
                return True
        if not pipeline_ids:
            return True
        return any("fallback" not in pipeline for pipeline in pipeline_ids)

    def display_items(self, max_items: int | None = None) -> list[DisplayItem]:
        """The rich items of the reply (tables, attachments, choices, images) in arrival order;
        the spoken text is :attr:`text`. ``max_items`` caps the list."""
        items: list[DisplayItem] = []
        for event in self.events:
            items.extend(event.display_items(include_text=False))
        if max_items is not None:
            items = items[: max(0, max_items)]
        return items

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: text, ids, handled and the display items."""
        return {
            "text": self.text,
            "request_id": self.request_id,
            "session_id": self.session_id,
            "lang": self.lang,
            "handled": self.handled,
            "display_items": [item.as_dict() for item in self.display_items()],
        }

    def __str__(self) -> str:
        return self.text


@dataclass
class ThalovantHealth:
    """The link state of a runtime client. ``ok`` when connected, handshaken, the transport
    alive and no error recorded."""

    connected: bool = False
    handshake_complete: bool = False
    transport_alive: bool = False
    last_error: str | None = None
    protocol: str | None = None
    endpoint: str | None = None
    noise_pattern: str | None = None

    @property
    def ok(self) -> bool:
        return self.connected and self.handshake_complete and self.transport_alive and not self.last_error

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "connected": self.connected,
            "handshake_complete": self.handshake_complete,
            "transport_alive": self.transport_alive,
            "last_error": self.last_error,
            "protocol": self.protocol,
            "endpoint": self.endpoint,
            "noise_pattern": self.noise_pattern,
        }

    def __str__(self) -> str:
        state = "ok" if self.ok else "NOT OK"
        parts = [
            f"health: {state}",
            f"protocol={self.protocol or '?'}",
            f"connected={self.connected}",
            f"handshake_complete={self.handshake_complete}",
            f"transport_alive={self.transport_alive}",
        ]
        if self.noise_pattern:
            parts.append(f"noise={self.noise_pattern}")
        if self.endpoint:
            parts.append(f"endpoint={self.endpoint}")
        if self.last_error:
            parts.append(f"last_error={self.last_error}")
        return " ".join(parts)


class ThalovantDoctorCheck(NamedTuple):
    """One diagnostic check: its name, whether it passed, and what it found."""

    name: str
    ok: bool
    detail: str


@dataclass
class ThalovantDoctorReport:
    """The result of ``doctor()``: the checks in order. ``ok`` when every check passed;
    printing gives one line per check."""

    checks: list[ThalovantDoctorCheck] = field(default_factory=list)
    #: what to try, by the name of a failed check
    hints: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [
                {"name": c.name, "ok": c.ok, "detail": c.detail, "hint": None if c.ok else self.hints.get(c.name)}
                for c in self.checks
            ],
        }

    def __str__(self) -> str:
        width = max((len(check.name) for check in self.checks), default=0)
        lines = []
        for check in self.checks:
            lines.append(f"[{'ok' if check.ok else 'FAIL':>4}] {check.name:<{width}}  {check.detail}")
            hint = self.hints.get(check.name)
            if hint and not check.ok:
                lines.append(f"       {'':<{width}}  hint: {hint}")
        lines.append("doctor: all checks passed" if self.ok else "doctor: some checks failed")
        return "\n".join(lines)


@dataclass(frozen=True)
class ThalovantBinary:
    """A binary frame from the hub (WIRE-1 ``bin``): ``kind`` is ``tts_audio``, ``file``, ...;
    ``metadata`` what the hub sent with it (``utterance``, ``lang``, ``file_name``)."""

    kind: str
    data: bytes
    metadata: dict[str, Any] = field(default_factory=dict)

    def _text(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) and value else None

    @property
    def file_name(self) -> str | None:
        return self._text("file_name")

    @property
    def lang(self) -> str | None:
        return self._text("lang")

    @property
    def utterance(self) -> str | None:
        """The utterance this audio speaks (how a client matches it to a turn)."""
        return self._text("utterance")

    def __repr__(self) -> str:
        return f"ThalovantBinary(kind={self.kind!r}, bytes={len(self.data)}, metadata={self.metadata!r})"
