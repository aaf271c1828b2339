"""One authenticated client session, independent of the carrier that moves its bytes.

A carrier completes the negotiation, then hands every inbound Noise transport message to
:meth:`HubLink.receive`, which returns the transport messages to send back (already sealed,
in order). Hub-initiated messages are sealed with :meth:`HubLink.seal_bus`. The carrier must
send sealed messages in the order they were sealed (nonces are sequential), so it seals and
writes under one lock per session.

Mesh frames (spec 6.7): this hub has no peers, so ``propagate`` and ``escalate`` are handled
here as their inner bus message (the same routing and allowed types as a plain ``bus``
frame); ``broadcast`` needs admin standing, which no client identity has, so it raises
:class:`MeshGrantDenied` and the carrier disconnects the client, as the spec says a hub does.
WIRE-1 ``bin`` frames (audio, files) are accepted and dropped: no skill takes binary input.

Errors: a transport message that does not decrypt, breaks the framing or does not parse as
an envelope raises :class:`~thalovant.protocol.errors.ProtocolError`; the carrier then
closes this session only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.envelope import BusMessage, HiveMessage, parse_envelope
from thalovant.protocol.errors import EnvelopeError, ProtocolError
from thalovant.protocol.wire1 import decode_frame
from thalovant_server.hub.router import ClientOrigin, reply_context

if TYPE_CHECKING:
    from thalovant_server.hub.runtime import HubHost

__all__ = ["QUERY_COMPLETE", "HubLink", "MeshGrantDenied"]

log = logging.getLogger(__name__)

QUERY_COMPLETE = "hive.query.complete"
_QUERY_KINDS = frozenset({"query", "cascade"})
_LOCAL_MESH_KINDS = frozenset({"propagate", "escalate"})


class MeshGrantDenied(ProtocolError):
    """The client sent a mesh frame it holds no grant for (``broadcast``): disconnect it."""


class HubLink:
    """The secure channel, the origin and the hub of one live client session."""

    __slots__ = ("__weakref__", "channel", "host", "origin", "pattern")

    def __init__(self, channel: SecureChannel, origin: ClientOrigin, host: HubHost, pattern: str) -> None:
        self.channel = channel
        self.origin = origin
        self.host = host
        self.pattern = pattern

    @property
    def session_id(self) -> str:
        """The connection's default session id (from the client's encrypted HELLO)."""
        return self.origin.connection_session_id

    @property
    def client_id(self) -> str:
        return self.origin.client_id

    def hello(self) -> list[bytes]:
        """The hub's own encrypted HELLO: an authenticated frame sent right after the client's."""
        payload = {"node_id": self.host.keys.node_id, "session": {"session_id": self.session_id}}
        return self.channel.seal_json(HiveMessage("hello", payload).to_bytes())

    def receive(self, message: bytes) -> list[bytes]:
        """Open one inbound transport message; return the sealed replies (maybe none)."""
        frame = self.channel.open(message)
        if frame is None:
            return []
        if frame.binary:
            decoded = decode_frame(frame.body)
            if decoded.msg_type == "bin":
                return []  # audio and files: no binary skills yet
            envelope = decoded.to_envelope()
        else:
            envelope = parse_envelope(frame.body)
        kind = envelope.msg_type
        if kind == "bus":
            return self.seal_bus(self.host.router.handle(self.origin, envelope.bus_message()))
        if kind in _QUERY_KINDS:
            return self._query(envelope)
        if kind in _LOCAL_MESH_KINDS:
            inner = envelope.inner()
            if inner is None or inner.msg_type != "bus":
                return []
            return self.seal_bus(self.host.router.handle(self.origin, inner.bus_message()))
        if kind == "broadcast":
            raise MeshGrantDenied("broadcast needs admin standing")
        log.debug("ignored %s frame from client %s", kind, self.origin.client_id)
        return []

    def seal_bus(self, messages: Iterable[BusMessage]) -> list[bytes]:
        """Seal bus messages as ``bus`` envelopes; one that cannot be serialised is skipped."""
        out: list[bytes] = []
        for bus in messages:
            try:
                body = HiveMessage("bus", bus.to_dict()).to_bytes()
            except EnvelopeError:
                log.error("reply %s is not JSON-serialisable; dropped", bus.type)
                continue
            out.extend(self.channel.seal_json(body))
        return out

    def _query(self, envelope: HiveMessage) -> list[bytes]:
        """A direct query (spec 6.4): answers as ``query`` frames, then ``hive.query.complete``."""
        query_id: Any = envelope.metadata.get("query_id", envelope.metadata.get("queryId"))
        inner = envelope.inner()
        if inner is not None and inner.msg_type == "bus":
            request = inner.bus_message()
        else:
            request = BusMessage.from_object(envelope.payload)
        if not request.type:
            return []
        replies = self.host.router.handle(self.origin, request)
        replies.append(BusMessage(QUERY_COMPLETE, {"query_id": query_id}, reply_context(request.context)))
        out: list[bytes] = []
        for bus in replies:
            frame = HiveMessage(
                envelope.msg_type, {"msg_type": "bus", "payload": bus.to_dict()}, {"query_id": query_id}
            )
            try:
                body = frame.to_bytes()
            except EnvelopeError:
                log.error("query reply %s is not JSON-serialisable; dropped", bus.type)
                continue
            out.extend(self.channel.seal_json(body))
        return out
