"""The TLS listener of the API and the hubs: uvicorn, with every connection bounded.

- the TLS handshake must finish within ``Limits.tls_handshake_timeout`` (the event loop's
  ``ssl_handshake_timeout``; uvicorn leaves it at 60 s);
- each request head (the first, and each later one on a kept-alive connection) must be complete
  within ``Limits.request_head_timeout`` of its first byte (of the connection, for the first);
  a connection that sends nothing is aborted then, without waiting for a TLS close;
- while ``Limits.max_connections`` connections (HTTP and WebSocket) are open, a new one is
  aborted as soon as its TLS handshake completes;
- an upgrade to WebSocket leaves uvicorn's ASGI path: the connection is served by
  :class:`~thalovant_server.carriers.websocket.WebSocketConnection` with the given route, which
  refuses messages above ``Limits.ws_max_message`` from their header, before the payload is read.

:class:`GuardedServer` is the uvicorn server; :func:`server_config` the uvicorn configuration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from thalovant_server.carriers.websocket import Route, WebSocketConnection
from thalovant_server.limits import Limits

log = logging.getLogger(__name__)

#: at most one "connection refused" warning this often, however many are refused
REFUSAL_LOG_INTERVAL = 10.0


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the connection cap and the request-head timeout."""

    limits: ClassVar[Limits] = Limits()
    _last_refusal_log: ClassVar[float] = 0.0
    refused: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        full = len(self.connections) >= self.limits.max_connections
        super().connection_made(transport)
        if full:
            self._refuse(transport)
            return
        self._arm_head_timer()

    def _refuse(self, transport: asyncio.Transport) -> None:
        cls = type(self)
        cls.refused += 1
        now = time.monotonic()
        if now - cls._last_refusal_log >= REFUSAL_LOG_INTERVAL:
            cls._last_refusal_log = now
            log.warning(
                "connection limit (%d) reached: refusing new connections (%d so far)",
                self.limits.max_connections,
                cls.refused,
            )
        transport.abort()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.request_head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.abort()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def timeout_keep_alive_handler(self) -> None:
        # an idle kept-alive connection is dropped without waiting for the client's TLS close
        if not self.transport.is_closing():
            self.transport.abort()


def server_config(
    app: Any, *, host: str, port: int, cert: str, key: str, limits: Limits, websockets: Route, **options: Any
) -> uvicorn.Config:
    """The uvicorn configuration of the listener: HTTP to ``app`` (ASGI), WebSocket upgrades to
    ``websockets`` (``options`` are passed through)."""
    protocol = type("GuardedHttpProtocolWithLimits", (GuardedHttpProtocol,), {"limits": limits})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        http=protocol,
        ws=WebSocketConnection.serving(websockets, limits),
        **options,
    )


class GuardedServer(uvicorn.Server):
    """uvicorn's server, listening with the TLS handshake timeout of ``limits``."""

    def __init__(self, config: uvicorn.Config, limits: Limits) -> None:
        super().__init__(config)
        self.limits = limits

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            raise SystemExit(3)
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop
            )

        server = await asyncio.get_running_loop().create_server(
            create_protocol,
            host=config.host,
            port=config.port,
            ssl=config.ssl,
            backlog=config.backlog,
            ssl_handshake_timeout=self.limits.tls_handshake_timeout,
        )
        self.servers = [server]
        self.started = True
