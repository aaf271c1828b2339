"""No idle connection holds the server: TLS handshake and request-head timeouts, the
connection cap, and the WebSocket message cap, through a real ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import pytest
from tests.fixtures.identities import new_identity, trusting
from tests.fixtures.server import RunningServer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from thalovant.carriers.wss import authorized_url
from thalovant_server.limits import RESERVED_FILES, Limits

#: bounds for a slow CI machine, not speed goals (bench/reliability.py measures those)
PATIENCE = 30.0

LIMITS = {"THALOVANT_TLS_HANDSHAKE_TIMEOUT": "1", "THALOVANT_REQUEST_HEAD_TIMEOUT": "1"}


def tls_context(server: RunningServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.ca_file))


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Wait (up to PATIENCE) for the server to end the connection (EOF or a reset) without
    having answered anything."""
    received = b""
    try:
        async with asyncio.timeout(PATIENCE):
            while chunk := await reader.read(4096):
                received += chunk
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError):
        pass
    return received == b""


@pytest.fixture
def guarded(server_factory: Callable[..., RunningServer]) -> RunningServer:
    return server_factory(extra_env=LIMITS)


async def test_a_connection_that_never_starts_tls_is_closed(guarded: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    try:
        assert await closed_by_server(reader)
    finally:
        writer.close()


async def test_a_tls_connection_that_never_sends_a_request_is_closed(guarded: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port, ssl=tls_context(guarded))
    try:
        assert await closed_by_server(reader)
    finally:
        writer.transport.abort()


async def test_a_request_head_that_never_ends_is_closed(guarded: RunningServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port, ssl=tls_context(guarded))
    try:
        writer.write(b"GET /v1/public/hubs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        assert await closed_by_server(reader)
    finally:
        writer.transport.abort()


async def get_status(server: RunningServer) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=tls_context(server))
    try:
        writer.write(b"GET /v1/public/hubs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        line = await reader.readline()
        return int(line.split()[1])
    finally:
        writer.transport.abort()


@contextlib.asynccontextmanager
async def idle_connections(server: RunningServer, count: int) -> AsyncIterator[list[asyncio.StreamWriter]]:
    writers = []
    try:
        for _ in range(count):
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=tls_context(server))
            writers.append(writer)
        yield writers
    finally:
        for writer in writers:
            writer.transport.abort()


async def test_connections_beyond_the_cap_are_refused_until_one_closes(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(extra_env={"THALOVANT_MAX_CONNECTIONS": "4", "THALOVANT_REQUEST_HEAD_TIMEOUT": "300"})
    assert await get_status(server) == 200
    async with idle_connections(server, 4) as held:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=tls_context(server))
        try:
            writer.write(b"GET /v1/public/hubs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert await closed_by_server(reader)
        finally:
            writer.transport.abort()
        held.pop().transport.abort()
        async with asyncio.timeout(PATIENCE):
            while True:  # until the server has seen that connection go
                with contextlib.suppress(ConnectionError, ssl.SSLError, IndexError, ValueError):
                    if await get_status(server) == 200:
                        break
    assert server.wait_for_output("connection limit (4) reached")


async def test_a_websocket_message_above_the_protocol_limit_is_refused_unread(guarded: RunningServer) -> None:
    with trusting(guarded):
        identity = new_identity(guarded, "oversized-frames")
    endpoint = identity.endpoint_for("wss")
    assert endpoint is not None
    url = authorized_url(endpoint, "limits-test", identity.access_key)
    async with connect(url, ssl=tls_context(guarded), max_size=None, compression=None) as ws:
        await ws.recv()  # the hub's HELLO: it now waits for the negotiation
        with contextlib.suppress(ConnectionClosed):
            await ws.send("x" * (4 * 1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big


def test_the_open_file_limit_is_raised_to_the_hard_limit_at_start() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, hard, 512)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowered - 1, hard))

    code = "from thalovant_server.limits import raise_file_limit; print(raise_file_limit())"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=lower, check=True, timeout=60
    )
    assert int(result.stdout) > lowered - 1
    if hard != resource.RLIM_INFINITY:
        assert int(result.stdout) == hard


def test_max_connections_fits_the_open_file_limit() -> None:
    limits = Limits(max_connections=8192)
    assert limits.fitted_to(1024).max_connections == 1024 - RESERVED_FILES
    assert limits.fitted_to(1_000_000).max_connections == 8192
    assert Limits.from_env({"THALOVANT_MAX_CONNECTIONS": "7"}).max_connections == 7
    with pytest.raises(ValueError, match="THALOVANT_TLS_HANDSHAKE_TIMEOUT"):
        Limits.from_env({"THALOVANT_TLS_HANDSHAKE_TIMEOUT": "soon"})
