"""WIRE-1 binary frames (spec 5.2): the bitstring carried after marker 0x01 or 0x03.

Layout, most significant bit first::

    0* 1                      left padding ended by a one bit
    v [version:8]             versioned bit, then the version (<= 1) when it is set
    type:5                    message type number (spec 5.1 table)
    compressed:1              metadata (and a JSON payload) are zlib streams
    metalen:8                 metadata length in bytes, as on the wire
    metadata                  JSON object
    bin:  ptype:4, payload    payload type, then every remaining whole byte, never inflated
    else: payload             JSON object (inflated when compressed)

The encoder writes the layout of hivemind-bus-client (version 1, left padding to a whole
byte), so its frames match the reference vectors byte for byte.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thalovant.protocol.envelope import HiveMessage, message_type_name, message_type_number
from thalovant.protocol.errors import Wire1Error

__all__ = [
    "BIN_TYPE",
    "MAX_INFLATED",
    "PAYLOAD_NUMBERS",
    "PAYLOAD_TYPES",
    "Wire1Frame",
    "decode_frame",
    "encode_binary",
    "encode_json",
    "payload_type_name",
]

BIN_TYPE = 12
"""Message type number of ``bin`` frames."""

MAX_INFLATED = 32 * 1024 * 1024
"""Cap on any zlib inflation of frame content."""

PAYLOAD_TYPES: Mapping[int, str] = {
    1: "raw_audio",
    2: "numpy_image",
    3: "file",
    4: "stt_transcribe",
    5: "stt_handle",
    6: "tts_audio",
}
"""Binary payload type numbers and the names the SDK gives them."""

PAYLOAD_NUMBERS: Mapping[str, int] = {name: number for number, name in PAYLOAD_TYPES.items()}

_MAX_METADATA = 255


def payload_type_name(number: int) -> str:
    """The name of a payload type number; unnamed numbers read as ``binary:<n>``."""
    return PAYLOAD_TYPES.get(number) or f"binary:{number}"


@dataclass(frozen=True, slots=True)
class Wire1Frame:
    """A decoded WIRE-1 frame.

    For ``bin`` frames ``payload`` is the raw bytes and ``bin_type`` the 4-bit payload type;
    for every other type ``payload`` is the JSON object and ``bin_type`` is ``None``.
    """

    msg_type: str
    metadata: dict[str, Any] = field(default_factory=dict)
    payload: bytes | dict[str, Any] = b""
    bin_type: int | None = None
    version: int | None = None
    compressed: bool = False

    @property
    def kind(self) -> str | None:
        """The payload type name of a ``bin`` frame (``binary:<n>`` if unnamed), else ``None``."""
        return None if self.bin_type is None else payload_type_name(self.bin_type)

    def text(self, key: str) -> str | None:
        """A string metadata value, with an absent, empty or non-string value read as ``None``."""
        value = self.metadata.get(key)
        return value if isinstance(value, str) and value else None

    @property
    def utterance(self) -> str | None:
        return self.text("utterance")

    @property
    def lang(self) -> str | None:
        return self.text("lang")

    @property
    def file_name(self) -> str | None:
        return self.text("file_name")

    def to_envelope(self) -> HiveMessage:
        """The JSON envelope ``{msg_type, payload, metadata}`` a non-``bin`` frame stands for."""
        if not isinstance(self.payload, dict):
            raise Wire1Error("a bin frame carries no JSON envelope")
        return HiveMessage(self.msg_type, self.payload, self.metadata)


# -- decoding ---------------------------------------------------------------------------------


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_INFLATED + 1)
    except zlib.error:
        raise Wire1Error("corrupt zlib stream") from None
    if len(out) > MAX_INFLATED or inflater.unconsumed_tail:
        raise Wire1Error(f"inflated content exceeds {MAX_INFLATED} bytes")
    if not inflater.eof:
        raise Wire1Error("truncated zlib stream")
    return out


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(str(data, "utf-8"))
    except UnicodeDecodeError:
        raise Wire1Error(f"{what} is not valid UTF-8") from None
    except (ValueError, RecursionError):
        raise Wire1Error(f"{what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise Wire1Error(f"{what} is not a JSON object")
    return obj


def _whole_bytes_from(data: bytes, bit: int) -> bytes:
    """All whole bytes of ``data`` starting at absolute bit offset ``bit`` (tail bits dropped)."""
    start, shift = divmod(bit, 8)
    if shift == 0:
        return data[start:]
    tail = data[start:]
    count = len(tail) - 1
    if count <= 0:
        return b""
    value = int.from_bytes(tail, "big") >> (8 - shift)
    return (value & ((1 << (8 * count)) - 1)).to_bytes(count, "big")


def decode_frame(data: bytes) -> Wire1Frame:
    """Decode one WIRE-1 frame; every malformation raises :class:`Wire1Error`."""
    first = 0
    size = len(data)
    while first < size and data[first] == 0:
        first += 1
    if first == size:
        raise Wire1Error("no start bit in binary frame")
    # Header and metadata fit in 4 + 256 + 1 bytes after the start byte.
    window = data[first : first + 262]
    wbits = 8 * len(window)
    value = int.from_bytes(window, "big")
    pos = wbits - value.bit_length() + 1  # bit after the start bit, relative to the window

    def take(count: int) -> int:
        nonlocal pos
        if pos + count > wbits:
            raise Wire1Error("binary frame truncated")
        pos += count
        return (value >> (wbits - pos)) & ((1 << count) - 1)

    version: int | None = None
    if take(1):
        version = take(8)
        if version > 1:
            raise Wire1Error(f"unsupported WIRE-1 version {version}")
    type_number = take(5)
    compressed = bool(take(1))
    metalen = take(8)
    raw_meta = take(8 * metalen).to_bytes(metalen, "big") if metalen else b""
    if compressed and raw_meta:
        raw_meta = _inflate(raw_meta)
    metadata = _json_object(raw_meta, "frame metadata") if raw_meta else {}
    msg_type = message_type_name(type_number)
    if type_number == BIN_TYPE:
        bin_type = take(4)
        payload = _whole_bytes_from(data, 8 * first + pos)
        return Wire1Frame(msg_type, metadata, payload, bin_type, version, compressed)
    body = _whole_bytes_from(data, 8 * first + pos)
    if compressed:
        body = _inflate(body)
    return Wire1Frame(msg_type, metadata, _json_object(body, "frame payload"), None, version, compressed)


# -- encoding ---------------------------------------------------------------------------------


def _metadata_bytes(metadata: Mapping[str, Any] | None, compress: bool | None) -> tuple[bytes, bool]:
    try:
        raw = json.dumps(dict(metadata or {}), allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise Wire1Error(f"metadata is not JSON-serialisable: {exc}") from None
    if compress is None:
        compress = len(raw) > _MAX_METADATA
    if compress:
        raw = zlib.compress(raw)
    if len(raw) > _MAX_METADATA:
        raise Wire1Error("metadata exceeds 255 bytes even when compressed")
    return raw, compress


def _pack(type_number: int, compressed: bool, meta: bytes, tail_bits: int, tail: int, versioned: bool) -> bytes:
    """Start bit, header and metadata (plus ``tail_bits`` of ``tail``), left-padded to whole bytes."""
    if versioned:
        header, header_bits = (1 << 23) | (1 << 22) | (1 << 14) | (type_number << 9), 24
    else:
        header, header_bits = (1 << 15) | (type_number << 9), 16
    header |= (int(compressed) << 8) | len(meta)
    meta_bits = 8 * len(meta)
    total = header_bits + meta_bits + tail_bits
    packed = (header << (meta_bits + tail_bits)) | (int.from_bytes(meta, "big") << tail_bits) | tail
    return packed.to_bytes((total + 7) // 8, "big")


def encode_binary(
    payload: bytes,
    *,
    bin_type: int,
    metadata: Mapping[str, Any] | None = None,
    compress: bool | None = None,
    versioned: bool = True,
) -> bytes:
    """Encode a ``bin`` frame; metadata is compressed when it would exceed 255 bytes.

    The payload itself is never compressed. ``bin_type`` must fit the 4-bit field (0-15).
    """
    if not 0 <= bin_type <= 15:
        raise Wire1Error(f"payload type {bin_type} does not fit in 4 bits")
    meta, compressed = _metadata_bytes(metadata, compress)
    return _pack(BIN_TYPE, compressed, meta, 4, bin_type, versioned) + payload


def encode_json(
    msg_type: str,
    payload: Mapping[str, Any],
    *,
    metadata: Mapping[str, Any] | None = None,
    compress: bool | None = None,
    versioned: bool = True,
) -> bytes:
    """Encode a JSON-carrying message type as a WIRE-1 frame.

    When the metadata is compressed (it would exceed 255 bytes, or ``compress`` is true) the
    payload is compressed too, as the decoder inflates both.
    """
    number = message_type_number(msg_type)
    if number is None or number == BIN_TYPE:
        raise Wire1Error(f"message type {msg_type!r} has no JSON WIRE-1 encoding")
    meta, compressed = _metadata_bytes(metadata, compress)
    try:
        body = json.dumps(dict(payload), allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise Wire1Error(f"payload is not JSON-serialisable: {exc}") from None
    if compressed:
        body = zlib.compress(body)
    return _pack(number, compressed, meta, 0, 0, versioned) + body
