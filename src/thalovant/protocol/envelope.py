"""The HiveMind JSON envelope (spec 5.1) and the OVOS bus message it carries.

Parsing is lenient where the spec is: only ``msg_type`` is required, every other field
defaults when missing (or of the wrong JSON type). Anything that is not a UTF-8 JSON object
with a string ``msg_type`` raises :class:`EnvelopeError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from thalovant.protocol.errors import EnvelopeError

__all__ = [
    "MESSAGE_NUMBERS",
    "MESSAGE_TYPES",
    "NESTED_TYPES",
    "BusMessage",
    "HiveMessage",
    "copy_json",
    "encode_json",
    "envelope_from_object",
    "message_type_name",
    "message_type_number",
    "parse_envelope",
    "parse_json_object",
]

MESSAGE_TYPES: Mapping[int, str] = {
    0: "shake",
    1: "bus",
    2: "shared_bus",
    3: "broadcast",
    4: "propagate",
    5: "escalate",
    6: "hello",
    7: "query",
    8: "cascade",
    9: "ping",
    10: "rendezvous",
    11: "3rdparty",
    12: "bin",
}
"""Wire numbers of the message types (used by WIRE-1 binary frames)."""

MESSAGE_NUMBERS: Mapping[str, int] = {
    **{name: number for number, name in MESSAGE_TYPES.items()},
    "handshake": 0,
}
"""Message type name to wire number; ``handshake`` is an alias of ``shake``, ``intercom`` has none."""

NESTED_TYPES = frozenset(
    {"broadcast", "propagate", "escalate", "intercom", "rendezvous", "query", "cascade", "shared_bus"}
)
"""Kinds whose ``payload`` is a whole inner envelope."""


_FALLBACK = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
"""For what orjson refuses and the standard library writes: integers beyond 64 bits, strings
with lone surrogates (escaped), nesting deeper than orjson's limit."""


_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
"""orjson writes keys as :mod:`json` does and leaves dataclasses and dates to the fallback (which
refuses them, as it always has)."""


def copy_json(value: Any) -> Any:
    """A copy of JSON-shaped ``value`` as an envelope carries it, sharing nothing mutable with
    it: every dict becomes a new ``dict``, every list or tuple a new ``list``, a NaN or infinite
    float ``None`` (:func:`encode_json` writes it as ``null``); strings, numbers, booleans and
    ``None`` are immutable and shared (as is anything else, which no envelope can carry: encoding
    it fails as it would have). :class:`EnvelopeError` for a cycle or nesting deeper than the
    interpreter's recursion limit."""
    try:
        return _copied(value)
    except RecursionError:
        raise EnvelopeError("a value is cyclic or nested too deep") from None


def _copied(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copied(item) for item in value]
    return value


def encode_json(value: Any) -> bytes:
    """``value`` as the envelope's compact UTF-8 JSON; :class:`EnvelopeError` if it is not
    serialisable. Dictionary keys that are ``int``, ``float``, ``bool`` or ``None`` are written
    as strings (as :mod:`json` does); a float that is NaN or infinite is written as ``null`` (as
    JavaScript's ``JSON.stringify`` does)."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        pass
    try:
        return _FALLBACK.encode(copy_json(value)).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise EnvelopeError(f"envelope is not JSON-serialisable: {exc}") from None


def message_type_name(number: int) -> str:
    """The message type of a wire number; unknown numbers read as ``3rdparty``."""
    return MESSAGE_TYPES.get(number, "3rdparty")


def message_type_number(name: str) -> int | None:
    """The wire number of a message type, or ``None`` (``intercom`` and unknown names)."""
    return MESSAGE_NUMBERS.get(name)


@dataclass(slots=True)
class BusMessage:
    """An OVOS bus message: ``type``, ``data`` and ``context``."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data, "context": self.context}

    @classmethod
    def from_object(cls, obj: Any) -> BusMessage:
        """Read a bus message leniently: a missing ``type`` is ``""``, non-object data/context ``{}``."""
        if not isinstance(obj, dict):
            return cls("")
        kind = obj.get("type")
        data = obj.get("data")
        context = obj.get("context")
        return cls(
            kind if isinstance(kind, str) else "",
            data if isinstance(data, dict) else {},
            context if isinstance(context, dict) else {},
        )


