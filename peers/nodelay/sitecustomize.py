"""TCP_NODELAY on every TCP socket of this interpreter, when ``PEERS_NODELAY=1``.

This folder goes on ``PYTHONPATH`` of the peers' processes in their "nodelay" mode (``HM5Stack(nodelay=True)``,
``sdk_ask.py --nodelay``), so that the comparison with our hub, which sets TCP_NODELAY itself, is not
about Nagle's algorithm: on loopback, a small write behind an unacknowledged one waits for the
peer's delayed ACK (about 40 ms). Tornado, used by ovos-messagebus and hivemind-core's carriers,
switches Nagle back on after HTTP responses; paho-mqtt never switches it off. Both are overridden
here. No protocol behaviour changes, only when the kernel sends segments.
"""

from __future__ import annotations

import contextlib
import os
import socket


def _no_delay(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _install() -> None:
    base = socket.socket
    connect, connect_ex, accept = base.connect, base.connect_ex, base.accept

    def connect_nodelay(self, address):  # type: ignore[no-untyped-def]
        _no_delay(self)
        return connect(self, address)

    def connect_ex_nodelay(self, address):  # type: ignore[no-untyped-def]
        _no_delay(self)
        return connect_ex(self, address)

    def accept_nodelay(self):  # type: ignore[no-untyped-def]
        conn, address = accept(self)
        _no_delay(conn)
        return conn, address

    base.connect, base.connect_ex, base.accept = connect_nodelay, connect_ex_nodelay, accept_nodelay  # type: ignore[method-assign]
    try:
        from tornado.iostream import IOStream
    except ImportError:
        return
    set_nodelay = IOStream.set_nodelay
    IOStream.set_nodelay = lambda self, _value: set_nodelay(self, True)  # type: ignore[method-assign]


if os.environ.get("PEERS_NODELAY") == "1":
    _install()
