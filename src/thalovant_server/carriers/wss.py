"""The hub side of the WSS carrier (spec 4.1): I/O only, the protocol is the engine's.

One WebSocket per session. Phases:

1. the ``authorization`` query (percent-encoded base64 of ``useragent:access_key``) is
   decoded; malformed gives close 1008;
2. an unknown hub or key gives a close frame without status (read as a refusal) and nothing
   else;
3. the cleartext negotiation runs in TEXT messages: HELLO and offer, message 1, message 2,
   (message 3); any abort (wrong password, contradicting client key, malformed handshake,
   ``default`` session id, timeout) closes without status at once;
4. the client's encrypted HELLO arrives in the first BINARY message; a newly seen client key
   is pinned (TOFU), the session is registered and the hub's own encrypted HELLO is sent at
   once, so that any later close reads as a drop, not a refusal;
5. after that only BINARY messages, one Noise transport message each, both ways.

Phases 1-4 run inside the runtime's admission (:meth:`HubRuntime.admission`), after the
upgrade was answered (the client's open timeout runs until then): a herd of reconnecting
clients is set up a few at a time, in order. In phase 5 each message is opened, answered and
the answer written in the event loop's callback that parsed it (every message of one answer in
one write); a malformed frame closes that session only (1002). A client that leaves more than
:data:`MAX_UNREAD` bytes of pushed messages unread is closed with 1013. The WebSocket layer is
:mod:`thalovant_server.carriers.websocket`; :func:`websocket_route` is its route to this
carrier. TCP_NODELAY is set by the event loop's transports (asyncio and uvloop set it on every
TCP socket); ``tests/server/test_wss.py`` checks it on the live sockets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, unquote_to_bytes

from thalovant.protocol.errors import NegotiationAborted, ProtocolError
from thalovant.protocol.negotiation import ClientHello, HubNegotiation
from thalovant_server.carriers.handshake import link_for, pin_when_complete
from thalovant_server.carriers.websocket import Message, Route, Session, WebSocketConnection
from thalovant_server.hub.directory import ClientCredentials
from thalovant_server.hub.link import HubLink, MeshGrantDenied, Outbound
from thalovant_server.hub.runtime import HubRuntime

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "MalformedAuthorization",
    "WSSSession",
    "parse_authorization",
    "serve_websocket",
    "websocket_route",
]

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 30.0
"""Seconds from the upgrade to the client's encrypted HELLO before the socket is dropped."""

MAX_NEGOTIATION_TEXT = 262144
"""Largest negotiation TEXT message accepted (a hex Noise message is at most 131070 chars)."""

MAX_UNREAD = 4 * 1024 * 1024
"""Bytes of pushed messages a session may leave unread before it is closed (1013)."""

HUB_PATH = "/hubs/"

CLOSE_MALFORMED_AUTH = 1008
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_LATER = 1013


class MalformedAuthorization(ValueError):
    """The ``authorization`` query item is missing or does not decode."""


@dataclass(frozen=True, slots=True)
class Credential:
    useragent: str
    access_key: str

    def __repr__(self) -> str:  # never log the key
        return f"Credential(useragent={self.useragent!r})"


def parse_authorization(query_string: bytes) -> Credential:
    """Decode ``authorization`` from a raw query string: percent, base64, UTF-8, last colon.

    The last ``authorization`` item wins. ``+`` is kept as a base64 character (the value is
    percent-decoded, not form-decoded); missing base64 padding is tolerated.
    """
    raw: bytes | None = None
    for item in query_string.split(b"&"):
        name, _, value = item.partition(b"=")
        if unquote_to_bytes(name) == b"authorization":
            raw = value
    if raw is None:
        raise MalformedAuthorization("no authorization query item")
    encoded = unquote_to_bytes(raw).strip()
    if not encoded or len(encoded) > 4096:
        raise MalformedAuthorization("empty or oversized authorization")
    encoded += b"=" * (-len(encoded) % 4)
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise MalformedAuthorization("authorization is not base64 of UTF-8 text") from None
    useragent, colon, access_key = decoded.rpartition(":")
    if not colon or not access_key:
        raise MalformedAuthorization("authorization has no access key")
    return Credential(useragent, access_key)