@dataclass(slots=True)
class HiveMessage:
    """One HiveMind envelope with its eight fields."""

    msg_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    route: list[Any] = field(default_factory=list)
    node: Any = None
    target_site_id: Any = None
    target_pubkey: Any = None
    source_peer: Any = None

    @classmethod
    def bus(
        cls,
        type: str,
        data: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> HiveMessage:
        """A ``bus`` envelope carrying the bus message ``{type, data, context}``."""
        return cls("bus", {"type": type, "data": dict(data or {}), "context": dict(context or {})})

    def bus_message(self) -> BusMessage:
        """The payload read as a bus message (lenient, spec 5.1)."""
        return BusMessage.from_object(self.payload)

    def inner(self) -> HiveMessage | None:
        """The nested envelope of a nesting kind whose payload has a string ``msg_type``."""
        if self.msg_type in NESTED_TYPES and isinstance(self.payload.get("msg_type"), str):
            return envelope_from_object(self.payload)
        return None

    def to_dict(self) -> dict[str, Any]:
        """The envelope as a JSON-ready object, always with all eight fields."""
        return {
            "msg_type": self.msg_type,
            "payload": self.payload,
            "metadata": self.metadata,
            "route": self.route,
            "node": self.node,
            "target_site_id": self.target_site_id,
            "target_pubkey": self.target_pubkey,
            "source_peer": self.source_peer,
        }

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON of all eight fields; :class:`EnvelopeError` if not serialisable."""
        return encode_json(self.to_dict())


def envelope_from_object(obj: Any) -> HiveMessage:
    """Build an envelope from a parsed JSON value (lenient defaults, spec 5.1)."""
    if not isinstance(obj, dict):
        raise EnvelopeError("envelope is not a JSON object")
    msg_type = obj.get("msg_type")
    if not isinstance(msg_type, str):
        raise EnvelopeError("envelope has no string msg_type")
    payload = obj.get("payload")
    metadata = obj.get("metadata")
    route = obj.get("route")
    return HiveMessage(
        msg_type,
        payload if isinstance(payload, dict) else {},
        metadata if isinstance(metadata, dict) else {},
        route if isinstance(route, list) else [],
        obj.get("node"),
        obj.get("target_site_id"),
        obj.get("target_pubkey"),
        obj.get("source_peer"),
    )


_DIGIT_MAP = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
"""Every ASCII digit as ``0``, every other byte as ``.``: a run of digits becomes a run of ``0``."""
_LONG_RUN = b"0" * 19
"""A run of digits that may be an integer beyond 64 bits, which orjson would read as a float."""


def _loads(body: bytes | bytearray | memoryview | str) -> Any:
    """JSON as :func:`json.loads` reads it. orjson reads the common case; the standard library
    reads what orjson refuses or would read differently (integers beyond 64 bits, ``NaN``
    literals, lone surrogates, invalid text, for its error)."""
    try:
        raw = body.encode() if isinstance(body, str) else bytes(body)
    except UnicodeEncodeError:
        raw = None
    if raw is not None and _LONG_RUN not in raw.translate(_DIGIT_MAP):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body if isinstance(body, str) else str(body, "utf-8"))


def parse_json_object(body: bytes | bytearray | memoryview | str, what: str = "envelope") -> dict[str, Any]:
    """Decode UTF-8 JSON that must be an object; :class:`EnvelopeError` otherwise."""
    try:
        obj = _loads(body)
    except UnicodeDecodeError:
        raise EnvelopeError(f"{what} is not valid UTF-8") from None
    except (ValueError, RecursionError):
        raise EnvelopeError(f"{what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise EnvelopeError(f"{what} is not a JSON object")
    return obj


def parse_envelope(body: bytes) -> HiveMessage:
    """Parse one JSON frame body into an envelope (spec 5.1)."""
    return envelope_from_object(parse_json_object(body))
