"""WebSocket connections of the listener: websockets' sans-I/O protocol over the TLS transport.

uvicorn parses each request head; an upgrade to WebSocket hands the transport to the ``ws``
protocol class of its configuration, which is a subclass of :class:`WebSocketConnection` made
by :meth:`WebSocketConnection.serving`. It answers the upgrade itself and runs the session its
route gives for the path, with no ASGI layer in between:

- the upgrade is answered at once (101), or with 404 when no route takes the path, or with
  the 400 websockets gives a malformed upgrade;
- a session first reads messages one at a time (:meth:`receive`, the cleartext phase of a
  negotiation), then switches to :meth:`dispatch`: every later message is handed to a plain
  function in the event-loop callback that parsed it, so an answer is written before the next
  message is read; at most :data:`MESSAGES_PER_TURN` per turn of the event loop (a read that
  brought more leaves the rest for the next turns, reading paused), so a client that floods the
  hub takes its turn like every other connection and new connections still get theirs;
- :meth:`send_binary` writes any number of messages with one transport write;
- messages larger than ``Limits.ws_max_message`` are refused from their header (close 1009),
  a malformed frame closes with 1002, text that is not UTF-8 with 1007;
- flow control: while the transport's write buffer is above its high-water mark, or while
  more than :data:`MAX_QUEUED` messages wait for :meth:`receive`, nothing more is read;
- keepalive: a ping every ``Limits.ws_ping_interval`` seconds; a peer heard from neither since
  the previous ping nor since the one before is aborted;
- the listener's shutdown closes every open connection with 1012 (service restart).

Nothing raised by a session's function escapes into the event loop: the connection is closed
with 1011 and the error logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any, ClassVar, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from thalovant_server.limits import Limits

__all__ = ["MAX_QUEUED", "Message", "Route", "Session", "WebSocketConnection"]

log = logging.getLogger(__name__)
#: the protocol library's own lines ("connection open", frames at DEBUG); quiet below WARNING
#: unless lowered, since the carriers log every session with its hub and client already
protocol_log = logging.getLogger(f"{__name__}.protocol")
protocol_log.setLevel(logging.WARNING)

Message = str | bytes
"""A whole WebSocket message: ``str`` for text, ``bytes`` for binary."""

Session = Callable[["WebSocketConnection"], Awaitable[None]]
"""Runs one accepted connection until it ends; its return closes nothing by itself."""

Route = Callable[[str], Session | None]
"""The session for a request path (with its query), or ``None`` (answered 404)."""

MAX_QUEUED = 16
"""Messages waiting for :meth:`WebSocketConnection.receive` before reading pauses."""

MESSAGES_PER_TURN = 1
"""Messages of one connection handed to its session per turn of the event loop."""

CLOSE_TIMEOUT = 10.0
"""Seconds a closing connection waits for the peer's close frame before it is aborted."""

CLOSE_ERROR = 1011
CLOSE_RESTART = 1012
CLOSE_INVALID_TEXT = 1007


