"""Both MQTT brokers, embedded (amqtt) and a real Mosquitto 2, enforce credentials and topic ACLs.

Clients are paho-mqtt 2 (VERSION2 callbacks, MQTT 3.1.1, TLS), as in the SDK. Each test runs
against both brokers. Refused publishes are checked by delivery: the refused message is sent
first and an allowed marker after it on the same connection, so once the marker has arrived
the refused one would have arrived too, had the broker let it through.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import ssl
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from amqtt.contexts import Action
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from tests.fixtures.mosquitto import new_mosquitto

from thalovant_server.limits import Limits
from thalovant_server.mqtt import (
    BrokerAccount,
    BrokerStartError,
    MqttBroker,
    MqttCredentials,
    issue_client_credentials,
    issue_hub_credentials,
)
from thalovant_server.mqtt.embedded import BrokerAccessPlugin, EmbeddedBroker
from thalovant_server.tls import TLSFiles, ensure_dev_tls

# A safety net against a hung broker, not a performance bound: every wait ends on an event.
WAIT = 30.0
HUB_IN = "thalovant/+/+/in"
HUB_STATUS = "thalovant/+/+/status"


# -- a paho client driven from async tests ----------------------------------------------------


class Probe:
    """One paho client; its blocking calls run in a thread (``await probe.call(...)``)."""

    def __init__(self, ca_file: Path, port: int) -> None:
        self.port = port
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"thalovant-{uuid.uuid4().hex}",
            reconnect_on_failure=False,
        )
        self.client.tls_set(ca_certs=str(ca_file))
        self.connack: ReasonCode | None = None
        self.connected = threading.Event()
        self.settled = threading.Event()  # CONNACK received, or the connection failed or ended
        self.disconnected = threading.Event()
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.qos_seen: list[int] = []
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._suback_event = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # callbacks (paho's thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.connack = reason
        if not reason.is_failure:
            self.connected.set()
        self.settled.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self.settled.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.disconnected.set()
        self.settled.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: list[ReasonCode], props: Any) -> None:
        with self._suback_event:
            self._subacks[mid] = list(codes)
            self._suback_event.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self.qos_seen.append(message.qos)
        self.messages.put((message.topic, bytes(message.payload), bool(message.retain)))

    # blocking operations
    def connect(self, username: str | None, password: str | None, *, will: tuple[str, bytes] | None = None) -> bool:
        """Connect; True when the broker accepted (CONNACK 0), False when it refused."""
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.connect_async("127.0.0.1", self.port, keepalive=60)
        self.client.loop_start()
        self.settled.wait(WAIT)
        return self.connected.is_set() and self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic_filter: str, qos: int = 1) -> list[ReasonCode]:
        result, mid = self.client.subscribe(topic_filter, qos)
        assert result == paho.MQTT_ERR_SUCCESS and mid is not None
        with self._suback_event:
            assert self._suback_event.wait_for(lambda: mid in self._subacks or self.disconnected.is_set(), WAIT)
            return self._subacks.get(mid, [])

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def next_message(self) -> tuple[str, bytes, bool]:
        return self.messages.get(timeout=WAIT)

    def drop_connection(self) -> None:
        """End the TCP connection without DISCONNECT (the broker publishes the will)."""
        sock = self.client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        self.disconnected.wait(WAIT)

    def close(self) -> None:
        if self.connected.is_set() and not self.disconnected.is_set():
            self.client.disconnect()
            self.disconnected.wait(WAIT)
        self.client.loop_stop()

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)


# -- fixtures ---------------------------------------------------------------------------------


@dataclass
class Identities:
    a: MqttCredentials
    b: MqttCredentials
    hub: MqttCredentials

    def accounts(self) -> list[BrokerAccount]:
        return [self.a.account, self.b.account, self.hub.account]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return ensure_dev_tls(tmp_path_factory.mktemp("mqtt-tls"))


@pytest.fixture(scope="module")
def identities() -> Identities:
    hub_id = uuid.uuid4().hex[:12]
    return Identities(
        a=issue_client_credentials(hub_id, str(uuid.uuid4())),
        b=issue_client_credentials(hub_id, str(uuid.uuid4())),
        hub=issue_hub_credentials(),
    )


@pytest.fixture(params=["embedded", "mosquitto"])
async def broker(
    request: pytest.FixtureRequest, tls_files: TLSFiles, identities: Identities, tmp_path: Path
) -> AsyncIterator[MqttBroker]:
    running: MqttBroker
    if request.param == "embedded":
        running = EmbeddedBroker(
            cert_file=tls_files.cert, key_file=tls_files.key, port=0, accounts=identities.accounts()
        )
    else:
        running = new_mosquitto(tmp_path / "mosquitto", tls_files, identities.accounts())
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def probes(broker: MqttBroker, tls_files: TLSFiles) -> AsyncIterator[Callable[[], Probe]]:
    made: list[Probe] = []

    def make() -> Probe:
        probe = Probe(tls_files.ca_cert, broker.address.port)
        made.append(probe)
        return probe

    yield make
    for probe in made:
        await asyncio.to_thread(probe.close)


async def connected(make: Callable[[], Probe], creds: MqttCredentials, **kwargs: Any) -> Probe:
    probe = make()
    assert await probe.call(probe.connect, creds.username, creds.password, **kwargs)
    return probe


async def hub_listening(make: Callable[[], Probe], identities: Identities) -> Probe:
    hub = await connected(make, identities.hub)
    for topic_filter in (HUB_IN, HUB_STATUS):
        codes = await hub.call(hub.subscribe, topic_filter)
        assert [c.is_failure for c in codes] == [False]
    return hub


def is_refused(codes: list[ReasonCode]) -> bool:
    return len(codes) == 1 and codes[0].is_failure


# -- credentials ------------------------------------------------------------------------------


async def test_valid_credentials_are_accepted(probes: Callable[[], Probe], identities: Identities) -> None:
    for creds in (identities.a, identities.b, identities.hub):
        probe = probes()
        assert await probe.call(probe.connect, creds.username, creds.password)


@pytest.mark.parametrize(
    "who",
    ["wrong-password", "other-users-password", "unknown-user", "anonymous", "empty-password"],
)
async def test_bad_credentials_get_a_refused_connack(
    probes: Callable[[], Probe], identities: Identities, who: str
) -> None:
    a, b = identities.a, identities.b
    username, password = {
        "wrong-password": (a.username, a.password + "x"),
        "other-users-password": (a.username, b.password),
        "unknown-user": ("c_nobody", a.password),
        "anonymous": (None, None),
        "empty-password": (a.username, ""),
    }[who]
    probe = probes()
    assert not await probe.call(probe.connect, username, password)
    assert probe.connack is None or probe.connack.is_failure


async def test_plain_mqtt_without_tls_is_not_served(broker: MqttBroker, identities: Identities) -> None:
    probe = paho.Client(CallbackAPIVersion.VERSION2, client_id="plain", reconnect_on_failure=False)
    probe.username_pw_set(identities.a.username, identities.a.password)
    accepted = threading.Event()
    probe.on_connect = lambda c, u, f, reason, p: accepted.set() if not reason.is_failure else None
    try:
        await asyncio.to_thread(probe.connect, "127.0.0.1", broker.address.port, 5)
        await asyncio.to_thread(probe.loop, 2.0)
    except (OSError, ConnectionError):
        pass
    finally:
        probe.loop_stop()
    assert not accepted.is_set()


# -- topic ACL --------------------------------------------------------------------------------


async def test_client_publishes_to_its_own_in_and_the_hub_receives_it(
    probes: Callable[[], Probe], identities: Identities
) -> None:
    hub = await hub_listening(probes, identities)
    a = await connected(probes, identities.a)
    await a.call(a.publish, identities.a.topics.inbound, b"hello from a")
    assert await hub.call(hub.next_message) == (identities.a.topics.inbound, b"hello from a", False)


async def test_client_receives_what_the_hub_publishes_on_its_own_out(
    probes: Callable[[], Probe], identities: Identities
) -> None:
    hub = await hub_listening(probes, identities)
    a = await connected(probes, identities.a)
    assert not is_refused(await a.call(a.subscribe, identities.a.topics.outbound))
    await hub.call(hub.publish, identities.a.topics.outbound, b"reply to a")
    assert await a.call(a.next_message) == (identities.a.topics.outbound, b"reply to a", False)
    assert a.qos_seen == [1]


async def test_delivery_qos_is_the_lower_of_publish_and_subscription(
    probes: Callable[[], Probe], identities: Identities
) -> None:
    """MQTT 3.1.1, 3.8.4: a QoS 0 publish reaches a QoS 1 subscriber at QoS 0 (no PUBACK round
    trip), and a QoS 1 publish reaches a QoS 0 subscriber at QoS 0."""
    hub = await connected(probes, identities.hub)
    assert not is_refused(await hub.call(hub.subscribe, HUB_IN, 0))
    a = await connected(probes, identities.a)
    assert not is_refused(await a.call(a.subscribe, identities.a.topics.outbound, 1))
    await hub.call(hub.publish, identities.a.topics.outbound, b"qos 0 to a qos 1 subscription", qos=0)
    assert await a.call(a.next_message) == (identities.a.topics.outbound, b"qos 0 to a qos 1 subscription", False)
    await a.call(a.publish, identities.a.topics.inbound, b"qos 1 to a qos 0 subscription", qos=1)
    assert await hub.call(hub.next_message) == (identities.a.topics.inbound, b"qos 1 to a qos 0 subscription", False)
    await hub.call(hub.publish, identities.a.topics.outbound, b"qos 1 to a qos 1 subscription", qos=1)
    assert (await a.call(a.next_message))[1] == b"qos 1 to a qos 1 subscription"
    assert a.qos_seen == [0, 1]
    assert hub.qos_seen == [0]


@pytest.mark.parametrize(
    "topic_filter",
    ["{b}/out", "{b}/in", "{b}/status", "{a}/in", "{a}/status", "thalovant/+/+/out", "thalovant/#", "#", "+/+/+/+"],
)
async def test_client_may_not_subscribe_beyond_its_own_out(
    broker: MqttBroker, probes: Callable[[], Probe], identities: Identities, topic_filter: str
) -> None:
    """The embedded broker refuses in the SUBACK; Mosquitto grants a 3.1.1 SUBACK but delivers nothing."""
    hub = await connected(probes, identities.hub)
    a = await connected(probes, identities.a)
    b = await connected(probes, identities.b)
    wanted = topic_filter.format(a=identities.a.topic_prefix, b=identities.b.topic_prefix)
    codes = await a.call(a.subscribe, wanted)
    if isinstance(broker, EmbeddedBroker):
        assert is_refused(codes)
    # Traffic that A must not see, then a marker that A may see.
    await hub.call(hub.publish, identities.b.topics.outbound, b"for b")
    await b.call(b.publish, identities.b.topics.inbound, b"b in")
    await b.call(b.publish, identities.b.topics.status, b"b status")
    await a.call(a.publish, identities.a.topics.inbound, b"a in")
    await a.call(a.publish, identities.a.topics.status, b"a status")
    assert not is_refused(await a.call(a.subscribe, identities.a.topics.outbound))
    await hub.call(hub.publish, identities.a.topics.outbound, b"marker")
    topic, payload, _ = await a.call(a.next_message)
    seen = [(topic, payload)]
    while not a.messages.empty():
        topic, payload, _ = a.messages.get_nowait()
        seen.append((topic, payload))
    # Mosquitto may deliver the marker twice (through '#' too): A's own out is readable by A.
    assert {item for item in seen} == {(identities.a.topics.outbound, b"marker")}


async def test_client_may_not_publish_to_another_clients_topics(
    probes: Callable[[], Probe], identities: Identities
) -> None:
    hub = await hub_listening(probes, identities)
    a = await connected(probes, identities.a)
    await a.call(a.publish, identities.b.topics.inbound, b"forged in")
    await a.call(a.publish, identities.b.topics.status, b"forged status")
    await a.call(a.publish, identities.a.topics.inbound, b"marker")
    assert await hub.call(hub.next_message) == (identities.a.topics.inbound, b"marker", False)
    assert hub.messages.empty()


async def test_client_may_not_publish_as_the_hub_on_its_own_out(
    probes: Callable[[], Probe], identities: Identities
) -> None:
    hub = await connected(probes, identities.hub)
    a = await connected(probes, identities.a)
    assert not is_refused(await a.call(a.subscribe, identities.a.topics.outbound))
    await a.call(a.publish, identities.a.topics.outbound, b"spoofed reply")
    await hub.call(hub.publish, identities.a.topics.outbound, b"marker")
    assert await a.call(a.next_message) == (identities.a.topics.outbound, b"marker", False)
    assert a.messages.empty()


async def test_other_clients_do_not_see_a_clients_traffic(probes: Callable[[], Probe], identities: Identities) -> None:
    hub = await connected(probes, identities.hub)
    a = await connected(probes, identities.a)
    b = await connected(probes, identities.b)
    assert not is_refused(await a.call(a.subscribe, identities.a.topics.outbound))
    assert not is_refused(await b.call(b.subscribe, identities.b.topics.outbound))
    await hub.call(hub.publish, identities.a.topics.outbound, b"for a only")
    await hub.call(hub.publish, identities.b.topics.outbound, b"for b")
    assert await b.call(b.next_message) == (identities.b.topics.outbound, b"for b", False)
    assert await a.call(a.next_message) == (identities.a.topics.outbound, b"for a only", False)
    assert b.messages.empty()


async def test_a_new_connection_gets_no_retained_message_it_did_not_subscribe_to(
    probes: Callable[[], Probe], identities: Identities
) -> None:
    """Retained presence is delivered to subscribers of that topic only, never to whoever connects next."""
    hub = await hub_listening(probes, identities)  # its status filter matches every client's status
    a = await connected(probes, identities.a)
    await a.call(a.publish, identities.a.topics.status, b"online", retain=True)
    assert await hub.call(hub.next_message) == (identities.a.topics.status, b"online", False)
    b = await connected(probes, identities.b)
    # anything the broker sends B on connecting arrives before the answer to B's first SUBSCRIBE
    assert not is_refused(await b.call(b.subscribe, identities.b.topics.outbound))
    assert b.messages.empty()
    # a late subscriber to the topic itself still gets the retained message
    late = await connected(probes, identities.hub)
    assert not is_refused(await late.call(late.subscribe, identities.a.topics.status))
    assert await late.call(late.next_message) == (identities.a.topics.status, b"online", True)


async def test_hub_sees_presence_and_the_last_will(probes: Callable[[], Probe], identities: Identities) -> None:
    hub = await hub_listening(probes, identities)
    status = identities.a.topics.status
    a = await connected(probes, identities.a, will=(status, b"offline"))
    await a.call(a.publish, status, b"online", retain=True)
    assert await hub.call(hub.next_message) == (status, b"online", False)
    await a.call(a.drop_connection)
    assert await hub.call(hub.next_message) == (status, b"offline", False)


async def test_a_last_will_on_another_clients_topic_is_never_published(
    probes: Callable[[], Probe], identities: Identities
) -> None:
    """The broker refuses the CONNECT (embedded) or drops the will (Mosquitto)."""
    hub = await hub_listening(probes, identities)
    a = probes()
    if await a.call(a.connect, identities.a.username, identities.a.password, will=(identities.b.topics.status, b"x")):
        await a.call(a.drop_connection)
    marker = await connected(probes, identities.a)
    await marker.call(marker.publish, identities.a.topics.status, b"marker")
    assert await hub.call(hub.next_message) == (identities.a.topics.status, b"marker", False)
    assert hub.messages.empty()


async def test_hub_may_not_publish_to_a_clients_in(probes: Callable[[], Probe], identities: Identities) -> None:
    hub = await hub_listening(probes, identities)
    await hub.call(hub.publish, identities.a.topics.inbound, b"hub forging a client")
    a = await connected(probes, identities.a)
    await a.call(a.publish, identities.a.topics.inbound, b"marker")
    assert await hub.call(hub.next_message) == (identities.a.topics.inbound, b"marker", False)


# -- accounts at run time ---------------------------------------------------------------------


async def test_removed_account_is_disconnected_and_refused(
    broker: MqttBroker, probes: Callable[[], Probe], identities: Identities
) -> None:
    a = await connected(probes, identities.a)
    b = await connected(probes, identities.b)
    assert await broker.remove_account(identities.a.username)
    assert await a.call(a.disconnected.wait, WAIT)
    again = probes()
    assert not await again.call(again.connect, identities.a.username, identities.a.password)
    # Others are untouched.
    assert not b.disconnected.is_set()
    assert not is_refused(await b.call(b.subscribe, identities.b.topics.outbound))
    assert not await broker.remove_account(identities.a.username)
    assert not b.disconnected.is_set()


async def test_added_account_can_connect_at_once(
    broker: MqttBroker, probes: Callable[[], Probe], identities: Identities
) -> None:
    fresh = issue_client_credentials("hub-x", str(uuid.uuid4()))
    early = probes()
    assert not await early.call(early.connect, fresh.username, fresh.password)
    await broker.add_account(fresh.account)
    hub = await hub_listening(probes, identities)
    c = await connected(probes, fresh)
    await c.call(c.publish, fresh.topics.inbound, b"new client")
    assert await hub.call(hub.next_message) == (fresh.topics.inbound, b"new client", False)
    await c.call(c.publish, identities.a.topics.inbound, b"forged")
    await c.call(c.publish, fresh.topics.status, b"marker")
    assert await hub.call(hub.next_message) == (fresh.topics.status, b"marker", False)


async def test_embedded_broker_sockets_have_tcp_nodelay(tls_files: TLSFiles, identities: Identities) -> None:
    async with EmbeddedBroker(
        cert_file=tls_files.cert, key_file=tls_files.key, port=0, accounts=identities.accounts()
    ) as broker:
        probe = Probe(tls_files.ca_cert, broker.address.port)
        try:
            assert await probe.call(probe.connect, identities.a.username, identities.a.password)
            assert broker.connected_users() == {identities.a.username}
            [(_, handler)] = broker._connections.of_user(identities.a.username)
            sock = handler.writer._writer.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            await asyncio.to_thread(probe.close)
    assert not broker.running


async def test_embedded_broker_refuses_a_busy_port(tls_files: TLSFiles) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        broker = EmbeddedBroker(cert_file=tls_files.cert, key_file=tls_files.key, port=busy.getsockname()[1])
        with pytest.raises(BrokerStartError):
            await broker.start()
        assert not broker.running


class SilentSubscriber:
    """A raw MQTT 3.1.1 connection that subscribes at QoS 1 and never acknowledges a message."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, ca_file: Path, port: int, creds: MqttCredentials, topic: str) -> SilentSubscriber:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl.create_default_context(cafile=str(ca_file))
        )
        subscriber = cls(reader, writer)
        body = _utf8("MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big")
        body += _utf8(f"silent-{uuid.uuid4().hex[:8]}") + _utf8(creds.username) + _utf8(creds.password)
        writer.write(bytes([0x10, len(body)]) + body)
        assert await subscriber.packet() == (0x20, b"\x00\x00")
        body = (1).to_bytes(2, "big") + _utf8(topic) + b"\x01"
        writer.write(bytes([0x82, len(body)]) + body)
        assert await subscriber.packet() == (0x90, b"\x00\x01\x01")
        return subscriber

    async def packet(self) -> tuple[int, bytes]:
        """The next packet: its first header byte and its body."""
        async with asyncio.timeout(WAIT):
            first = (await self.reader.readexactly(1))[0]
            length, shift = 0, 0
            while True:
                byte = (await self.reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            return first, await self.reader.readexactly(length)


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


async def test_embedded_broker_bounds_what_a_subscriber_has_unacknowledged(
    tls_files: TLSFiles, identities: Identities
) -> None:
    """30 QoS 1 messages to a subscriber that never sends PUBACK: ``mqtt_max_inflight`` (4) go
    out, the rest wait; a QoS 0 message published after them is not held behind them."""
    limits = Limits(mqtt_max_inflight=4)
    async with EmbeddedBroker(
        cert_file=tls_files.cert, key_file=tls_files.key, port=0, accounts=identities.accounts(), limits=limits
    ) as broker:
        silent = await SilentSubscriber.open(
            tls_files.ca_cert, broker.address.port, identities.a, identities.a.topics.outbound
        )
        hub = Probe(tls_files.ca_cert, broker.address.port)
        try:
            assert await hub.call(hub.connect, identities.hub.username, identities.hub.password)
            for index in range(30):
                await hub.call(hub.publish, identities.a.topics.outbound, b"held %d" % index, qos=1)
            await hub.call(hub.publish, identities.a.topics.outbound, b"marker", qos=0)
            qos1 = 0
            while True:
                first, body = await silent.packet()
                assert first >> 4 == 3, f"not a PUBLISH: 0x{first:02x}"
                if body.endswith(b"marker"):
                    break
                qos1 += (first >> 1) & 3 == 1
            assert qos1 == limits.mqtt_max_inflight
        finally:
            silent.writer.transport.abort()
            await asyncio.to_thread(hub.close)


async def test_embedded_broker_reaches_every_subscriber_while_its_table_changes(
    tls_files: TLSFiles, identities: Identities
) -> None:
    """Two connections of one identity on its ``/out`` (a client and its successor). amqtt's
    delivery loop waits on the ACL plugin for each subscriber of a message, and the session
    monitor (dropping a closed session's subscriptions) or a SUBSCRIBE (adding a filter) may run
    in any such wait. Both run here while the first subscriber's RECEIVE check is pending: the
    message still reaches both subscribers, and the new filter is granted."""
    async with EmbeddedBroker(
        cert_file=tls_files.cert, key_file=tls_files.key, port=0, accounts=identities.accounts()
    ) as broker:
        topic = identities.a.topics.outbound
        probes = [Probe(tls_files.ca_cert, broker.address.port) for _ in range(3)]
        old, new, hub = probes
        try:
            for probe in (old, new):
                assert await probe.call(probe.connect, identities.a.username, identities.a.password)
                assert not is_refused(await probe.call(probe.subscribe, topic, 1))
            assert await hub.call(hub.connect, identities.hub.username, identities.hub.password)
            amqtt = broker._broker
            # amqtt's table: filter -> [(session, qos)], in subscription order
            [first, second] = [session.client_id for session, _qos in amqtt._subscriptions[topic]]
            by_client = {old.client._client_id.decode(): old, new.client._client_id.decode(): new}
            first_probe, second_probe = by_client[first], by_client[second]

            [plugin] = [p for p in amqtt.plugins_manager.plugins if isinstance(p, BrokerAccessPlugin)]
            check = plugin.topic_filtering
            changed: list[int] = []

            async def checked(*, session: Any = None, topic: str | None = None, action: Any = None) -> bool:
                if not changed and action == Action.RECEIVE:
                    # the delivery loop waits on this check: change the table meanwhile
                    [(first_session, _qos), _] = amqtt._subscriptions[topic]
                    amqtt._del_subscription(topic, first_session)  # what the session monitor does
                    hub_session = amqtt._sessions[hub.client._client_id.decode()][0]
                    changed.append(await amqtt.add_subscription((HUB_STATUS, 0), hub_session))  # a SUBSCRIBE
                return await check(session=session, topic=topic, action=action)

            plugin.topic_filtering = checked
            await hub.call(hub.publish, topic, b"to both", qos=0)
            assert await second_probe.call(second_probe.next_message) == (topic, b"to both", False)
            assert changed == [0]  # the new filter was granted at QoS 0
            # the dropped subscription was live when the message was published: it was delivered too
            assert await first_probe.call(first_probe.next_message) == (topic, b"to both", False)
        finally:
            for probe in probes:
                await asyncio.to_thread(probe.close)
