"""Event names, constants and :class:`ThalovantEvent`, the bus event the client delivers.

The names and values are those of dataplane.md section 8; the accessors follow section 7.2
and the request-id order and display-item rules of section 6.3.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BINARY_FILE",
    "BINARY_TTS_AUDIO",
    "CONVERSATION_SESSION_FIELDS",
    "DEFAULT_PROTOCOL_PREFERENCE",
    "EVENT_ADAPT_MANIFEST",
    "EVENT_ADAPT_MANIFEST_GET",
    "EVENT_AUDIO_QUEUE",
    "EVENT_FALLBACK_LIST",
    "EVENT_FALLBACK_LIST_RESPONSE",
    "EVENT_INTENT_DESCRIBE",
    "EVENT_INTENT_DESCRIBE_RESPONSE",
    "EVENT_INTENT_FAILURE",
    "EVENT_INTENT_LIST",
    "EVENT_INTENT_LIST_RESPONSE",
    "EVENT_INTENT_UNMATCHED",
    "EVENT_OVOS_UTTERANCE_SPEAK",
    "EVENT_PADATIOUS_MANIFEST",
    "EVENT_PADATIOUS_MANIFEST_GET",
    "EVENT_POLICY_DENIED",
    "EVENT_QUERY_COMPLETE",
    "EVENT_QUERY_TIMEOUT",
    "EVENT_RECOGNIZER_LOOP_UTTERANCE",
    "EVENT_SKILLS_LIST",
    "EVENT_SKILLS_LIST_RESPONSE",
    "EVENT_SPEAK",
    "EVENT_UTTERANCE_HANDLED",
    "FAILURE_EVENTS",
    "HIVE_BROADCAST",
    "HIVE_ESCALATE",
    "HIVE_INTERCOM",
    "HIVE_KINDS",
    "HIVE_PROPAGATE",
    "HIVE_RENDEZVOUS",
    "HOME_REQUEST",
    "HOME_RESPONSE",
    "MAX_AUDIO_CLIP_BYTES",
    "MAX_REPLY_MEDIA_BYTES",
    "MEDIA_EVENTS",
    "THALOVANT_CLAIMED_META_KEY",
    "UNTRACKED_UTTERANCE_GRACE_SECONDS",
    "DisplayItem",
    "ThalovantEvent",
    "display_items_from",
    "request_id_of",
]

EVENT_RECOGNIZER_LOOP_UTTERANCE = "recognizer_loop:utterance"
EVENT_SPEAK = "speak"
EVENT_OVOS_UTTERANCE_SPEAK = "ovos.utterance.speak"
EVENT_UTTERANCE_HANDLED = "ovos.utterance.handled"
EVENT_INTENT_FAILURE = "complete_intent_failure"
EVENT_INTENT_UNMATCHED = "ovos.intent.unmatched"
EVENT_POLICY_DENIED = "hive.policy.denied"
EVENT_QUERY_TIMEOUT = "hive.query.timeout"
EVENT_QUERY_COMPLETE = "hive.query.complete"
EVENT_AUDIO_QUEUE = "mycroft.audio.queue"
EVENT_INTENT_LIST = "ovos.intent.list"
EVENT_INTENT_LIST_RESPONSE = "ovos.intent.list.response"
EVENT_INTENT_DESCRIBE = "ovos.intent.describe"
EVENT_INTENT_DESCRIBE_RESPONSE = "ovos.intent.describe.response"
EVENT_ADAPT_MANIFEST_GET = "intent.service.adapt.manifest.get"
EVENT_ADAPT_MANIFEST = "intent.service.adapt.manifest"
EVENT_PADATIOUS_MANIFEST_GET = "intent.service.padatious.manifest.get"
EVENT_PADATIOUS_MANIFEST = "intent.service.padatious.manifest"
EVENT_SKILLS_LIST = "ovos.skills.list"
EVENT_SKILLS_LIST_RESPONSE = "ovos.skills.list.response"
#: kept for compatibility; never sent
EVENT_FALLBACK_LIST = "ovos.skills.fallback.list"
EVENT_FALLBACK_LIST_RESPONSE = "ovos.skills.fallback.list.response"

HIVE_BROADCAST = "broadcast"
HIVE_PROPAGATE = "propagate"
HIVE_ESCALATE = "escalate"
HIVE_INTERCOM = "intercom"
HIVE_RENDEZVOUS = "rendezvous"
HIVE_KINDS = (HIVE_BROADCAST, HIVE_PROPAGATE, HIVE_ESCALATE, HIVE_INTERCOM, HIVE_RENDEZVOUS)

HOME_REQUEST = "thalovant.home.request"
HOME_RESPONSE = "thalovant.home.response"
THALOVANT_CLAIMED_META_KEY = "thalovant_claimed"
DEFAULT_PROTOCOL_PREFERENCE = ("wss", "https", "mqtt")

BINARY_TTS_AUDIO = "tts_audio"
BINARY_FILE = "file"

MEDIA_EVENTS = frozenset({EVENT_SPEAK, EVENT_OVOS_UTTERANCE_SPEAK, EVENT_AUDIO_QUEUE})
FAILURE_EVENTS = frozenset({EVENT_INTENT_FAILURE, EVENT_INTENT_UNMATCHED, EVENT_POLICY_DENIED, EVENT_QUERY_TIMEOUT})
MAX_AUDIO_CLIP_BYTES = 4 * 1024 * 1024
MAX_REPLY_MEDIA_BYTES = 16 * 1024 * 1024
UNTRACKED_UTTERANCE_GRACE_SECONDS = 10.0
#: the session fields a conversation carries to its next turn (dataplane.md 6.6)
CONVERSATION_SESSION_FIELDS = (
    "converse_handlers",
    "active_handlers",
    "active_skills",
    "context",
    "utterance_states",
    "response_mode",
)

_REQUEST_ID_KEYS = ("request_id", "thalovant_request_id", "correlation_id")
_TAG = re.compile(r"<[^<>]*>")
_RICH_KEYS = ("rich_media_data", "rich_media", "display")
_DIRECT_RICH_KEYS = ("table", "attachment", "attachments", "quick_replies", "buttons", "image", "images")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _nonempty_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def request_id_of(data: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    """The request id of an event, in the order of dataplane.md 6.3: the context, then its
    ``session``, then the data; each place tries ``request_id``, ``thalovant_request_id`` and
    ``correlation_id``."""
    for place in (context, _mapping(context.get("session")), data):
        for key in _REQUEST_ID_KEYS:
            found = _nonempty_str(place.get(key))
            if found:
                return found
    return None


def _event_text(data: Mapping[str, Any]) -> str | None:
    for key in ("utterance", "text"):
        found = _nonempty_str(data.get(key))
        if found:
            return found
    utterances = data.get("utterances")
    if isinstance(utterances, list) and utterances and isinstance(utterances[0], str):
        return utterances[0]
    return None


# ---------------------------------------------------------------------------- display items


@dataclass(frozen=True)
class DisplayItem:
    """One thing a UI can show: ``kind`` is ``text``, ``table``, ``attachment``, ``image`` or
    ``choices``. Printing it gives a short readable line; :meth:`as_dict` the plain data."""

    kind: str
    text: str | None = None
    title: str | None = None
    url: str | None = None
    silent: bool = False
    table: Any = None
    choices: tuple[dict[str, Any], ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The item as a JSON-ready dict with only the fields that are set."""
        result: dict[str, Any] = {"kind": self.kind}
        if self.text is not None:
            result["text"] = self.text
        if self.title is not None:
            result["title"] = self.title
        if self.url is not None:
            result["url"] = self.url
        if self.silent:
            result["silent"] = True
        if self.table is not None:
            result["table"] = self.table
        if self.choices:
            result["choices"] = [dict(choice) for choice in self.choices]
        if self.data:
            result["data"] = dict(self.data)
        return result

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __str__(self) -> str:
        if self.kind == "text":
            return self.text or ""
        if self.kind == "choices":
            labels = ", ".join(str(choice.get("title", "")) for choice in self.choices)
            return f"[choices] {labels}"
        if self.kind == "table":
            return f"[table] {self.title or ''}".rstrip()
        parts = [p for p in (self.title, self.url) if p]
        return f"[{self.kind}] " + " ".join(parts) if parts else f"[{self.kind}]"


