"""One HTTPS polling session of the hub (spec 4.2): its phase and its two queues.

The HTTPS carrier (:mod:`thalovant_server.carriers.https`) keeps one :class:`PollingSession`
per (hub, access key) and moves requests in and out of it; everything here is synchronous, so
sealing a frame and queueing it can never be interleaved with another request:

- ``texts``: the cleartext negotiation messages (HELLO, offer, message 2) not yet polled;
- ``outbound``: sealed Noise transport messages not yet polled, in seal (nonce) order.

Phases: HANDSHAKE (the engine negotiates) -> READY (registered with the runtime as a
``LiveSession``: replies and pushes are queued) -> ENDED (aborted, superseded, expired,
terminated, disconnected: every request but ``/disconnect`` gets 401). A client that stops
polling cannot make the hub hold unbounded memory: past :data:`MAX_OUTBOUND_MESSAGES` or
:data:`MAX_OUTBOUND_BYTES` queued, the session ends instead.
"""

from __future__ import annotations

import base64
import enum
import json
import logging
from collections.abc import Sequence
from typing import Final

from thalovant.protocol.negotiation import HubNegotiation
from thalovant_server.hub.directory import ClientCredentials
from thalovant_server.hub.link import HubLink, Outbound
from thalovant_server.hub.runtime import HubHost, HubRuntime

__all__ = [
    "MAX_OUTBOUND_BYTES",
    "MAX_OUTBOUND_MESSAGES",
    "MAX_POLL_BYTES",
    "Phase",
    "PollingSession",
]

log = logging.getLogger(__name__)

MAX_OUTBOUND_MESSAGES: Final = 4096
"""Most transport messages queued for a client that does not poll; more ends the session."""

MAX_OUTBOUND_BYTES: Final = 32 * 1024 * 1024
"""Most bytes of transport messages queued for one client; more ends the session."""

MAX_POLL_BYTES: Final = 4 * 1024 * 1024
"""Bytes of transport messages one ``/get_binary_messages`` answer carries at most (at least
one message); the rest waits for the next poll."""

_NO_MESSAGES: Final = b'{"messages":[]}'
_NO_BINARY_MESSAGES: Final = b'{"b64_messages":[]}'


class Phase(enum.Enum):
    """Where a session is: negotiating, authenticated (registered), or over."""

    HANDSHAKE = "handshake"
    READY = "ready"
    ENDED = "ended"


class PollingSession:
    """One client's polling session; once READY it is the runtime's ``LiveSession``.

    ``texts`` holds the cleartext negotiation messages not yet polled, ``outbound`` the sealed
    transport messages not yet polled, both in order. An ENDED session stays in its carrier's
    table until ``/disconnect``, a new ``/connect`` or the idle sweep, answering 401.
    """

    carrier = "http"

    __slots__ = (
        "__weakref__",
        "_link",
        "access_key",
        "creds",
        "ended",
        "host",
        "hub_id",
        "last_seen",
        "negotiation",
        "outbound",
        "outbound_bytes",
        "phase",
        "runtime",
        "started",
        "texts",
    )

    def __init__(
        self,
        host: HubHost,
        access_key: str,
        runtime: HubRuntime,
        creds: ClientCredentials,
        negotiation: HubNegotiation,
        now: float,
    ) -> None:
        self.host = host
        self.hub_id = host.hub_id
        self.access_key = access_key
        self.runtime = runtime
        self.creds = creds
        self.negotiation: HubNegotiation | None = negotiation
        self.phase = Phase.HANDSHAKE
        self.started = now
        self.last_seen = now
        self.texts: list[str] = negotiation.opening()
        self.outbound: list[bytes] = []
        self.outbound_bytes = 0
        self.ended = ""
        self._link: HubLink | None = None

    def __repr__(self) -> str:  # never show the access key
        return f"PollingSession(hub={self.hub_id!r}, client={self.creds.client_id!r}, phase={self.phase.value})"

    @property
    def over(self) -> bool:
        """True once the session ended (aborted, superseded, expired, terminated)."""
        return self.phase is Phase.ENDED

    # -- LiveSession ---------------------------------------------------------------------------

    @property
    def link(self) -> HubLink:
        """The authenticated link (only READY sessions are ever registered with the runtime)."""
        if self._link is None:
            raise RuntimeError("the session has no link before its handshake completed")
        return self._link

    async def deliver(self, messages: Sequence[Outbound]) -> None:
        """Seal hub-initiated bus messages into the outbound queue; never raises."""
        if self.phase is not Phase.READY or self._link is None:
            return
        try:
            self.enqueue(self._link.seal_bus(messages))
        except Exception as exc:
            log.warning("push to HTTPS client %s failed: %s", self.creds.client_id, type(exc).__name__)
            self.end("push failed")

    async def terminate(self, reason: str) -> None:
        """End the session from the hub side: later requests get 401; never raises."""
        if self.phase is not Phase.ENDED:
            log.info("ending HTTPS session of client %s: %s", self.creds.client_id, reason)
        self.end(reason)

    # -- state ---------------------------------------------------------------------------------

    def enqueue(self, sealed: list[bytes]) -> None:
        """Queue sealed transport messages; past the caps the session ends instead."""
        if not sealed or self.phase is not Phase.READY:
            return
        size = self.outbound_bytes + sum(len(message) for message in sealed)
        if len(self.outbound) + len(sealed) > MAX_OUTBOUND_MESSAGES or size > MAX_OUTBOUND_BYTES:
            log.warning("outbound queue of HTTPS client %s is full; ending its session", self.creds.client_id)
            self.end("outbound queue full")
            return
        self.outbound.extend(sealed)
        self.outbound_bytes = size

    def go_live(self, link: HubLink) -> bool:
        """Become the live session of ``link`` and queue the hub's encrypted HELLO.

        ``False`` (and ENDED) when the runtime refuses it: client revoked, hub reloaded.
        """
        self._link = link
        self.negotiation = None
        self.phase = Phase.READY
        if not self.runtime.register(self):
            self._link = None
            self.end("refused by the runtime")
            return False
        self.enqueue(link.hello())
        return True

    def end(self, reason: str) -> None:
        """Move to ENDED (idempotent): unregister, drop queues and negotiation state."""
        if self.phase is Phase.ENDED:
            return
        if self.phase is Phase.READY:
            self.runtime.unregister(self)
        self.phase = Phase.ENDED
        self.ended = reason
        self.negotiation = None
        self.texts = []
        self.outbound = []
        self.outbound_bytes = 0

    def take_texts(self) -> bytes:
        """The ``/get_messages`` body, emptying the cleartext queue."""
        texts = self.texts
        if not texts:
            return _NO_MESSAGES
        self.texts = []
        return b'{"messages":' + json.dumps(texts).encode("ascii") + b"}"

    def take_outbound(self) -> bytes:
        """The ``/get_binary_messages`` body: queued messages as standard base64, in order.

        Takes the whole queue, or as many messages as fit :data:`MAX_POLL_BYTES` (at least one).
        """
        outbound = self.outbound
        if not outbound:
            return _NO_BINARY_MESSAGES
        if self.outbound_bytes <= MAX_POLL_BYTES:
            taken, self.outbound, self.outbound_bytes = outbound, [], 0
        else:
            count, size = 0, 0
            while count < len(outbound) and (count == 0 or size + len(outbound[count]) <= MAX_POLL_BYTES):
                size += len(outbound[count])
                count += 1
            taken, self.outbound = outbound[:count], outbound[count:]
            self.outbound_bytes -= size
        encoded = b'","'.join(base64.b64encode(message) for message in taken)
        return b'{"b64_messages":["' + encoded + b'"]}'
