"""The JSON bodies of ``bus`` frames, for a batch of bus messages sent together.

Every message of one answer (each ``speak``, then ``ovos.utterance.handled``) carries the same
reply context, the largest part of each frame. :class:`BusFrames` encodes a context once for
consecutive messages that share it (the same object) and splices it into each body.

Contract: :meth:`BusFrames.body` returns exactly the bytes of
``HiveMessage("bus", message.to_dict()).to_bytes()`` and raises
:class:`~thalovant.protocol.errors.EnvelopeError` where that would. Nothing may change a
context between the messages of a batch that share it (a batch is encoded in one go).
"""

from __future__ import annotations

import json
from typing import Any

from thalovant.protocol.envelope import BusMessage, HiveMessage
from thalovant.protocol.errors import EnvelopeError

__all__ = ["BusFrames"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
"""The envelope's own JSON settings (:meth:`HiveMessage.to_bytes`): compact, ASCII, no NaN."""

# A bus envelope cut around the three values of its payload (BusMessage.to_dict's keys, in
# order): the bytes around them are what HiveMessage.to_bytes writes.
_MARKED = HiveMessage("bus", {"type": "\0type", "data": "\0data", "context": "\0context"}).to_bytes()
_HEAD, _rest = _MARKED.split(b'"\\u0000type"')
_AFTER_TYPE, _rest = _rest.split(b'"\\u0000data"')
_AFTER_DATA, _TAIL = _rest.split(b'"\\u0000context"')

_NONE = object()


def _encode(value: Any) -> bytes:
    try:
        return _ENCODER.encode(value).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise EnvelopeError(f"envelope is not JSON-serialisable: {exc}") from None


class BusFrames:
    """Encodes the ``bus`` envelopes of one batch; a context shared by consecutive messages
    is encoded once."""

    __slots__ = ("_context", "_context_json")

    def __init__(self) -> None:
        self._context: object = _NONE
        self._context_json = b""

    def body(self, message: BusMessage) -> bytes:
        """The compact JSON of the ``bus`` envelope carrying ``message``."""
        context = message.context
        if context is not self._context:
            encoded = _encode(context)
            self._context, self._context_json = context, encoded
        return b"".join(
            (_HEAD, _encode(message.type), _AFTER_TYPE, _encode(message.data), _AFTER_DATA, self._context_json, _TAIL)
        )
