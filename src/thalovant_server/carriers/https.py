"""The hub side of the HTTPS polling carrier (spec 4.2): I/O only, the protocol is the engine's.

Every hub's polling base is ``/hubs/{hub_id}`` on the shared TLS port::

    POST /hubs/{hub_id}/connect              start a fresh session for the credential
    GET  /hubs/{hub_id}/get_messages         {"messages": [cleartext JSON, ...]}
    GET  /hubs/{hub_id}/get_binary_messages  {"b64_messages": [base64 transport message, ...]}
    POST /hubs/{hub_id}/send_message         form: message=<JSON> | message=<base64>&binary=1
    POST /hubs/{hub_id}/disconnect           always 200

Every request names its client with the ``authorization`` query item (as on WSS); a session is
keyed by (hub id, access key), one per key, and a new ``/connect`` supersedes the old one.

Answers, all JSON objects, all at once (no long-poll, no redirect, no rate limit):

- a credential that is malformed or unknown, a hub that is unknown or does not serve ``http``,
  and every request of a session that is unknown, aborted, expired or ended: 401
  ``{"error":"Unauthorized"}``. The request that makes the negotiation abort (a KK message 1
  that does not authenticate, a client key contradicting the pin, a malformed handshake, the
  ``default`` session id) gets the 401 itself, so the client sees it while it sends its final
  frames;
- ``/disconnect`` never fails: ``{"status":"Disconnected"}`` when a session (live or ended)
  was dropped, else ``{"error":"Already Disconnected"}``;
- a malformed form, bad base64 or a frame that breaks the session: 400; an oversized body: 413.

Once the handshake is complete ``/get_messages`` is always empty; the hub's frames (its own
encrypted HELLO first, then replies and pushes) wait in the session's outbound queue in the
order they were sealed (:class:`~thalovant_server.carriers.polling.PollingSession`). Sealing
and queueing happen without an ``await`` in between, so the nonce order is the queue order
without a lock.

A poll is a bare ASGI endpoint: a dictionary lookup and a pre-encoded answer; nothing on it
touches the database (only ``/connect`` reads the client's credentials).
One sweeper task per :class:`PollingCarrier` (running only while it holds sessions) drops the
sessions nobody polled for ``idle_timeout`` seconds and aborts handshakes older than
``handshake_timeout``. The access key is never logged and the query string is replaced in the
request scope before any response, so an access log cannot show it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from thalovant.protocol.errors import ProtocolError
from thalovant.protocol.negotiation import HubNegotiation
from thalovant_server.carriers.handshake import link_for, pin_when_complete
from thalovant_server.carriers.polling import Phase, PollingSession
from thalovant_server.carriers.wss import Credential, MalformedAuthorization, parse_authorization
from thalovant_server.hub.runtime import HubRuntime

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "IDLE_TIMEOUT",
    "IDLE_TIMEOUT_ENV",
    "MAX_BODY",
    "REPLICA_COOKIE",
    "PollingCarrier",
    "idle_timeout_from_env",
]

log = logging.getLogger(__name__)

IDLE_TIMEOUT: Final = 60.0
"""Seconds without any request after which a session is dropped (and unregistered)."""

IDLE_TIMEOUT_ENV: Final = "THALOVANT_HTTPS_IDLE_TIMEOUT"
"""Environment variable that overrides :data:`IDLE_TIMEOUT` (seconds, a positive number)."""

HANDSHAKE_TIMEOUT: Final = 30.0
"""Seconds from ``/connect`` to the client's encrypted HELLO before the session is aborted."""

MAX_BODY: Final = 512 * 1024
"""Largest ``/send_message`` body (a transport message is at most 65535 bytes: 87 KiB of
base64, at most three times that once percent-encoded)."""

REPLICA_COOKIE: Final = "hivemind_http_replica"

_FORM_FIELDS: Final = 8
_TRUE_FLAGS: Final = frozenset({"1", "true", "True", "yes"})
_JSON: Final = "application/json"

_CONNECTED: Final = b'{"status":"Connected"}'
_SENT: Final = b'{"status":"message sent"}'
_DISCONNECTED: Final = b'{"status":"Disconnected"}'
_ALREADY_DISCONNECTED: Final = b'{"error":"Already Disconnected"}'
_UNAUTHORIZED: Final = b'{"error":"Unauthorized"}'


def idle_timeout_from_env(environ: Mapping[str, str] | None = None) -> float:
    """:data:`IDLE_TIMEOUT`, or the positive number of seconds in :data:`IDLE_TIMEOUT_ENV`."""
    raw = (os.environ if environ is None else environ).get(IDLE_TIMEOUT_ENV, "").strip()
    if not raw:
        return IDLE_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{IDLE_TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"{IDLE_TIMEOUT_ENV} must be positive, got {raw!r}")
    return value


def _answer(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=_JSON)


def _unauthorized() -> Response:
    return _answer(_UNAUTHORIZED, 401)


