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
clients is set up a few at a time, in order. A malformed frame closes that
session only (1002); nothing raised escapes the connection's
task. TCP_NODELAY is set by the event loop's transports (asyncio and uvloop set it on every
TCP socket); ``tests/server/test_wss.py`` checks it on the live sockets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from starlette.websockets import WebSocket, WebSocketDisconnect

from thalovant.protocol.errors import NegotiationAborted, ProtocolError
from thalovant.protocol.negotiation import ClientHello, HubNegotiation
from thalovant_server.carriers.handshake import link_for, pin_when_complete
from thalovant_server.hub.directory import ClientCredentials
from thalovant_server.hub.link import HubLink, MeshGrantDenied, Outbound
from thalovant_server.hub.runtime import HubRuntime

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "MalformedAuthorization",
    "WSSSession",
    "parse_authorization",
    "serve_websocket",
]

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 30.0
"""Seconds from the upgrade to the client's encrypted HELLO before the socket is dropped."""

MAX_NEGOTIATION_TEXT = 262144
"""Largest negotiation TEXT message accepted (a hex Noise message is at most 131070 chars)."""

CLOSE_MALFORMED_AUTH = 1008
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008
CLOSE_GOING_AWAY = 1001


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
    """An authenticated WebSocket session: seals and writes under one lock (nonce order)."""

    __slots__ = ("_closed", "_lock", "link", "ws")

    carrier = "wss"

    def __init__(self, ws: WebSocket, link: HubLink) -> None:
        self.ws = ws
        self.link = link
        self._lock = asyncio.Lock()
        self._closed = False

    async def send_sealed(self, messages: list[bytes]) -> None:
        """Write already sealed transport messages (caller holds the lock)."""
        send = self.ws.send_bytes
        for message in messages:
            await send(message)

    async def answer(self, message: bytes) -> None:
        """Open one inbound transport message and send the replies it produces."""
        async with self._lock:
            replies = self.link.receive(message)
            if replies:
                await self.send_sealed(replies)

    async def deliver(self, messages: Sequence[Outbound]) -> None:
        if self._closed:
            return
        try:
            async with self._lock:
                await self.send_sealed(self.link.seal_bus(messages))
        except Exception as exc:
            log.debug("push to a closing session failed: %s", exc)

    async def terminate(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        log.info("closing session of client %s: %s", self.link.client_id, reason)
        with contextlib.suppress(Exception):
            await self.ws.close(CLOSE_POLICY if "revoked" in reason else CLOSE_GOING_AWAY, reason)


async def _close_without_status(ws: WebSocket) -> None:
    """A close frame with an empty payload (the client reads 1005, a refusal)."""
    with contextlib.suppress(Exception):
        await ws.send({"type": "websocket.close", "code": None, "reason": ""})


async def _close(ws: WebSocket, code: int, reason: str = "") -> None:
    with contextlib.suppress(Exception):
        await ws.close(code, reason)


async def _negotiate(
    ws: WebSocket, negotiation: HubNegotiation, runtime: HubRuntime, creds: ClientCredentials
) -> ClientHello | None:
    """Run the cleartext negotiation; the client's HELLO, or ``None`` if the client left.

    A client key seen for the first time is pinned as soon as the handshake completes, so a
    concurrent session with another key loses at once.
    """
    for opening in negotiation.opening():
        await ws.send_text(opening)
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is not None:
            if len(text) > MAX_NEGOTIATION_TEXT:
                raise NegotiationAborted("negotiation message too large")
            for reply in negotiation.receive_text(text):
                await ws.send_text(reply)
            await pin_when_complete(runtime, creds, negotiation)
            continue
        data = message.get("bytes")
        if data is not None:
            return negotiation.receive_binary(data)


async def serve_websocket(ws: WebSocket, runtime: HubRuntime) -> None:
    """Serve one WebSocket at ``/hubs/{hub_id}`` until either side closes; never raises."""
    try:
        await _serve(ws, runtime)
    except (WebSocketDisconnect, OSError):
        return  # the client went away mid-send
    except Exception:
        log.exception("WSS session failed")
        await _close(ws, 1011)


async def _serve(ws: WebSocket, runtime: HubRuntime) -> None:
    hub_id = str(ws.path_params.get("hub_id", ""))
    query_string = ws.scope.get("query_string", b"")
    # the server logs the request line on accept: keep the credential out of it
    ws.scope["query_string"] = b"authorization=REDACTED" if b"authorization" in query_string else b""
    await ws.accept()  # at once: the client's open timeout runs until the upgrade is answered
    async with runtime.admission():
        live = await _set_up(ws, runtime, hub_id, query_string)
    if live is None:
        return
    try:
        await _transport(ws, live)
    finally:
        runtime.unregister(live)


async def _set_up(ws: WebSocket, runtime: HubRuntime, hub_id: str, query_string: bytes) -> WSSSession | None:
    """Phases 1-4 after the upgrade: the registered session once the hub's HELLO went out, else
    ``None`` (closed)."""
    try:
        credential = parse_authorization(query_string)
    except MalformedAuthorization as exc:
        log.info("malformed WSS authorization for hub %s: %s", hub_id, exc)
        runtime.count_refusal("malformed")
        await _close(ws, CLOSE_MALFORMED_AUTH, "malformed authorization")
        return None
    host = await runtime.host(hub_id)
    creds = await runtime.credentials(host.hub_id, credential.access_key) if host is not None else None
    if host is None or creds is None or not host.keys.serves("wss"):
        log.info("WSS refused for hub %s: unknown hub or access key", hub_id)
        runtime.count_refusal("unknown")
        await _close_without_status(ws)
        return None
    negotiation = HubNegotiation(
        node_id=host.keys.node_id, static=host.keys.static, psk=creds.psk, pinned_client_key=creds.pinned_key
    )
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            hello = await _negotiate(ws, negotiation, runtime, creds)
        if hello is None:
            return None
    except (ProtocolError, TimeoutError) as exc:
        await _close_without_status(ws)  # first: the client reads it as the verdict on the handshake
        log.info("WSS negotiation for client %s aborted: %s", creds.client_id, type(exc).__name__)
        runtime.count_refusal("aborted")
        return None
    live = WSSSession(ws, link_for(negotiation, hello, creds, host, carrier="wss"))
    if not runtime.register(live):
        await _close_without_status(ws)
        return None
    log.info("WSS session open: hub=%s client=%s pattern=%s", hub_id, creds.client_id, negotiation.pattern)
    try:
        async with live._lock:
            await live.send_sealed(live.link.hello())
    except BaseException:
        runtime.unregister(live)
        raise
    return live


async def _transport(ws: WebSocket, live: WSSSession) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is None:
            log.info("text frame after the handshake from client %s; closing", live.link.client_id)
            await _close(ws, CLOSE_PROTOCOL_ERROR, "text after handshake")
            return
        try:
            await live.answer(data)
        except MeshGrantDenied as exc:
            log.info("client %s sent a frame it holds no grant for: %s", live.link.client_id, exc)
            live._closed = True
            await _close(ws, CLOSE_POLICY, "not allowed")
            return
        except ProtocolError as exc:
            log.info("malformed frame from client %s: %s", live.link.client_id, type(exc).__name__)
            live._closed = True
            await _close(ws, CLOSE_PROTOCOL_ERROR, "malformed frame")
            return
