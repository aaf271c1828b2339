"""The WSS carrier: one WebSocket per session (spec 4.1), on the ``websockets`` asyncio client.

- URL: ``identity.endpoint_for("wss")`` (``ws://`` allowed when the identity names it), with an
  ``authorization`` query item = URL-encoded base64 of ``"<useragent>:<access_key>"``;
- ``User-Agent`` header, no subprotocol, no compression, TCP_NODELAY;
- TLS trust as :mod:`thalovant.trust` says;
- negotiation in TEXT messages, Noise transport messages in BINARY messages;
- a PING every 20 s; messages up to 256 KiB + slack.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import ssl
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Close
from websockets.protocol import State
from websockets.uri import get_proxy, parse_uri

from thalovant.carriers.base import (
    Carrier,
    CarrierClosed,
    CarrierOpenError,
    CarrierRefused,
    set_nodelay,
)
from thalovant.noise_store import wss_pin_id
from thalovant.trust import client_ssl_context

PING_INTERVAL = 20.0
PING_TIMEOUT = 10.0
CLOSE_TIMEOUT = 8.0
MAX_MESSAGE = 256 * 1024 + 1024
REFUSAL_CLOSE_CODES = frozenset({1000, 1005, 1008})


def authorization_value(useragent: str, access_key: str) -> str:
    """Base64 (standard, padded) of ``"<useragent>:<access_key>"``; URL-encoding happens later."""
    return base64.b64encode(f"{useragent}:{access_key}".encode()).decode("ascii")


def authorized_url(endpoint: str, useragent: str, access_key: str) -> str:
    """The endpoint with any ``authorization`` query item replaced by this client's."""
    parts = urlsplit(endpoint)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "authorization"]
    query.append(("authorization", authorization_value(useragent, access_key)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), ""))


def _proxy_environment() -> tuple[tuple[str, str], ...]:
    """The environment's proxy variables (``*_proxy`` and ``no_proxy``, in any case)."""
    return tuple((name, os.environ[name]) for name in os.environ if name.lower().endswith("_proxy"))


@functools.lru_cache(maxsize=64)
def _proxy_under(endpoint: str, _environment: tuple[tuple[str, str], ...]) -> str | None:
    """websockets' choice for ``endpoint``; ``_environment`` only keys the cache."""
    return get_proxy(parse_uri(endpoint))


def proxy_for(endpoint: str) -> str | None:
    """The proxy to dial ``endpoint`` through, by websockets' rule (the environment's proxy
    variables, and the platform's proxy settings where it has them), or ``None``.

    The answer is kept per endpoint and set of proxy variables: a changed variable is seen by
    the next connect, a changed platform setting (macOS, Windows) by the next process."""
    return _proxy_under(endpoint, _proxy_environment())


class WSSCarrier(Carrier):
    """A WebSocket session with a hub's WSS endpoint."""

    protocol = "wss"

    def __init__(self, endpoint: str, *, access_key: str, useragent: str, verify_tls: bool = True) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme.lower() not in ("ws", "wss") or not parts.hostname:
            raise CarrierOpenError("The WSS endpoint must be a ws:// or wss:// URL with a host.")
        self._endpoint = endpoint
        self._url = authorized_url(endpoint, useragent, access_key)
        self._useragent = useragent
        self._secure = parts.scheme.lower() == "wss"
        self._verify_tls = verify_tls
        self._ws: ClientConnection | None = None
        self._socket_open_ms: float | None = None

    @property
    def pin_id(self) -> str:
        return wss_pin_id(self._endpoint)

    @property
    def endpoint(self) -> str:
        return self._endpoint

    async def open(self, timeout: float) -> None:
        started = time.perf_counter()
        try:
            self._ws = await connect(
                self._url,
                proxy=proxy_for(self._endpoint),
                user_agent_header=self._useragent,
                ssl=client_ssl_context(self._verify_tls) if self._secure else None,
                compression=None,
                open_timeout=timeout,
                ping_interval=PING_INTERVAL,
                ping_timeout=PING_TIMEOUT,
                close_timeout=CLOSE_TIMEOUT,
                max_size=MAX_MESSAGE,
                max_queue=64,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise CarrierRefused(
                    f"The hub refused the WebSocket upgrade (HTTP {status}).", status
                ) from None
            raise CarrierOpenError(f"The hub answered the WebSocket upgrade with HTTP {status}.") from None
        except TimeoutError:
            raise
        except ssl.SSLCertVerificationError as exc:
            raise CarrierOpenError(f"TLS certificate verification failed: {exc.verify_message}") from None
        except (OSError, InvalidHandshake, InvalidURI, ssl.SSLError) as exc:
            raise CarrierOpenError(f"Cannot open the WebSocket: {type(exc).__name__}: {exc}") from None
        set_nodelay(self._ws.transport.get_extra_info("socket"))
        self._socket_open_ms = (time.perf_counter() - started) * 1000

    def _connection(self) -> ClientConnection:
        if self._ws is None:
            raise CarrierClosed("The WebSocket is not open.")
        return self._ws

    def _writable(self) -> ClientConnection:
        """The connection to write to; :class:`CarrierClosed` once its transport is gone (asyncio
        drops writes to a lost transport silently, so they must not be attempted)."""
        ws = self._connection()
        if ws.transport.is_closing():
            raise self._closed_with(ws.protocol.close_rcvd)
        return ws

    async def send_text(self, text: str) -> None:
        try:
            await self._writable().send(text)
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def send_binary(self, data: bytes) -> None:
        try:
            await self._writable().send(data)
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def receive(self) -> str | bytes:
        try:
            return await self._connection().recv()
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    @classmethod
    def _closed(cls, exc: ConnectionClosed) -> CarrierClosed:
        return cls._closed_with(exc.rcvd)

    @staticmethod
    def _closed_with(rcvd: Close | None) -> CarrierClosed:
        """The hub's close frame (``None``: none came) as the carrier's evidence."""
        code = rcvd.code if rcvd is not None else None
        shown = code if code is not None else 1006
        return CarrierClosed(
            f"The hub closed the WebSocket ({shown}).",
            code=code,
            refusal_signal=code in REFUSAL_CLOSE_CODES,
        )

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is None:
            return
        try:
            await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT)
        except (Exception, asyncio.CancelledError):  # closing is best effort
            ws.transport.abort()

    @property
    def close_code(self) -> int | None:
        ws = self._ws
        rcvd = ws.protocol.close_rcvd if ws is not None else None
        return rcvd.code if rcvd is not None else None

    @property
    def alive(self) -> bool:
        return self._ws is not None and self._ws.state is State.OPEN and not self._ws.transport.is_closing()

    def extra_info(self) -> dict[str, Any]:
        return {"socket_open_ms": self._socket_open_ms, "tls": self._secure, "verify_tls": self._verify_tls}