def _parse_rich(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


def rich_media_of(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The rich media of an event's data: ``rich_media_data``, ``rich_media`` or ``display``
    (an object or a JSON string), else the direct keys; None when there is none."""
    for key in _RICH_KEYS:
        found = _parse_rich(data.get(key))
        if found is not None:
            return dict(found)
    direct = {key: data[key] for key in _DIRECT_RICH_KEYS if data.get(key) not in (None, "", [], {})}
    return direct or None


def _url_of(entry: Mapping[str, Any]) -> str | None:
    payload = _mapping(entry.get("payload"))
    for value in (payload.get("src"), payload.get("url"), entry.get("src"), entry.get("url")):
        found = _nonempty_str(value)
        if found:
            return found
    return None


def _rich_items(rich: Mapping[str, Any]) -> Iterator[DisplayItem]:
    table = rich.get("table")
    if table not in (None, "", [], {}):
        title = _nonempty_str(table.get("title")) if isinstance(table, Mapping) else None
        yield DisplayItem(kind="table", title=title, table=table)
    attachments: list[Any] = []
    if isinstance(rich.get("attachment"), Mapping):
        attachments.append(rich["attachment"])
    if isinstance(rich.get("attachments"), list):
        attachments.extend(rich["attachments"])
    for entry in attachments:
        if not isinstance(entry, Mapping):
            continue
        kind = "image" if entry.get("type") == "image" else "attachment"
        yield DisplayItem(
            kind=kind,
            title=_nonempty_str(entry.get("title")),
            url=_url_of(entry),
            data={"type": entry["type"]} if isinstance(entry.get("type"), str) else {},
        )
    choices: list[dict[str, Any]] = []
    for key in ("quick_replies", "buttons"):
        entries = rich.get(key)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if isinstance(entry, str) and entry:
                choices.append({"title": entry, "payload": entry})
            elif isinstance(entry, Mapping):
                title = next((entry[k] for k in ("title", "label", "text") if _nonempty_str(entry.get(k))), None)
                payload = next((entry[k] for k in ("payload", "value") if entry.get(k) is not None), title)
                if title is not None or payload is not None:
                    choices.append({"title": title, "payload": payload})
    if choices:
        yield DisplayItem(kind="choices", choices=tuple(choices))
    images: list[Any] = []
    if rich.get("image") not in (None, ""):
        images.append(rich["image"])
    if isinstance(rich.get("images"), list):
        images.extend(rich["images"])
    for image in images:
        if isinstance(image, str) and image:
            yield DisplayItem(kind="image", url=image)
        elif isinstance(image, Mapping):
            url = _url_of(image)
            if url:
                yield DisplayItem(kind="image", url=url, title=_nonempty_str(image.get("title")))


def display_items_from(name: str, data: Mapping[str, Any], *, include_text: bool = True) -> list[DisplayItem]:
    """The display items of one event (dataplane.md 6.3): its text (tags stripped; silent when
    ``data.silent`` is set or the event is ``write``) and then its rich media."""
    items: list[DisplayItem] = []
    if include_text:
        raw = _event_text(data)
        if raw:
            text = " ".join(_TAG.sub(" ", raw).split())
            if text:
                items.append(DisplayItem(kind="text", text=text, silent=bool(data.get("silent")) or name == "write"))
    rich = rich_media_of(data)
    if rich:
        items.extend(_rich_items(rich))
    return items


# ---------------------------------------------------------------------------- the event


@dataclass
class ThalovantEvent:
    """A bus event from the hub: ``name`` (the bus type), ``data`` and ``context``.

    ``context`` is as the client sees it (spec 7.3); ``routing_context`` keeps the context as the
    hub sent it, which a reply is routed by (``client.reply``).
    """

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    routing_context: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.data, dict):
            self.data = dict(self.data) if isinstance(self.data, Mapping) else {}
        if not isinstance(self.context, dict):
            self.context = dict(self.context) if isinstance(self.context, Mapping) else {}

    @property
    def type(self) -> str:
        """Alias of :attr:`name` (the OVOS message type)."""
        return self.name

    @property
    def text(self) -> str | None:
        """``data.utterance``, else ``data.text``, else the first of ``data.utterances``."""
        return _event_text(self.data)

    @property
    def session_id(self) -> str | None:
        session = _mapping(self.context.get("session"))
        return _nonempty_str(session.get("session_id")) or _nonempty_str(self.context.get("session_id"))

    @property
    def site_id(self) -> str | None:
        session = _mapping(self.context.get("session"))
        return _nonempty_str(session.get("site_id")) or _nonempty_str(self.context.get("site_id"))

    @property
    def request_id(self) -> str | None:
        """The request id in the order of dataplane.md 6.3, or None."""
        return request_id_of(self.data, self.context)

    @property
    def lang(self) -> str | None:
        session = _mapping(self.context.get("session"))
        return (
            _nonempty_str(self.data.get("lang"))
            or _nonempty_str(self.context.get("lang"))
            or _nonempty_str(session.get("lang"))
        )

    @property
    def is_failure(self) -> bool:
        return self.name in FAILURE_EVENTS

    @property
    def rich_media(self) -> dict[str, Any] | None:
        """The event's rich media object (dataplane.md 6.3), or None."""
        return rich_media_of(self.data)

    def display_items(self, *, include_text: bool = True) -> list[DisplayItem]:
        """The event's display items: its text, then tables, attachments, choices, images."""
        return display_items_from(self.name, self.data, include_text=include_text)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "data": self.data, "context": self.context}

    def __str__(self) -> str:
        text = self.text
        return f"{self.name}: {text}" if text else self.name
