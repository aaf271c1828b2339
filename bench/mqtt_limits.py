#!/usr/bin/env python3
"""What each MQTT broker does with the limits the server configures: measured, not assumed.

    .venv/bin/python bench/mqtt_limits.py [--broker mosquitto|embedded|both] [--silent-wait 150] [--json]

Each broker runs as the server runs it (:class:`~thalovant_server.mqtt.mosquitto.MosquittoBroker`
with its generated ``mosquitto.conf``, or the embedded broker) on 127.0.0.1, with a connection
cap of 3 and the default packet limit. The probes are raw MQTT 3.1.1 packets over TLS:

- packet size: a QoS 1 publish just under ``mqtt_max_packet`` (expect a PUBACK) and one of four
  times the limit (expect the connection dropped), before and after a reload (an account
  change: Mosquitto re-reads its files on SIGHUP);
- connections: with a cap of 3, 6 logins one after the other, holding the accepted ones; all
  closed, the same again; then, on a second fresh broker, one reload and 6 logins;
- CONNECT timeout: a TCP connection that sends nothing and a TLS connection that sends no
  CONNECT; seconds until the broker closes each (``--silent-wait`` at most).

Prints one line per probe (or one JSON object). Nothing is asserted: ``docs/mosquitto.md``
quotes what this printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.fixtures.mqtt_packets import connect_packet, remaining_length, utf8  # noqa: E402

from thalovant_server.limits import Limits  # noqa: E402
from thalovant_server.mqtt import MqttBroker, MqttCredentials, issue_client_credentials  # noqa: E402
from thalovant_server.mqtt.embedded import EmbeddedBroker  # noqa: E402
from thalovant_server.mqtt.mosquitto import MosquittoBroker  # noqa: E402
from thalovant_server.tls import TLSFiles, ensure_dev_tls  # noqa: E402

CAP = 3
ATTEMPTS = 6
ANSWER_WAIT = 5.0
"""Seconds a probe waits for a CONNACK, PUBACK or the broker closing the connection."""

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


# -- MQTT 3.1.1 packets ------------------------------------------------------------------------


def publish_packet(topic: str, payload_size: int, packet_id: int = 1) -> bytes:
    """A QoS 1 PUBLISH whose remaining length is ``len(topic) + 4 + payload_size``."""
    body = utf8(topic) + packet_id.to_bytes(2, "big") + b"\x00" * payload_size
    return bytes([0x32]) + remaining_length(len(body)) + body


# -- probes ------------------------------------------------------------------------------------


class Probes:
    def __init__(self, broker: MqttBroker, tls: TLSFiles, creds: MqttCredentials) -> None:
        self.broker = broker
        self.creds = creds
        self.context = ssl.create_default_context(cafile=str(tls.ca_cert))

    async def open(self, *, tls: bool = True) -> Stream:
        address = self.broker.address
        return await asyncio.open_connection(address.host, address.port, ssl=self.context if tls else None)

    async def login(self) -> Stream | None:
        """A logged-in connection, or None when the broker refused or dropped it."""
        try:
            reader, writer = await self.open()
            writer.write(connect_packet(self.creds.username, self.creds.password, "limits"))
            async with asyncio.timeout(ANSWER_WAIT):
                connack = await reader.readexactly(4)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            return None
        if connack != b"\x20\x02\x00\x00":
            writer.transport.abort()
            return None
        return reader, writer

    async def publish(self, payload_size: int) -> str:
        """``puback``, ``dropped`` (connection ended) or ``silent`` for one QoS 1 publish."""
        stream = await self.login()
        if stream is None:
            return "login refused"
        reader, writer = stream
        try:
            writer.write(publish_packet(f"{self.creds.topic_prefix}/in", payload_size))
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.drain()
            async with asyncio.timeout(ANSWER_WAIT):
                head = await reader.readexactly(4)
            return "puback" if head[0] == 0x40 else f"packet 0x{head[0]:02x}"
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            return "dropped"
        except TimeoutError:
            return "silent"
        finally:
            writer.transport.abort()

    async def packet_sizes(self) -> dict[str, str]:
        limit = Limits().mqtt_max_packet
        topic_bytes = len(utf8(f"{self.creds.topic_prefix}/in")) + 2
        under = limit - topic_bytes - 8  # a whole packet (with its 5-byte header) under the limit
        return {
            f"{limit - 8} bytes (under the limit)": await self.publish(under),
            f"{4 * limit} bytes (4x the limit)": await self.publish(4 * limit),
        }

    async def logins_in_turn(self, count: int) -> list[Stream]:
        """``count`` logins one after the other; the accepted connections (held open)."""
        held = []
        for _ in range(count):
            stream = await self.login()
            if stream is not None:
                held.append(stream)
        return held

    async def silent(self, *, tls: bool, wait: float) -> float | None:
        """Seconds until the broker closes a connection that sends nothing (None: still open)."""
        reader, writer = await self.open(tls=tls)
        began = time.monotonic()
        try:
            async with asyncio.timeout(wait):
                while await reader.read(65536):
                    pass
        except TimeoutError:
            return None
        except (OSError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()
        return round(time.monotonic() - began, 1)


async def close_all(streams: list[Stream]) -> None:
    """Close ``streams`` and give the broker a second to see it (it counts connections)."""
    for _reader, writer in streams:
        writer.transport.abort()
    await asyncio.sleep(1.0)


async def reload(broker: MqttBroker) -> None:
    """An account change, as provisioning makes one (Mosquitto: files rewritten, SIGHUP)."""
    await broker.add_account(issue_client_credentials(uuid.uuid4().hex[:12], str(uuid.uuid4())).account)


def new_broker(kind: str, folder: Path, tls: TLSFiles, creds: MqttCredentials) -> MqttBroker:
    """A broker as the server configures it, with a connection cap of :data:`CAP`."""
    limits = Limits(mqtt_max_connections=CAP)
    if kind == "mosquitto":
        return MosquittoBroker(config_dir=folder, cert_file=tls.cert, key_file=tls.key, ca_file=tls.ca_cert,
                               host="127.0.0.1", port=0, accounts=[creds.account], limits=limits)  # fmt: skip
    return EmbeddedBroker(cert_file=tls.cert, key_file=tls.key, port=0, accounts=[creds.account], limits=limits)


async def measure(kind: str, folder: Path, tls: TLSFiles, silent_wait: float) -> dict[str, Any]:
    creds = issue_client_credentials(uuid.uuid4().hex[:12], str(uuid.uuid4()))
    result: dict[str, Any] = {"broker": kind, "cap": CAP, "silent_wait_s": silent_wait}
    broker = new_broker(kind, folder / "first", tls, creds)
    await broker.start()
    probes = Probes(broker, tls, creds)
    try:
        for key in ("connections_fresh", "connections_again"):
            held = await probes.logins_in_turn(ATTEMPTS)
            result[key] = len(held)
            await close_all(held)
        result["packet_size"] = await probes.packet_sizes()
        await reload(broker)
        result["packet_size_after_reload"] = await probes.packet_sizes()
        tcp, tls_only = await asyncio.gather(
            probes.silent(tls=False, wait=silent_wait), probes.silent(tls=True, wait=silent_wait)
        )
        result["silent_tcp_closed_after_s"] = tcp
        result["silent_tls_closed_after_s"] = tls_only
    finally:
        await broker.stop()
    broker = new_broker(kind, folder / "second", tls, creds)
    await broker.start()
    try:
        await reload(broker)
        held = await Probes(broker, tls, creds).logins_in_turn(ATTEMPTS)
        result["connections_after_reload"] = len(held)
        await close_all(held)
    finally:
        await broker.stop()
    return result


def report(row: dict[str, Any]) -> None:
    print(f"== {row['broker']} (max_connections {row['cap']}, max packet {Limits().mqtt_max_packet} bytes)")
    for key in ("packet_size", "packet_size_after_reload"):
        for size, outcome in row[key].items():
            print(f"  publish {size}{' after a reload' if key.endswith('reload') else ''}: {outcome}")
    print(f"  fresh broker, {ATTEMPTS} logins one after the other (held): {row['connections_fresh']} accepted")
    print(f"  all closed, {ATTEMPTS} more the same way: {row['connections_again']} accepted")
    print(f"  a second fresh broker, one reload, then {ATTEMPTS} logins: {row['connections_after_reload']} accepted")
    for key, what in (("silent_tcp_closed_after_s", "TCP, no bytes"), ("silent_tls_closed_after_s", "TLS, no CONNECT")):
        value = row[key]
        closed = f"closed after {value} s" if value is not None else f"still open after {row['silent_wait_s']} s"
        print(f"  silent connection ({what}): {closed}")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", default="both", choices=("mosquitto", "embedded", "both"))
    ap.add_argument("--silent-wait", type=float, default=150.0, help="seconds to watch a silent connection")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    kinds = ("mosquitto", "embedded") if args.broker == "both" else (args.broker,)
    with tempfile.TemporaryDirectory(prefix="thalovant-mqtt-limits-") as tmp:
        folder = Path(tmp)
        tls = ensure_dev_tls(folder / "tls", extra_names=("127.0.0.1",))
        rows = await asyncio.gather(*(measure(kind, folder / kind, tls, args.silent_wait) for kind in kinds))
    if args.json:
        print(json.dumps(rows))
        return
    for row in rows:
        report(row)


if __name__ == "__main__":
    asyncio.run(main())
