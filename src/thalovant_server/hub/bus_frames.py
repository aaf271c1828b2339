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

from thalovant.protocol.envelope import BusMessage, HiveMessage, encode_json

__all__ = ["BusFrames"]

# A bus envelope cut around the three values of its payload (BusMessage.to_dict's keys, in
# order): the bytes around them are what HiveMessage.to_bytes writes.
_MARKED = HiveMessage("bus", {"type": "\0type", "data": "\0data", "context": "\0context"}).to_bytes()
_HEAD, _rest = _MARKED.split(b'"\\u0000type"')
_AFTER_TYPE, _rest = _rest.split(b'"\\u0000data"')
_AFTER_DATA, _TAIL = _rest.split(b'"\\u0000context"')

_NONE = object()


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
            self._context, self._context_json = context, encode_json(context)
        type_json, data_json = encode_json(message.type), encode_json(message.data)
        return b"".join((_HEAD, type_json, _AFTER_TYPE, data_json, _AFTER_DATA, self._context_json, _TAIL))
