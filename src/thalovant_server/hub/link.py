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

Answers of ``async`` skill handlers come later: the link runs each as a task of its own (at
most :data:`~thalovant_server.hub.skill_guard.MAX_PENDING_PER_SESSION` at once) and sends what
it gives through the sink its carrier session attached (:meth:`HubLink.attach`); a query's
``hive.query.complete`` then follows the late answer. :meth:`HubLink.close` cancels them.

Errors: a transport message that does not decrypt, breaks the framing or does not parse as
an envelope raises :class:`~thalovant.protocol.errors.ProtocolError`; the carrier then
closes this session only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.envelope import BusMessage, HiveMessage, parse_envelope
from thalovant.protocol.errors import EnvelopeError, ProtocolError
from thalovant.protocol.wire1 import Wire1Frame, decode_frame, encode_binary
from thalovant_server.hub.bus_frames import BusFrames
from thalovant_server.hub.router import ClientOrigin, Deferral, Reply, reply_context
from thalovant_server.hub.skill_guard import MAX_PENDING_PER_SESSION

if TYPE_CHECKING:
    from thalovant_server.hub.runtime import HubHost

__all__ = ["QUERY_COMPLETE", "HubLink", "MeshGrantDenied", "Outbound", "Sink"]

log = logging.getLogger(__name__)

QUERY_COMPLETE = "hive.query.complete"
_QUERY_KINDS = frozenset({"query", "cascade"})
_LOCAL_MESH_KINDS = frozenset({"propagate", "escalate"})

Outbound = BusMessage | HiveMessage | Wire1Frame
"""What a session sends: a bus message (sent in a ``bus`` frame), a whole hive frame, or a
WIRE-1 ``bin`` frame (a file or audio a skill sends)."""

Sink = Callable[[Sequence[Outbound]], Awaitable[None]]
"""Seals and sends outbound messages of one session (its carrier's ``deliver``); never raises."""


class MeshGrantDenied(ProtocolError):
    """The client sent a mesh frame it holds no grant for (``broadcast``): disconnect it."""


class HubLink:
    """The secure channel, the origin and the hub of one live client session."""

    __slots__ = ("__weakref__", "_pending", "_sink", "channel", "host", "origin", "pattern")

    def __init__(self, channel: SecureChannel, origin: ClientOrigin, host: HubHost, pattern: str) -> None:
        self.channel = channel
        self.origin = origin
        self.host = host
        self.pattern = pattern
        self._sink: Sink | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def attach(self, sink: Sink) -> None:
        """Where late answers go (the registered carrier session's ``deliver``)."""
        self._sink = sink

    def close(self) -> None:
        """The session ended: cancel the answers still being worked out; nothing more is sent."""
        self._sink = None
        for task in list(self._pending):
            task.cancel()

    @property
    def pending(self) -> int:
        """How many late answers are being worked out."""
        return len(self._pending)

    def _later(self, wrap: Callable[[list[Reply]], list[Outbound]]) -> Deferral:
        """A deferral for the router: runs a late answer as a task, ``wrap`` frames what it gives."""

        def defer(work: Coroutine[Any, Any, list[Reply]]) -> bool:
            if self._sink is None or len(self._pending) >= MAX_PENDING_PER_SESSION:
                return False
            try:
                task = asyncio.get_running_loop().create_task(self._send_later(work, wrap))
            except RuntimeError:  # no running loop: nobody could send it
                return False
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return True

        return defer

    async def _send_later(
        self, work: Coroutine[Any, Any, list[Reply]], wrap: Callable[[list[Reply]], list[Outbound]]
    ) -> None:
        outbound = wrap(await work)
        sink = self._sink
        if sink is not None and outbound:
            await sink(outbound)
        self.host.router.settle()

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
        """Open one inbound transport message; return the sealed replies (maybe none).

        The router's bookkeeping of what it answered (:meth:`HubRouter.settle`) is left to the
        event loop's next turn, after the carrier wrote the replies in this one (done at once
        when no event loop runs)."""
        replies = self._answer(message)
        router = self.host.router
        if router.unsettled:
            try:
                asyncio.get_running_loop().call_soon(router.settle)
            except RuntimeError:
                router.settle()
        return replies

    def _answer(self, message: bytes) -> list[bytes]:
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
            return self.seal_bus(self.host.router.handle(self.origin, envelope.bus_message(), self._later(_as_bus)))
        if kind in _QUERY_KINDS:
            return self._query(envelope)
        if kind in _LOCAL_MESH_KINDS:
            inner = envelope.inner()
            if inner is None or inner.msg_type != "bus":
                return []
            return self.seal_bus(self.host.router.handle(self.origin, inner.bus_message(), self._later(_as_bus)))
        if kind == "broadcast":
            raise MeshGrantDenied("broadcast needs admin standing")
        log.debug("ignored %s frame from client %s", kind, self.origin.client_id)
        return []

    def seal_bus(self, messages: Iterable[Outbound]) -> list[bytes]:
        """Seal bus messages as ``bus`` envelopes (hive frames as they are); one that cannot be
        serialised is skipped."""
        out: list[bytes] = []
        frames = BusFrames()
        for item in messages:
            if isinstance(item, Wire1Frame):
                payload = item.payload if isinstance(item.payload, bytes) else b""
                binary = encode_binary(payload, bin_type=item.bin_type or 0, metadata=item.metadata)
                out.extend(self.channel.seal_binary(binary))
                continue
            try:
                body = item.to_bytes() if isinstance(item, HiveMessage) else frames.body(item)
            except EnvelopeError:
                name = item.msg_type if isinstance(item, HiveMessage) else item.type
                log.error("reply %s is not JSON-serialisable; dropped", name)
                continue
            out.extend(self.channel.seal_json(body))
        return out

    def _query(self, envelope: HiveMessage) -> list[bytes]:
        """A direct query (spec 6.4): answers as ``query`` frames, then ``hive.query.complete``
        (after the late answer, when a skill answers later)."""
        query_id: Any = envelope.metadata.get("query_id", envelope.metadata.get("queryId"))
        inner = envelope.inner()
        if inner is not None and inner.msg_type == "bus":
            request = inner.bus_message()
        else:
            request = BusMessage.from_object(envelope.payload)
        if not request.type:
            return []
        complete = BusMessage(QUERY_COMPLETE, {"query_id": query_id}, reply_context(request.context))
        outstanding = 0  # late answers still to come; the last one carries the completion

        def framed(reply: Reply) -> Outbound:
            if isinstance(reply, Wire1Frame):
                return reply  # a file travels as itself
            payload = {"msg_type": "bus", "payload": reply.to_dict()}
            return HiveMessage(envelope.msg_type, payload, {"query_id": query_id})

        def frames(replies: list[Reply], *, last: bool) -> list[Outbound]:
            return [framed(reply) for reply in (*replies, complete) if last or reply is not complete]

        def late_frames(replies: list[Reply]) -> list[Outbound]:
            nonlocal outstanding
            outstanding -= 1
            return frames(replies, last=outstanding == 0)

        defer = self._later(late_frames)

        def later(work: Coroutine[Any, Any, list[Reply]]) -> bool:
            nonlocal outstanding
            taken = defer(work)
            outstanding += taken
            return taken

        replies = self.host.router.handle(self.origin, request, later)
        return self.seal_bus(frames(replies, last=outstanding == 0))


def _as_bus(messages: list[Reply]) -> list[Outbound]:
    return list(messages)
