"""MQTT limits on both brokers through a real ``serve``: an oversized packet is dropped at its
header, a connection that sends no CONNECT is closed, connections beyond the cap are refused,
and the broker serves asks as before."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.fixtures.identities import new_identity, trusting
from tests.fixtures.mqtt_packets import connect_packet, remaining_length, utf8
from tests.fixtures.server import RunningServer

from thalovant.client import AsyncThalovantClient
from thalovant.identity import ThalovantIdentity
from thalovant_server.hub.skills.jokes import JOKES

PATIENCE = 30.0
BROKERS = ["embedded", "mosquitto"]


async def open_broker(server: RunningServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    return await asyncio.open_connection("127.0.0.1", server.mqtt_port, ssl=context)


async def logged_in(
    server: RunningServer, identity: ThalovantIdentity
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert identity.mqtt is not None
    reader, writer = await open_broker(server)
    writer.write(connect_packet(identity.mqtt.username, identity.mqtt.password, "limits-test"))
    async with asyncio.timeout(PATIENCE):
        connack = await reader.readexactly(4)
    assert connack == b"\x20\x02\x00\x00", connack
    return reader, writer


async def ended_by_broker(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(PATIENCE):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError):
        pass
    return True


@pytest.fixture(params=BROKERS)
def mqtt_server(request: pytest.FixtureRequest, server_factory: Callable[..., RunningServer]) -> RunningServer:
    env = {"THALOVANT_MQTT_CONNECT_TIMEOUT": "1", "THALOVANT_MQTT_MAX_CONNECTIONS": "4"}
    return server_factory(mqtt_broker=request.param, extra_env=env)


@pytest.fixture
def identity(mqtt_server: RunningServer) -> ThalovantIdentity:
    with trusting(mqtt_server):
        return new_identity(mqtt_server, "mqtt-limits", "mqtt")


async def ask_over_mqtt(server: RunningServer, identity: ThalovantIdentity, noise: Path) -> str:
    with trusting(server):
        client = AsyncThalovantClient(identity, protocol="mqtt", noise_state_dir=noise, auto_reconnect=False)
        try:
            await client.connect()
            return (await client.ask("Tell me a short clean joke.", timeout=PATIENCE)).text
        finally:
            await client.close()


async def test_a_64_mb_publish_is_dropped_at_its_header(
    mqtt_server: RunningServer, identity: ThalovantIdentity, tmp_path: Path
) -> None:
    assert identity.mqtt is not None and identity.mqtt.topic_prefix
    reader, writer = await logged_in(mqtt_server, identity)
    topic = utf8(f"{identity.mqtt.topic_prefix}/in")
    size = 64 * 1024 * 1024
    writer.write(bytes([0x30]) + remaining_length(len(topic) + size) + topic)
    chunk = b"\x00" * (1024 * 1024)
    sent = 0
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        async with asyncio.timeout(PATIENCE):
            while sent < size:
                if writer.transport.is_closing():
                    break
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0)  # let the loop see a closed connection
                sent += len(chunk)
    assert sent < size, "the broker read the whole 64 MB packet"
    assert await ended_by_broker(reader)
    writer.transport.abort()
    assert await ask_over_mqtt(mqtt_server, identity, tmp_path / "noise") in JOKES


async def test_a_connection_without_connect_is_closed(
    server_factory: Callable[..., RunningServer],
) -> None:
    """The embedded broker only: Mosquitto 2.0 closes such a connection after its built-in 90 s
    (1.5 times the keepalive it assumes before CONNECT), which no option changes."""
    server = server_factory(extra_env={"THALOVANT_MQTT_CONNECT_TIMEOUT": "1"})
    reader, writer = await open_broker(server)
    try:
        assert await ended_by_broker(reader)
    finally:
        writer.transport.abort()


async def test_connections_beyond_the_cap_are_refused(server_factory: Callable[..., RunningServer]) -> None:
    """The embedded broker only: Mosquitto 2.0.11 is configured with ``max_connections`` too,
    but it miscounts refused connections and forgets the limit on a reload (SIGHUP), which
    every account change sends."""
    server = server_factory(extra_env={"THALOVANT_MQTT_MAX_CONNECTIONS": "4"})
    with trusting(server):
        identity = new_identity(server, "mqtt-cap", "mqtt")
    mqtt_server = server
    # the hub's own connection counts: four allowed means three more
    held = [await logged_in(mqtt_server, identity) for _ in range(3)]
    try:
        reader, writer = await open_broker(mqtt_server)
        try:
            assert identity.mqtt is not None
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                writer.write(connect_packet(identity.mqtt.username, identity.mqtt.password, "limits-test"))
                await writer.drain()
            assert await ended_by_broker(reader)
        finally:
            writer.transport.abort()
    finally:
        for _reader, writer in held:
            writer.transport.abort()