class BadRequest(Exception):
    """A request this carrier cannot use; ``status`` is the 4xx answer, the message its error."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    def response(self) -> Response:
        return _answer(b'{"error":"%s"}' % str(self).encode("ascii"), self.status)


def _redact_query(scope: Scope) -> bytes:
    """The raw query string, replaced in the scope so that no access log can show the key."""
    query = scope.get("query_string", b"")
    if not isinstance(query, bytes):
        return b""
    if query:
        scope["query_string"] = b"authorization=REDACTED" if b"authorization" in query else b""
    return query


async def _read_form(request: Request) -> dict[str, str]:
    """The url-encoded form of ``request``, at most :data:`MAX_BODY` bytes and a few fields."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Bad Content-Length")
        if int(declared) > MAX_BODY:
            raise BadRequest("Payload Too Large", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadRequest("Payload Too Large", 413)
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict", max_num_fields=_FORM_FIELDS)
    except ValueError:  # UnicodeDecodeError included
        raise BadRequest("Malformed form") from None
    return dict(pairs)


class PollingCarrier:
    """The HTTPS polling sessions of one server process and their five endpoints.

    ``runtime_of(request)`` gives the hub runtime for a request (``None`` while the server is
    not ready: ``/connect`` then answers 503). ``replica_id`` is the value of the
    ``hivemind_http_replica`` cookie set on ``/connect`` (random per process by default).
    """

    def __init__(
        self,
        runtime_of: Callable[[Request], HubRuntime | None],
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        replica_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_timeout <= 0 or handshake_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self.replica_id = replica_id or secrets.token_hex(8)
        self._runtime_of = runtime_of
        self._clock = clock
        self._sessions: dict[tuple[str, str], PollingSession] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._cookie = f"{REPLICA_COOKIE}={self.replica_id}; Secure; HttpOnly; Path=/"

    # -- the table -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._sessions)

    def session(self, hub_id: str, access_key: str) -> PollingSession | None:
        """The session held for this hub and access key (live or ended), if any."""
        return self._sessions.get((hub_id, access_key))

    def expire(self, now: float | None = None) -> int:
        """Drop idle sessions, abort overdue handshakes; returns how many sessions were dropped."""
        now = self._clock() if now is None else now
        dropped = 0
        for key, session in list(self._sessions.items()):
            if now - session.last_seen > self.idle_timeout:
                del self._sessions[key]
                session.end("idle")
                dropped += 1
            elif session.phase is Phase.HANDSHAKE and now - session.started > self.handshake_timeout:
                session.runtime.count_refusal("timeout")
                session.end("handshake timeout")
        return dropped

    def _sweep_interval(self) -> float:
        """A quarter of the shortest timeout, between 0.05 and 5 seconds."""
        return min(5.0, max(0.05, min(self.idle_timeout, self.handshake_timeout) / 4))

    async def _sweep(self) -> None:
        try:
            while self._sessions:
                await asyncio.sleep(self._sweep_interval())
                self.expire()
        finally:
            if self._sweeper is asyncio.current_task():
                self._sweeper = None

    def _ensure_sweeper(self) -> None:
        task = self._sweeper
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            self._sweeper = loop.create_task(self._sweep(), name="https-session-sweeper")

    def _lookup(self, scope: Scope) -> tuple[str, Credential] | None:
        """The hub id and credential of a request (``None`` if malformed); redacts the query."""
        try:
            credential = parse_authorization(_redact_query(scope))
        except MalformedAuthorization:
            return None
        return str(scope["path_params"]["hub_id"]), credential

    def session_for(self, scope: Scope) -> PollingSession | None:
        """The non-ended session a request belongs to, marked active; ``None`` means 401.

        Redacts the query string in ``scope`` (see :func:`_redact_query`).
        """
        found = self._lookup(scope)
        if found is None:
            return None
        hub_id, credential = found
        session = self._sessions.get((hub_id, credential.access_key))
        if session is None or session.phase is Phase.ENDED:
            return None
        session.last_seen = self._clock()
        return session

    # -- endpoints -------------------------------------------------------------------------------

    async def connect(self, request: Request) -> Response:
        found = self._lookup(request.scope)
        runtime = self._runtime_of(request)
        if runtime is None:
            return _answer(b'{"error":"Service Unavailable"}', 503)
        if found is None:
            runtime.count_refusal("malformed")
            return _unauthorized()
        hub_id, credential = found
        host = await runtime.host(hub_id)
        creds = await runtime.credentials(hub_id, credential.access_key) if host is not None else None
        if host is None or creds is None or (host.keys.protocols and "http" not in host.keys.protocols):
            log.info("HTTPS refused for hub %s: unknown hub or access key", hub_id)
            runtime.count_refusal("unknown")
            return _unauthorized()
        try:
            negotiation = HubNegotiation(
                node_id=host.keys.node_id, static=host.keys.static, psk=creds.psk, pinned_client_key=creds.pinned_key
            )
        except ProtocolError as exc:
            log.error("cannot negotiate with client %s of hub %s: %s", creds.client_id, hub_id, exc)
            return _unauthorized()
        key = (hub_id, credential.access_key)
        previous = self._sessions.pop(key, None)
        if previous is not None:
            previous.end("superseded")
        self._sessions[key] = PollingSession(host, credential.access_key, runtime, creds, negotiation, self._clock())
        self._ensure_sweeper()
        response = _answer(_CONNECTED)
        response.headers.append("set-cookie", self._cookie)
        return response

    async def send_message(self, request: Request) -> Response:
        session = self.session_for(request.scope)
        if session is None:
            return _unauthorized()
        try:
            form = await _read_form(request)
            if session.over:  # superseded, disconnected or terminated while the body arrived
                return _unauthorized()
            message = form.get("message")
            if message is None:
                raise BadRequest("Missing message")
            if form.get("binary", "") in _TRUE_FLAGS:
                try:
                    data = base64.b64decode(message, validate=True)
                except (binascii.Error, ValueError):
                    raise BadRequest("Malformed base64") from None
                return await self._binary(session, data)
            return await self._text(session, message)
        except BadRequest as exc:
            return exc.response()

    async def disconnect(self, request: Request) -> Response:
        found = self._lookup(request.scope)
        if found is not None:
            hub_id, credential = found
            session = self._sessions.pop((hub_id, credential.access_key), None)
            if session is not None:
                session.end("disconnected")
                return _answer(_DISCONNECTED)
        return _answer(_ALREADY_DISCONNECTED)

    # -- frames ----------------------------------------------------------------------------------

    def _abort(self, session: PollingSession, exc: Exception) -> Response:
        log.info("HTTPS negotiation for client %s aborted: %s", session.creds.client_id, type(exc).__name__)
        session.runtime.count_refusal("aborted")
        session.end("aborted")
        return _unauthorized()

    async def _text(self, session: PollingSession, text: str) -> Response:
        negotiation = session.negotiation
        if session.phase is not Phase.HANDSHAKE or negotiation is None:
            log.info("cleartext after the handshake from HTTPS client %s", session.creds.client_id)
            session.end("plaintext after the handshake")
            raise BadRequest("Plaintext after the handshake")
        try:
            replies = negotiation.receive_text(text)
            session.texts.extend(replies)
            await pin_when_complete(session.runtime, session.creds, negotiation)
        except ProtocolError as exc:
            return self._abort(session, exc)
        if session.over:  # superseded or disconnected while the pin was written
            return _unauthorized()
        return _answer(_SENT)

    async def _binary(self, session: PollingSession, data: bytes) -> Response:
        if session.phase is Phase.READY:
            try:
                session.enqueue(session.link.receive(data))
            except ProtocolError as exc:
                log.info("malformed frame from HTTPS client %s: %s", session.creds.client_id, type(exc).__name__)
                session.end("malformed frame")
                raise BadRequest("Malformed frame") from None
            except Exception:
                log.exception("HTTPS session of client %s failed", session.creds.client_id)
                session.end("internal error")
                return _answer(b'{"error":"Internal Server Error"}', 500)
            return _answer(_SENT)
        negotiation = session.negotiation
        if negotiation is None:
            return _unauthorized()
        try:
            hello = negotiation.receive_binary(data)
        except ProtocolError as exc:
            return self._abort(session, exc)
        link = link_for(negotiation, hello, session.creds, session.host, carrier="http")
        if not session.go_live(link):
            return _unauthorized()
        log.info("HTTPS session open: hub=%s client=%s pattern=%s", session.hub_id, link.client_id, link.pattern)
        return _answer(_SENT)

    # -- routing ---------------------------------------------------------------------------------

    def routes(self, base: str = "/hubs/{hub_id}") -> list[BaseRoute]:
        """The five endpoints under ``base`` (which must have a ``{hub_id}`` parameter)."""
        return [
            Route(f"{base}/connect", self.connect, methods=["POST"], name="hub_https_connect"),
            Route(
                f"{base}/get_messages",
                _Poll(self, PollingSession.take_texts),
                methods=["GET"],
                name="hub_https_get_messages",
            ),
            Route(
                f"{base}/get_binary_messages",
                _Poll(self, PollingSession.take_outbound),
                methods=["GET"],
                name="hub_https_get_binary_messages",
            ),
            Route(f"{base}/send_message", self.send_message, methods=["POST"], name="hub_https_send_message"),
            Route(f"{base}/disconnect", self.disconnect, methods=["POST"], name="hub_https_disconnect"),
        ]


class _Poll:
    """A poll endpoint as a bare ASGI app: a dictionary lookup and one pre-encoded answer.

    Polls are most of the port's requests (20 a second per idle client), so they skip the
    ``Request``/``Response`` objects; ``take`` empties the session's queue into the body.
    """

    __slots__ = ("_carrier", "_take")

    def __init__(self, carrier: PollingCarrier, take: Callable[[PollingSession], bytes]) -> None:
        self._carrier = carrier
        self._take = take

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = self._carrier.session_for(scope)
        if session is None:
            status, body = 401, _UNAUTHORIZED
        elif scope["method"] == "HEAD":  # answered without a body: must not drain the queue
            status, body = 200, b""
        else:
            status, body = 200, self._take(session)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
