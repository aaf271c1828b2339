"""Transport framing after the handshake (spec 3.11): marker bytes, chunking, reassembly.

Every Noise transport message decrypts to one marker byte followed by a body. Bodies larger
than one chunk travel as a first chunk, any number of middle chunks and a last chunk, in
order and without anything else in between. This module turns bodies into marker-prefixed
plaintexts and plaintexts back into complete frames; it neither encrypts nor does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from thalovant.protocol.errors import FramingError

__all__ = [
    "CHUNK_SIZE",
    "MAX_REASSEMBLY",
    "MAX_TRANSPORT_MESSAGE",
    "Frame",
    "Marker",
    "Reassembler",
    "split_plaintext",
]


class Marker(IntEnum):
    """The first byte of every decrypted transport message."""

    JSON = 0x00
    BINARY = 0x01
    JSON_FIRST = 0x02
    BINARY_FIRST = 0x03
    MIDDLE = 0x04
    LAST = 0x05


CHUNK_SIZE = 65000
"""Largest body carried by one transport message (plaintext is one byte more, ciphertext 17)."""

MAX_TRANSPORT_MESSAGE = 65535
"""Largest Noise transport message (ciphertext) either side accepts."""

MAX_REASSEMBLY = 32 * 1024 * 1024
"""Largest body a chunked sequence may reassemble to; anything larger kills the session."""

_JSON = bytes([Marker.JSON])
_BINARY = bytes([Marker.BINARY])
_JSON_FIRST = bytes([Marker.JSON_FIRST])
_BINARY_FIRST = bytes([Marker.BINARY_FIRST])
_MIDDLE = bytes([Marker.MIDDLE])
_LAST = bytes([Marker.LAST])


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete application frame: a JSON envelope (``binary`` false) or a WIRE-1 frame."""

    binary: bool
    body: bytes


def split_plaintext(body: bytes, *, binary: bool, chunk_size: int = CHUNK_SIZE) -> list[bytes]:
    """Return the marker-prefixed plaintexts that carry ``body``, in sending order.

    A body of at most ``chunk_size`` bytes (the empty body included) is one complete frame;
    a larger one is split into a first chunk, middle chunks and a last chunk of at most
    ``chunk_size`` bytes each.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    size = len(body)
    if size <= chunk_size:
        return [(_BINARY if binary else _JSON) + body]
    view = memoryview(body)
    parts = [b"".join((_BINARY_FIRST if binary else _JSON_FIRST, view[:chunk_size]))]
    start = chunk_size
    while size - start > chunk_size:
        parts.append(b"".join((_MIDDLE, view[start : start + chunk_size])))
        start += chunk_size
    parts.append(b"".join((_LAST, view[start:])))
    return parts


class Reassembler:
    """Turns the plaintexts of one direction back into frames, enforcing spec 3.11.

    :meth:`feed` returns a :class:`Frame` when a plaintext completes one and ``None`` while a
    chunked sequence is still open. Any sequencing violation raises :class:`FramingError`;
    the stream is then dead and every later call raises too.
    """

    __slots__ = ("_binary", "_failed", "_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[bytes] | None = None
        self._binary = False
        self._size = 0
        self._failed = False

    @property
    def in_sequence(self) -> bool:
        """True while a chunked sequence has begun and not yet ended."""
        return self._parts is not None

    def feed(self, plaintext: bytes) -> Frame | None:
        """Consume one decrypted transport message; return the frame it completes, if any."""
        if self._failed:
            raise FramingError("the frame stream already failed")
        if not plaintext:
            raise self._error("empty transport plaintext")
        marker = plaintext[0]
        parts = self._parts
        if marker <= Marker.BINARY:
            if parts is not None:
                raise self._error("complete frame inside a chunked sequence")
            return Frame(marker == Marker.BINARY, plaintext[1:])
        if marker == Marker.JSON_FIRST or marker == Marker.BINARY_FIRST:
            if parts is not None:
                raise self._error("first chunk inside another chunked sequence")
            self._binary = marker == Marker.BINARY_FIRST
            self._size = len(plaintext) - 1
            self._check_size()
            self._parts = [plaintext[1:]]
            return None
        if marker == Marker.MIDDLE or marker == Marker.LAST:
            if parts is None:
                raise self._error("middle or last chunk without a first chunk")
            self._size += len(plaintext) - 1
            self._check_size()
            parts.append(plaintext[1:])
            if marker == Marker.MIDDLE:
                return None
            self._parts = None
            return Frame(self._binary, b"".join(parts))
        raise self._error(f"unknown marker 0x{marker:02x}")

    def _check_size(self) -> None:
        if self._size > MAX_REASSEMBLY:
            raise self._error(f"reassembled frame exceeds {MAX_REASSEMBLY} bytes")

    def _error(self, reason: str) -> FramingError:
        self._failed = True
        self._parts = None
        return FramingError(reason)
