"""The MQTT carrier (spec 4.3) against a real Mosquitto 2 broker on 127.0.0.1 (TLS, users, ACL).

The hub's side is played by the test with a second paho client (the broker user ``hub``), so
each test can check exactly what the carrier publishes and how it reads what comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from peers.processes import free_port
from tests.fixtures.peers import trust_env

from thalovant.carriers import CarrierClosed, CarrierOpenError, MQTTCarrier, carrier_for
from thalovant.carriers.mqtt import MAX_INBOUND, MqttSettings, hello_text, load_paho, topics_for_prefix
from thalovant.client import select_protocol
from thalovant.errors import ThalovantError, ThalovantUnsupportedProtocolError
from thalovant.identity import MqttBrokerCredentials, ThalovantIdentity
from thalovant.noise_store import NoiseStore
from thalovant.runtime.link import Credentials, establish
from thalovant_server.tls import ensure_dev_tls

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
CLIENT_USER, CLIENT_PASSWORD = "client-a", "client-a-password-0123456789"
HUB_USER, HUB_PASSWORD = "hub", "hub-password-0123456789abcdef"
PREFIX = "tv/client-a"
PIN = "https://hub.example.com:443/hubs/h1"


@pytest.fixture(autouse=True)
def _mosquitto_installed() -> None:
    if not (os.path.exists(MOSQUITTO) and os.path.exists(MOSQUITTO_PASSWD)):
        pytest.fail("mosquitto is not installed (apt-get install mosquitto; ./scripts/test does it)")


@dataclass
class Broker:
    port: int
    ca_file: Path
    process: subprocess.Popen[str]

    def endpoint(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_broker(folder: Path, tls: Any) -> Broker:
    """A Mosquitto with one TLS listener, two users and a per-client ACL; returns once it listens."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    passwd = folder / "passwd"
    passwd.write_text(f"{CLIENT_USER}:{CLIENT_PASSWORD}\n{HUB_USER}:{HUB_PASSWORD}\n")
    passwd.chmod(0o600)
    subprocess.run([MOSQUITTO_PASSWD, "-U", str(passwd)], check=True, capture_output=True)
    acl = folder / "acl"
    acl.write_text(f"user {CLIENT_USER}\ntopic readwrite {PREFIX}/#\n\nuser {HUB_USER}\ntopic readwrite tv/#\n")
    config = folder / "mosquitto.conf"
    config.write_text(
        "\n".join(
            [
                "per_listener_settings false",
                f"user {pwd.getpwuid(os.getuid()).pw_name}",
                "allow_anonymous false",
                f"password_file {passwd}",
                f"acl_file {acl}",
                "persistence false",
                "log_dest stderr",  # unbuffered, unlike stdout into a pipe
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "set_tcp_nodelay true",
                f"listener {port} 127.0.0.1",
                f"cafile {tls.ca_cert}",
                f"certfile {tls.cert}",
                f"keyfile {tls.key}",
                "",
            ]
        )
    )
    process = subprocess.Popen(
        [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:  # wait for the "running" line, not for a clock
        lines.append(line)
        if " running" in line:
            break
    else:
        raise RuntimeError("mosquitto did not start:\n" + "".join(lines))
    return Broker(port, Path(tls.ca_cert), process)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return ensure_dev_tls(tmp_path_factory.mktemp("mqtt-tls"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, tls_files: Any) -> Iterator[Broker]:
    running = start_broker(tmp_path_factory.mktemp("mosquitto"), tls_files)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def trusted(tls_files: Any) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in trust_env(Path(tls_files.ca_cert)).items():
            patch.setenv(key, value)
        yield


class ScriptedHub:
    """The hub's side: a threaded paho client; what it receives lands on an asyncio queue."""

    def __init__(self, broker: Broker, loop: asyncio.AbstractEventLoop, *, clear_retained: bool = True) -> None:
        self.loop = loop
        self.clear_retained = clear_retained
        self.messages: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue()
        self.ready = asyncio.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="scripted-hub")
        self.client.username_pw_set(HUB_USER, HUB_PASSWORD)
        self.client.tls_set(ca_certs=str(broker.ca_file))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, *_args: Any) -> None:
        if self.clear_retained:  # an earlier test's retained presence must not show up here
            client.publish(f"{PREFIX}/status", b"", qos=1, retain=True)
        client.subscribe([(f"{PREFIX}/in", 1), (f"{PREFIX}/status", 1)])

    def _on_subscribe(self, *_args: Any) -> None:
        self.loop.call_soon_threadsafe(self.ready.set)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        item = (message.topic, bytes(message.payload), bool(message.retain))
        self.loop.call_soon_threadsafe(self.messages.put_nowait, item)

    async def next(self, topic: str | None = None) -> tuple[str, bytes, bool]:
        while True:
            item = await self.messages.get()
            if topic is None or item[0] == topic:
                return item

    async def publish(self, payload: bytes | str, topic: str = f"{PREFIX}/out") -> None:
        info = self.client.publish(topic, payload, qos=1)
        await asyncio.to_thread(info.wait_for_publish)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
async def hub(broker: Broker) -> AsyncIterator[ScriptedHub]:
    scripted = ScriptedHub(broker, asyncio.get_running_loop())
    await scripted.ready.wait()
    try:
        yield scripted
    finally:
        await asyncio.to_thread(scripted.stop)


def settings(broker: Broker, **changes: Any) -> MqttSettings:
    block = {
        "endpoint": broker.endpoint(),
        "username": CLIENT_USER,
        "password": CLIENT_PASSWORD,
        "topic_prefix": PREFIX,
        "qos": 1,
        "tls": True,
        **changes,
    }
    return MqttSettings.from_credentials(MqttBrokerCredentials.from_mapping(block))


def make(broker: Broker, **changes: Any) -> MQTTCarrier:
    carrier = MQTTCarrier(settings(broker, **changes), pin_id=PIN, site_id="site-7")
    carrier.bind_session("thalovant-python-test-session")
    return carrier


# ---------------------------------------------------------------- the happy path


async def test_session_on_the_wire(broker: Broker, hub: ScriptedHub, trusted: None) -> None:
    carrier = make(broker)
    assert carrier.pin_id == PIN
    assert carrier.endpoint == f"mqtts://127.0.0.1:{broker.port}"
    await carrier.open(4)
    try:
        assert carrier.alive
        _topic, payload, _ = await hub.next(f"{PREFIX}/in")
        assert json.loads(payload) == {
            "msg_type": "hello",
            "payload": {
                "pubkey": "",
                "session": {"session_id": "thalovant-python-test-session"},
                "site_id": "site-7",
            },
            "metadata": {},
            "route": [],
            "node": None,
            "target_site_id": None,
            "target_pubkey": None,
            "source_peer": None,
        }
        await hub.publish('{"msg_type":"hello","payload":{}}')
        await hub.publish(b'{"msg_type":"shake"}')
        await hub.publish("ignored", topic=f"{PREFIX}/elsewhere")
        assert await carrier.receive() == '{"msg_type":"hello","payload":{}}'
        assert await carrier.receive() == '{"msg_type":"shake"}'

        await carrier.send_text('{"msg_type":"shake","n":1}')
        assert (await hub.next(f"{PREFIX}/in"))[1] == b'{"msg_type":"shake","n":1}'

        sealed = b"{\x00\xff raw noise bytes"
        await carrier.send_binary(sealed)
        assert (await hub.next(f"{PREFIX}/in"))[1] == sealed  # raw, no base64
        assert (await hub.next(f"{PREFIX}/status"))[1:] == (b"online", False)

        await hub.publish(b'{"looks":"like json"}')  # after authentication: bytes as they are
        assert await carrier.receive() == b'{"looks":"like json"}'
    finally:
        await carrier.close()
    assert (await hub.next(f"{PREFIX}/status"))[1] == b"offline"
    assert not carrier.alive
    with pytest.raises(CarrierClosed):
        await carrier.receive()


async def test_status_is_retained(broker: Broker, hub: ScriptedHub, trusted: None) -> None:
    carrier = make(broker)
    await carrier.open(4)
    await carrier.send_binary(b"\x01hello")
    await carrier.close()
    late = ScriptedHub(broker, asyncio.get_running_loop(), clear_retained=False)  # subscribes after the fact
    try:
        await late.ready.wait()
        _topic, payload, retained = await late.next(f"{PREFIX}/status")
        assert (payload, retained) == (b"offline", True)
    finally:
        await asyncio.to_thread(late.stop)


async def test_last_will_on_a_dropped_connection(broker: Broker, hub: ScriptedHub, trusted: None) -> None:
    carrier = make(broker)
    await carrier.open(4)
    await carrier.send_binary(b"\x01hello")
    assert (await hub.next(f"{PREFIX}/status"))[1] == b"online"
    carrier._drop()  # the socket dies without DISCONNECT: the broker publishes the will
    assert (await hub.next(f"{PREFIX}/status"))[1] == b"offline"
    await carrier.close()


async def test_client_ids_are_fresh_and_free_of_secrets(broker: Broker, trusted: None) -> None:
    carriers = [make(broker), make(broker)]
    ids = []
    for carrier in carriers:
        await carrier.open(4)
        assert carrier._client is not None
        ids.append(carrier._client._client_id.decode())
    for carrier in carriers:
        await carrier.close()
    assert ids[0] != ids[1]
    for client_id in ids:
        assert client_id.startswith("thalovant-") and len(client_id) == len("thalovant-") + 32
        assert CLIENT_PASSWORD not in client_id and CLIENT_USER not in client_id


async def test_the_socket_has_tcp_nodelay(broker: Broker, trusted: None) -> None:
    carrier = make(broker)
    await carrier.open(4)
    try:
        assert carrier._client is not None
        sock = carrier._client.socket()
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        await carrier.close()


async def test_inbound_overflow_ends_the_session(broker: Broker, hub: ScriptedHub, trusted: None) -> None:
    carrier = make(broker)
    await carrier.open(4)
    await carrier.send_binary(b"\x01hello")
    sent = MAX_INBOUND + 20
    infos = [hub.client.publish(f"{PREFIX}/out", bytes([i % 256]) * 8, qos=1) for i in range(sent)]
    for info in infos:
        await asyncio.to_thread(info.wait_for_publish)
    delivered = 0
    with pytest.raises(CarrierClosed, match=f"More than {MAX_INBOUND}"):
        while True:
            await carrier.receive()
            delivered += 1
    assert delivered == MAX_INBOUND
    await carrier.close()


async def test_broker_going_away_ends_the_session(tmp_path: Path, tls_files: Any, trusted: None) -> None:
    own = start_broker(tmp_path / "own-broker", tls_files)
    try:
        carrier = make(own)
        await carrier.open(4)
        own.stop()
        with pytest.raises(CarrierClosed):
            await carrier.receive()
        assert not carrier.alive
        with pytest.raises(CarrierClosed):
            await carrier.send_text("{}")
        await carrier.close()
    finally:
        own.stop()


# ---------------------------------------------------------------- opening errors


async def test_wrong_broker_password_is_a_connection_error(broker: Broker, trusted: None) -> None:
    carrier = make(broker, password="wrong-password-xxxxxxxxxx")
    with pytest.raises(CarrierOpenError, match="refused the connection"):
        await carrier.open(4)
    await carrier.close()


async def test_untrusted_broker_certificate(broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in trust_env(ensure_dev_tls(tmp_path / "other-ca").ca_cert).items():
        monkeypatch.setenv(key, value)
    carrier = make(broker)
    with pytest.raises(CarrierOpenError, match="certificate verification failed"):
        await carrier.open(4)
    await carrier.close()


async def test_nothing_listening(trusted: None, broker: Broker) -> None:
    carrier = MQTTCarrier(settings(broker, endpoint=f"mqtts://127.0.0.1:{free_port()}"), pin_id=PIN, site_id="s")
    with pytest.raises(CarrierOpenError, match="Cannot reach the MQTT broker"):
        await carrier.open(4)
    await carrier.close()


# ---------------------------------------------------------------- settings and factory


def identity_with(mqtt: dict[str, Any] | None, protocols: dict[str, bool] | None = None) -> ThalovantIdentity:
    data: dict[str, Any] = {
        "access_key": "k",
        "password": "p",
        "site_id": "site-9",
        "default_master": "https://hub.example.com",
        "default_port": 443,
        "default_path": "/hubs/h1",
    }
    if mqtt is not None:
        data["mqtt"] = mqtt
    if protocols:
        data["protocols"] = protocols
    return ThalovantIdentity.from_mapping(data)


def test_factory_shares_the_https_pin_and_uses_the_identity() -> None:
    identity = identity_with(
        {
            "endpoint": "mqtts://broker.example.com",
            "username": "u",
            "password": "pw",
            "topic_prefix": " /tv/abc/ ",
            "qos": 0,
        }
    )
    carrier = carrier_for("mqtt", identity, useragent="ua")
    assert isinstance(carrier, MQTTCarrier)
    assert carrier.pin_id == identity.endpoint_base() == PIN
    assert carrier.endpoint == "mqtts://broker.example.com:8883"
    assert carrier.settings.topics == topics_for_prefix("tv/abc")
    assert carrier.settings.qos == 0
    assert carrier.session_id.startswith("thalovant-python-mqtt-") and len(carrier.session_id) == 22 + 32
    assert json.loads(carrier.hello_text)["payload"]["site_id"] == "site-9"
    assert "pw" not in repr(carrier.settings)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (None, "no MQTT broker credentials"),
        ({"endpoint": "mqtt://b.example.com", "username": "u", "password": "p", "topic_prefix": "t"}, "TLS"),
        (
            {"endpoint": "mqtt://b.example.com", "username": "u", "password": "p", "topic_prefix": "t", "tls": "no"},
            "TLS",
        ),
        ({"endpoint": "mqtts://b.example.com", "username": "u", "password": "p"}, "topic_prefix"),
        ({"endpoint": "mqtts://b.example.com", "username": "u", "password": "p", "topic_prefix": "a/#"}, "'#'"),
        ({"endpoint": "mqtts://b.example.com", "username": "u", "password": "p", "topic_prefix": "a/+/b"}, "'#'"),
        ({"endpoint": "https://b.example.com", "username": "u", "password": "p", "topic_prefix": "t"}, "mqtt://"),
    ],
)
def test_unusable_mqtt_blocks_are_refused(block: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(ThalovantUnsupportedProtocolError, match=message):
        carrier_for("mqtt", identity_with(block), useragent="ua")


def test_tls_by_flag_or_scheme() -> None:
    # built directly: the identity loader of this SDK keeps only mqtt:// and mqtts:// endpoints
    ssl_scheme = MqttBrokerCredentials("ssl://b.example.com:9999", "u", "p", "t", 1, False)
    tcp_with_flag = MqttBrokerCredentials("tcp://b.example.com", "u", "p", "t", 1, True)
    tcp_without = MqttBrokerCredentials("tcp://b.example.com", "u", "p", "t", 1, False)
    assert MqttSettings.from_credentials(ssl_scheme).port == 9999
    assert MqttSettings.from_credentials(tcp_with_flag).port == 8883
    with pytest.raises(ThalovantUnsupportedProtocolError, match="TLS"):
        MqttSettings.from_credentials(tcp_without)


def test_control_characters_in_the_prefix_are_refused() -> None:
    with pytest.raises(ThalovantUnsupportedProtocolError):
        topics_for_prefix("tv/\x00bad")


def test_hello_text_is_compact_json() -> None:
    text = hello_text("sid-1", "site-1")
    assert " " not in text
    assert json.loads(text)["payload"]["session"] == {"session_id": "sid-1"}


def test_missing_paho_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(ThalovantUnsupportedProtocolError, match=r"pip install 'thalovant-selfhosted\[mqtt\]'"):
        load_paho()
    block = {"endpoint": "mqtts://b.example.com", "username": "u", "password": "p", "topic_prefix": "t"}
    with pytest.raises(ThalovantUnsupportedProtocolError, match="thalovant-selfhosted"):
        carrier_for("mqtt", identity_with(block), useragent="ua")


def test_auto_selection_falls_back_along_wss_https_mqtt() -> None:
    """Guide: prefer WSS, then HTTPS, then MQTT when the identity has broker credentials."""
    block = {"endpoint": "mqtts://b.example.com", "username": "u", "password": "p", "topic_prefix": "t"}
    only_mqtt = identity_with(block, {"wss": False, "http": False, "mqtt": True})
    assert select_protocol(only_mqtt, None) == "mqtt"
    both = identity_with(block, {"wss": False, "http": True, "mqtt": True})
    assert select_protocol(both, None) == "https"
    nothing_enabled = identity_with(block)  # defaults: wss on (no endpoint), http and mqtt off
    assert select_protocol(nothing_enabled, None) == "https"  # the endpoint_base() fallback of spec 1.6
    assert isinstance(carrier_for(select_protocol(only_mqtt, None), only_mqtt, useragent="ua"), MQTTCarrier)


async def test_the_link_puts_its_session_into_the_cleartext_hello(
    broker: Broker, hub: ScriptedHub, trusted: None, tmp_path: Path
) -> None:
    """The cleartext HELLO is the same object as the encrypted HELLO the negotiation sends (spec 4.3, 3.10)."""
    carrier = MQTTCarrier(settings(broker), pin_id=PIN, site_id="identity-site")
    credentials = Credentials(access_key="unused-on-mqtt", password="pw", site_id="link-site")
    attempt = asyncio.create_task(
        establish(
            lambda: carrier,
            store=NoiseStore(tmp_path / "noise"),
            credentials=credentials,
            session_id="link-session-42",
            connect_timeout=4,
            handshake_timeout=60,
        )
    )
    try:
        _topic, payload, _ = await hub.next(f"{PREFIX}/in")
    finally:
        attempt.cancel()  # nobody answers the HELLO: how the attempt ends is not this test's concern
        with contextlib.suppress(asyncio.CancelledError, ThalovantError):
            await attempt
    hello = json.loads(payload)["payload"]
    assert hello["session"] == {"session_id": "link-session-42"}
    assert hello["site_id"] == "link-site"


async def test_binary_left_from_an_earlier_session_is_dropped_before_the_handshake(
    broker: Broker, hub: ScriptedHub, trusted: None
) -> None:
    """The hub may still publish answers of the identity's previous session on ``<prefix>/out``
    after a new session subscribed; before its handshake the new session drops them (they used
    to end its connect with 'Application traffic received before Noise authentication')."""
    carrier = make(broker)
    await carrier.open(4)
    try:
        await hub.next(f"{PREFIX}/in")  # the client's HELLO
        await hub.publish(b"\x00\x01 a sealed answer of the previous session")
        await hub.publish('{"msg_type":"hello","payload":{}}')
        assert await carrier.receive() == '{"msg_type":"hello","payload":{}}'
    finally:
        await carrier.close()
