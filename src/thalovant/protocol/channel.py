"""The secure channel of an established session: Noise transport plus framing (spec 3.11).

``seal_*`` turn one application body into the transport messages that carry it (each at
most 65535 bytes); ``open`` decrypts one transport message and returns the frame it
completes. Messages must be opened in the order they were sealed: nonces are sequential.
"""

from __future__ import annotations

from thalovant.protocol.errors import FramingError
from thalovant.protocol.framing import (
    CHUNK_SIZE,
    MAX_TRANSPORT_MESSAGE,
    Frame,
    Marker,
    Reassembler,
    split_plaintext,
)
from thalovant.protocol.noise import CipherState

__all__ = ["SecureChannel"]

_JSON = bytes([Marker.JSON])
_BINARY = bytes([Marker.BINARY])


class SecureChannel:
    """Both directions of one session's transport: ``send`` seals, ``recv`` opens.

    Decryption failures (tamper, replay, reorder, wrong key) raise
    :class:`~thalovant.protocol.errors.DecryptError`; framing violations and oversize
    messages raise :class:`FramingError`. Either is fatal for the session.
    """

    __slots__ = ("_reassembler", "_recv", "_send")

    def __init__(self, send: CipherState, recv: CipherState) -> None:
        self._send = send
        self._recv = recv
        self._reassembler = Reassembler()

    def seal_json(self, body: bytes) -> list[bytes]:
        """Transport messages carrying one JSON envelope body (chunked above 65000 bytes)."""
        if len(body) <= CHUNK_SIZE:
            return [self._send.encrypt(_JSON + body)]
        encrypt = self._send.encrypt
        return [encrypt(part) for part in split_plaintext(body, binary=False)]

    def seal_binary(self, body: bytes) -> list[bytes]:
        """Transport messages carrying one WIRE-1 frame (chunked above 65000 bytes)."""
        if len(body) <= CHUNK_SIZE:
            return [self._send.encrypt(_BINARY + body)]
        encrypt = self._send.encrypt
        return [encrypt(part) for part in split_plaintext(body, binary=True)]

    def open(self, message: bytes) -> Frame | None:
        """Decrypt one transport message; return the frame it completes, else ``None``."""
        if len(message) > MAX_TRANSPORT_MESSAGE:
            raise FramingError(f"transport message of {len(message)} bytes exceeds {MAX_TRANSPORT_MESSAGE}")
        return self._reassembler.feed(self._recv.decrypt(message))