class WSSSession:
    """An authenticated WebSocket session.

    Sealing and writing happen in one synchronous step (no ``await`` between them), so the
    nonce order of the sealed messages is the order they go out in, with no lock.
    """

    __slots__ = ("_closed", "link", "socket")

    carrier = "wss"

    def __init__(self, socket: WebSocketConnection, link: HubLink) -> None:
        self.socket = socket
        self.link = link
        self._closed = False

    def on_message(self, message: Message) -> None:
        """Open one inbound message and write the replies it produces (the socket's dispatch)."""
        if self._closed:
            return
        if isinstance(message, str):
            log.info("text frame after the handshake from client %s; closing", self.link.client_id)
            self._end(CLOSE_PROTOCOL_ERROR, "text after handshake")
            return
        try:
            replies = self.link.receive(message)
        except MeshGrantDenied as exc:
            log.info("client %s sent a frame it holds no grant for: %s", self.link.client_id, exc)
            self._end(CLOSE_POLICY, "not allowed")
            return
        except ProtocolError as exc:
            log.info("malformed frame from client %s: %s", self.link.client_id, type(exc).__name__)
            self._end(CLOSE_PROTOCOL_ERROR, "malformed frame")
            return
        if replies:
            self.socket.send_binary(replies)

    async def deliver(self, messages: Sequence[Outbound]) -> None:
        if self._closed:
            return
        self.socket.send_binary(self.link.seal_bus(messages))
        if self.socket.buffered() > MAX_UNREAD:
            log.info("client %s leaves its messages unread; closing", self.link.client_id)
            self._end(CLOSE_TRY_LATER, "messages left unread")

    async def terminate(self, reason: str) -> None:
        if self._closed:
            return
        log.info("closing session of client %s: %s", self.link.client_id, reason)
        self._end(CLOSE_POLICY if "revoked" in reason else CLOSE_GOING_AWAY, reason)

    def _end(self, code: int, reason: str) -> None:
        self._closed = True
        self.socket.close(code, reason)


def websocket_route(runtime_of: Callable[[], HubRuntime | None]) -> Route:
    """The listener's WebSocket route: ``/hubs/{hub_id}`` is this carrier, nothing else is served.

    ``runtime_of`` gives the hub runtime once the server started (until then the socket is
    closed with 1013).
    """

    def route(path: str) -> Session | None:
        raw_path, _, query = path.partition("?")
        if not raw_path.startswith(HUB_PATH):
            return None
        hub_id = unquote(raw_path[len(HUB_PATH) :])
        if not hub_id or "/" in hub_id:
            return None

        async def session(socket: WebSocketConnection) -> None:
            runtime = runtime_of()
            if runtime is None:
                socket.close(CLOSE_TRY_LATER, "hub runtime not ready")
                return
            await serve_websocket(socket, runtime, hub_id, query.encode("utf-8", "surrogateescape"))

        return session

    return route


async def _negotiate(
    socket: WebSocketConnection, negotiation: HubNegotiation, runtime: HubRuntime, creds: ClientCredentials
) -> ClientHello | None:
    """Run the cleartext negotiation; the client's HELLO, or ``None`` if the client left.

    A client key seen for the first time is pinned as soon as the handshake completes, so a
    concurrent session with another key loses at once.
    """
    for opening in negotiation.opening():
        socket.send_text(opening)
    while True:
        message = await socket.receive()
        if message is None:
            return None
        if isinstance(message, str):
            if len(message) > MAX_NEGOTIATION_TEXT:
                raise NegotiationAborted("negotiation message too large")
            for reply in negotiation.receive_text(message):
                socket.send_text(reply)
            await pin_when_complete(runtime, creds, negotiation)
            continue
        return negotiation.receive_binary(message)


async def serve_websocket(socket: WebSocketConnection, runtime: HubRuntime, hub_id: str, query_string: bytes) -> None:
    """Serve one upgraded WebSocket at ``/hubs/{hub_id}`` until either side closes."""
    async with runtime.admission():
        live = await _set_up(socket, runtime, hub_id, query_string)
    if live is None:
        return
    try:
        socket.dispatch(live.on_message)
        await socket.wait_closed()
    finally:
        runtime.unregister(live)


async def _set_up(
    socket: WebSocketConnection, runtime: HubRuntime, hub_id: str, query_string: bytes
) -> WSSSession | None:
    """Phases 1-4 after the upgrade: the registered session once the hub's HELLO went out, else
    ``None`` (closed)."""
    try:
        credential = parse_authorization(query_string)
    except MalformedAuthorization as exc:
        log.info("malformed WSS authorization for hub %s: %s", hub_id, exc)
        runtime.count_refusal("malformed")
        socket.close(CLOSE_MALFORMED_AUTH, "malformed authorization")
        return None
    host = await runtime.host(hub_id)
    creds = await runtime.credentials(host.hub_id, credential.access_key) if host is not None else None
    if host is None or creds is None or not host.keys.serves("wss"):
        log.info("WSS refused for hub %s: unknown hub or access key", hub_id)
        runtime.count_refusal("unknown")
        socket.close()
        return None
    negotiation = HubNegotiation(
        node_id=host.keys.node_id, static=host.keys.static, psk=creds.psk, pinned_client_key=creds.pinned_key
    )
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            hello = await _negotiate(socket, negotiation, runtime, creds)
        if hello is None:
            return None
    except (ProtocolError, TimeoutError) as exc:
        socket.close()  # without status, first: the client reads it as the verdict on the handshake
        log.info("WSS negotiation for client %s aborted: %s", creds.client_id, type(exc).__name__)
        runtime.count_refusal("aborted")
        return None
    if not socket.is_open:
        return None
    live = WSSSession(socket, link_for(negotiation, hello, creds, host, carrier="wss"))
    if not runtime.register(live):
        socket.close()
        return None
    log.info("WSS session open: hub=%s client=%s pattern=%s", hub_id, creds.client_id, negotiation.pattern)
    socket.send_binary(live.link.hello())
    return live