class WebSocketConnection(asyncio.Protocol):
    """One upgraded connection; made by uvicorn with its configuration and server state."""

    limits: ClassVar[Limits] = Limits()

    @staticmethod
    def route(path: str) -> Session | None:
        """The session serving ``path`` (with its query); the base class serves none."""
        return None

    @classmethod
    def serving(cls, route: Route, limits: Limits) -> type[WebSocketConnection]:
        """The protocol class (uvicorn's ``ws`` option) serving ``route`` within ``limits``."""
        return type("WebSocketConnections", (cls,), {"route": staticmethod(route), "limits": limits})

    def __init__(self, config: Any, server_state: Any, app_state: Any = None, _loop: Any = None) -> None:
        self._connections: set[Any] = server_state.connections
        self._loop = asyncio.get_running_loop()
        self._protocol = ServerProtocol(max_size=self.limits.ws_max_message, logger=protocol_log)
        self._transport: asyncio.Transport | None = None
        self.path = ""
        """The request path, without its query, once the upgrade was accepted."""
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._fragment_opcode: Opcode | None = None
        self._queue: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._on_message: Callable[[Message], None] | None = None
        self._drain_due = False
        self._task: asyncio.Task[None] | None = None
        self._ended: asyncio.Future[None] = self._loop.create_future()
        self._paused: set[str] = set()
        self._heard = True
        self._ping_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    # -- what a session uses --------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """The WebSocket is open: neither side started closing and the connection is up."""
        return self._protocol.state is OPEN and not self._ended.done()

    @property
    def transport(self) -> asyncio.Transport | None:
        """The TLS transport, once the connection was made."""
        return self._transport

    @property
    def reading_paused(self) -> bool:
        """Nothing is read from the peer now (flow control)."""
        return bool(self._paused)

    def buffered(self) -> int:
        """Bytes written and not yet taken by the network."""
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    async def receive(self) -> Message | None:
        """The next message, or ``None`` once the connection ended or started closing.

        Only before :meth:`dispatch`; one reader at a time.
        """
        while not self._queue:
            if not self.is_open:
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._queue.popleft()
        if len(self._queue) < MAX_QUEUED:
            self._resume("queue")
        return message

    def dispatch(self, on_message: Callable[[Message], None]) -> None:
        """Hand every later message to ``on_message`` as it arrives, queued ones first (from now on,
        :data:`MESSAGES_PER_TURN` per turn of the event loop).

        ``on_message`` runs in the event loop's callback; what it raises closes the connection
        with 1011.
        """
        self._on_message = on_message
        self._resume("queue")
        self._drain()

    def send_text(self, text: str) -> None:
        if self.is_open:
            self._protocol.send_text(text.encode())
            self._flush()

    def send_binary(self, messages: Iterable[bytes]) -> None:
        """Write ``messages`` in order, one binary message each, with one transport write."""
        if not self.is_open:
            return
        for message in messages:
            self._protocol.send_binary(message)
        self._flush()

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Start the closing handshake; ``code=None`` sends a close frame without status."""
        if not self.is_open:
            return
        self._protocol.send_close(code, reason if code is not None else "")
        self._flush()
        self._closing()

    async def wait_closed(self) -> None:
        """Until the connection is down."""
        await asyncio.shield(self._ended)

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._heard = True
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, Request):
                self._upgrade(event)
            elif isinstance(event, Frame):
                self._frame(event)
        if self._on_message is not None:
            self._drain()
        self._flush()
        if self._protocol.close_expected():
            self._closing()

    def eof_received(self) -> bool | None:
        self._protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        for timer in (self._ping_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        if not self._ended.done():
            self._ended.set_result(None)
        self._wake()

    def pause_writing(self) -> None:
        self._pause("writing")

    def resume_writing(self) -> None:
        self._resume("writing")

    def shutdown(self) -> None:
        """The listener stops: a restart for an open connection, else the connection goes."""
        if self.is_open:
            self.close(CLOSE_RESTART, "server restart")
        if self._transport is not None:
            self._transport.close()

    # -- internals ------------------------------------------------------------------------------

    def _upgrade(self, request: Request) -> None:
        session = self.route(request.path)
        if session is None:
            response = self._protocol.reject(HTTPStatus.NOT_FOUND, "Not Found\n")
        else:
            response = self._protocol.accept(request)
        self._protocol.send_response(response)
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS or session is None:
            self._flush()
            self._closing()
            return
        self.path = request.path.partition("?")[0]  # the query holds credentials: never kept, never logged
        self._schedule_ping()
        self._task = self._loop.create_task(self._run(session))

    async def _run(self, session: Session) -> None:
        try:
            await session(self)
        except Exception:
            log.exception("WebSocket session on %s failed", self.path)
            self.close(CLOSE_ERROR)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragment_opcode, self._fragments = opcode, [frame.data]
        elif opcode is Opcode.CONT and self._fragment_opcode is not None:
            self._fragments.append(frame.data)
        else:
            return  # control frames: websockets answers pings and closes itself
        if not frame.fin:
            return
        data = b"".join(self._fragments)
        text = self._fragment_opcode is Opcode.TEXT
        self._fragments, self._fragment_opcode = [], None
        if not self.is_open:
            return  # we are closing: the peer's late messages are not read
        if text:
            try:
                message: Message = data.decode()
            except UnicodeDecodeError:
                self.close(CLOSE_INVALID_TEXT, "invalid UTF-8")
                return
        else:
            message = data
        self._queue.append(message)
        if self._on_message is not None:
            return  # handed over by _drain
        if len(self._queue) >= MAX_QUEUED:
            self._pause("queue")
        self._wake()

    def _drain(self) -> None:
        """Hand queued messages to the session, :data:`MESSAGES_PER_TURN` at most; the rest on
        the next turn of the event loop, with reading paused until they are all handed over."""
        self._drain_due = False
        for _ in range(MESSAGES_PER_TURN):
            if not self._queue or not self.is_open:
                break
            self._deliver(self._queue.popleft())
        if self._queue and self.is_open:
            self._pause("backlog")
            if not self._drain_due:
                self._drain_due = True
                self._loop.call_soon(self._drain)
            return
        self._queue.clear()  # handed over, or the session is closing and they are not read
        self._resume("backlog")

    def _deliver(self, message: Message) -> None:
        assert self._on_message is not None
        try:
            self._on_message(message)
        except Exception:
            log.exception("WebSocket message handler on %s failed", self.path)
            self.close(CLOSE_ERROR)

    def _flush(self) -> None:
        chunks = self._protocol.data_to_send()
        if not chunks or self._transport is None or self._transport.is_closing():
            return
        # an empty chunk asks for a half-close, which TLS cannot do: the close follows instead
        data = b"".join(chunks)
        if data:
            self._transport.write(data)
        if chunks[-1] == b"":
            self._transport.close()

    def _closing(self) -> None:
        """The closing handshake started: the peer has CLOSE_TIMEOUT seconds to finish it.

        (When it does, websockets asks for the end of the stream and :meth:`_flush` closes.)
        """
        self._wake()
        transport = self._transport
        if self._close_timer is None and transport is not None and not transport.is_closing():
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, transport.abort)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _pause(self, reason: str) -> None:
        if not self._paused and self._transport is not None:
            self._transport.pause_reading()
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        if reason not in self._paused:
            return
        self._paused.discard(reason)
        if not self._paused and self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def _schedule_ping(self) -> None:
        self._ping_timer = self._loop.call_later(self.limits.ws_ping_interval, self._ping)

    def _ping(self) -> None:
        if self._transport is None or self._transport.is_closing() or not self.is_open:
            return
        if not self._heard:
            log.info("WebSocket peer on %s silent for two ping intervals; aborting", self.path)
            self._transport.abort()
            return
        self._heard = False
        self._protocol.send_ping(b"")
        self._flush()
        self._schedule_ping()
