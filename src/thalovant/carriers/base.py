"""The client-side carrier interface: moving negotiation text and Noise transport messages.

A carrier is an I/O adapter only. It knows how to open a session with a hub, send the
cleartext negotiation (text) and the Noise transport messages (binary), and hand back what the
hub sends, in order. It knows nothing of Noise, envelopes or bus messages.

Close and refusal signals are reported as :class:`CarrierClosed` / :class:`CarrierRefused`
with the carrier's own evidence (a WebSocket close code, an HTTP status); the connection layer
decides, with its clocks, whether that means "credentials refused" or "link dropped".
"""

from __future__ import annotations

import abc
import socket
from typing import Any


class CarrierError(Exception):
    """Base class of carrier failures (never shown to users; mapped to Thalovant errors)."""


class CarrierOpenError(CarrierError):
    """The carrier could not open (DNS, TCP, TLS, an unexpected upgrade status)."""


class CarrierRefused(CarrierOpenError):
    """The hub refused the carrier credential while opening (HTTP 401 or 403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CarrierClosed(CarrierError):
    """The session ended. ``code`` is the carrier's evidence (e.g. a WebSocket close code or
    ``None`` when no close frame came); ``refusal_signal`` is true when that evidence is of the
    kind a hub uses to refuse credentials (WSS 1000/1005/1008, HTTPS 401/403)."""

    def __init__(self, message: str, *, code: int | None = None, refusal_signal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.refusal_signal = refusal_signal


class Carrier(abc.ABC):
    """One session with a hub over one transport; use a fresh instance per connect attempt."""

    #: the protocol name as the identity spells it: "wss", "https" or "mqtt"
    protocol: str = ""

    #: True when the hub's channel to this client outlives the session (MQTT's ``<prefix>/out``,
    #: one topic per identity): what the hub sent another session of the same identity may arrive
    #: before the answers to this session's HELLO. False: the channel is this session's own.
    shared_inbound: bool = False

    @property
    @abc.abstractmethod
    def pin_id(self) -> str:
        """The endpoint id the hub's Noise key is pinned under (spec 1.8)."""

    @property
    @abc.abstractmethod
    def endpoint(self) -> str:
        """The endpoint dialled, without credentials (safe to print)."""

    @abc.abstractmethod
    async def open(self, timeout: float) -> None:
        """Open the session within ``timeout`` seconds; raises :class:`CarrierOpenError`,
        :class:`CarrierRefused` or :class:`TimeoutError`."""

    @abc.abstractmethod
    async def send_text(self, text: str) -> None:
        """Send one cleartext negotiation message."""

    @abc.abstractmethod
    async def send_binary(self, data: bytes) -> None:
        """Send one Noise transport message."""

    @abc.abstractmethod
    async def receive(self) -> str | bytes:
        """The next message from the hub: ``str`` for text, ``bytes`` for binary. Raises
        :class:`CarrierClosed` when the session ends."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the session normally; idempotent, never raises."""

    @property
    @abc.abstractmethod
    def alive(self) -> bool:
        """True while the session is open and the transport is healthy."""

    @property
    def close_code(self) -> int | None:
        """The hub's close code, once the hub closed the session with one (WSS); else ``None``."""
        return None

    def bind_session(self, session_id: str, site_id: str | None = None) -> None:
        """Learn the session id and site id the negotiation's HELLO will carry; call before
        :meth:`open`. Only a carrier that sends a cleartext HELLO of its own (MQTT) uses them."""
        return None

    def extra_info(self) -> dict[str, Any]:
        """Carrier-specific facts for diagnostics (e.g. ``socket_open_ms``, ``tls``)."""
        return {}


def set_nodelay(sock: socket.socket | None) -> None:
    """Turn Nagle off on a TCP socket (no-op for other sockets). Nagle plus delayed ACK
    costs about 40 ms per exchange of small messages."""
    if sock is None:
        return
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
