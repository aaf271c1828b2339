"""MQTT's hub-to-client topic ``<prefix>/out`` belongs to the identity, not to one session.

What the hub sends another session of the same identity (an earlier process that left before
reading the answers to its HELLO or its message 1) reaches every session subscribed at that
moment, and the hub's HELLO and offer read the same for every session. The live tests make that
happen on purpose against ``thalovant-server serve --demo`` (embedded broker): a second broker
connection with the identity's MQTT credentials plays the other session, and our client's
cleartext HELLO is held (the SDK's MQTT carrier, watched) until the other session's frames have
reached our carrier. Each step waits for the event it needs; nothing sleeps.

The scripted tests need no network: a carrier on a shared channel whose hub is a script covers
the single fresh retry of a negotiation built on another session's HELLO and offer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from tests.fixtures.identities import new_identity, trusting
from tests.fixtures.server import RunningServer

from thalovant import ThalovantIdentity
from thalovant.carriers import CARRIER_FACTORIES, Carrier
from thalovant.carriers.mqtt import MQTTCarrier, MqttSettings, hello_text
from thalovant.client import AsyncThalovantClient
from thalovant.errors import ThalovantConnectionError, ThalovantError
from thalovant.noise_store import NoiseStore, https_pin_id
from thalovant.protocol.envelope import HiveMessage
from thalovant.protocol.errors import ProtocolError
from thalovant.protocol.negotiation import ClientNegotiation, HubNegotiation
from thalovant.protocol.noise import KeyPair
from thalovant.runtime.link import Credentials, establish

CAPABILITIES = "This hub can answer quick joke and trivia requests."


def kind_of(payload: bytes) -> str:
    """What a hub publish on ``/out`` is, read the way a test can without keys."""
    try:
        message = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return "binary"
    if not isinstance(message, dict):
        return "binary"
    if message.get("msg_type") == "hello":
        return "hello"
    body = message.get("payload")
    noise = body.get("noise") if isinstance(body, dict) else None
    return "message 2" if isinstance(noise, dict) and isinstance(noise.get("msg"), str) else "offer"


class Arrivals:
    """The kinds of the hub's messages one session received, in order, and a wait for each kind."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.texts: list[str] = []
        self._seen: dict[str, asyncio.Event] = {}

    def record(self, payload: bytes) -> None:
        kind = kind_of(payload)
        self.kinds.append(kind)
        if kind != "binary":
            self.texts.append(payload.decode())
        self._seen.setdefault(kind, asyncio.Event()).set()

    async def arrival(self, kind: str) -> None:
        """Returns once a message of ``kind`` has arrived (at once when one already has)."""
        await self._seen.setdefault(kind, asyncio.Event()).wait()


class WatchedCarrier(MQTTCarrier):
    """The SDK's MQTT carrier, watched: every message on ``/out`` is recorded as it arrives, and
    with ``hold`` the cleartext HELLO (published once ``/out`` is subscribed) waits for
    :meth:`let_hello_go`."""

    def __init__(self, *args: Any, hold: Callable[[WatchedCarrier], None] | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals = Arrivals()
        self._hold = hold
        self._released = asyncio.Event()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic == self.settings.topics.outbound:
            self.arrivals.record(bytes(message.payload))
        super()._on_message(client, userdata, message)

    async def _publish(self, topic: str, payload: bytes, qos: int, *, retain: bool = False, wait: bool = True) -> None:
        hold, self._hold = self._hold, None
        if hold is not None and topic == self.settings.topics.inbound:
            hold(self)  # subscribed to /out; our HELLO waits
            await self._released.wait()
        await super()._publish(topic, payload, qos, retain=retain, wait=wait)

    def let_hello_go(self) -> None:
        self._released.set()


class HoldingFactory:
    """The SDK's MQTT carrier factory, its carriers watched; the first one to open holds its HELLO."""

    def __init__(self) -> None:
        self.held: asyncio.Future[WatchedCarrier] = asyncio.get_running_loop().create_future()

    def _holding(self, carrier: WatchedCarrier) -> None:
        if not self.held.done():
            self.held.set_result(carrier)

    def __call__(self, identity: ThalovantIdentity, _useragent: str, verify_tls: bool) -> Carrier:
        return WatchedCarrier(
            MqttSettings.from_credentials(identity.mqtt),
            pin_id=https_pin_id(identity.endpoint_base()),
            site_id=identity.site_id,
            verify_tls=verify_tls,
            hold=None if self.held.done() else self._holding,
        )


class OtherSession:
    """Another broker session with the identity's credentials: an earlier process of the same client."""

    def __init__(self, settings: MqttSettings, ca_file: Path) -> None:
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.arrivals = Arrivals()
        self._connected = asyncio.Event()
        self._subscribed = asyncio.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"thalovant-test-{secrets.token_hex(8)}")
        self.client.username_pw_set(settings.username, settings.password)
        self.client.tls_set(ca_certs=str(ca_file))
        self.client.on_connect = lambda *_args: self.loop.call_soon_threadsafe(self._connected.set)
        self.client.on_subscribe = lambda *_args: self.loop.call_soon_threadsafe(self._subscribed.set)
        self.client.on_message = lambda _c, _u, message: self.loop.call_soon_threadsafe(
            self.arrivals.record, bytes(message.payload)
        )

    async def start(self, *, subscribe: bool) -> None:
        await asyncio.to_thread(self.client.connect, self.settings.host, self.settings.port)
        self.client.loop_start()
        await self._connected.wait()
        if subscribe:
            self.client.subscribe(self.settings.topics.outbound, qos=1)
            await self._subscribed.wait()

    async def publish(self, text: str) -> None:
        info = self.client.publish(self.settings.topics.inbound, text.encode(), qos=1)
        await asyncio.to_thread(info.wait_for_publish)

    async def stop(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


@pytest.fixture
def mqtt_identity(server: RunningServer) -> Iterator[ThalovantIdentity]:
    with trusting(server):
        yield new_identity(server, f"sdk-mqtt-shared-{secrets.token_hex(4)}", "mqtt")


@pytest.fixture
async def holding(monkeypatch: pytest.MonkeyPatch) -> HoldingFactory:
    factory = HoldingFactory()
    monkeypatch.setitem(CARRIER_FACTORIES, "mqtt", factory)
    return factory


async def settle(task: asyncio.Task[None]) -> None:
    """End a connect the test no longer waits for (after a failure), without leaving it pending."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ThalovantError):
        await task


def our_client(identity: ThalovantIdentity, tmp_path: Path) -> AsyncThalovantClient:
    # the hold is part of opening: give it time beyond the default 4 s
    return AsyncThalovantClient(
        identity,
        protocol="mqtt",
        noise_state_dir=tmp_path / "noise",
        reply_settle_seconds=0,
        connect_timeout=60,
        auto_reconnect=False,
    )


async def test_a_hello_and_offer_sent_to_another_session_first_start_no_second_negotiation(
    server: RunningServer, mqtt_identity: ThalovantIdentity, holding: HoldingFactory, tmp_path: Path
) -> None:
    """Used to fail with 'Malformed HiveMind negotiation: Missing node_id or duplicate Noise HELLO'."""
    settings = MqttSettings.from_credentials(mqtt_identity.mqtt)
    ours = our_client(mqtt_identity, tmp_path)
    other = OtherSession(settings, server.ca_file)
    connecting = asyncio.create_task(ours.connect())
    try:
        session = await holding.held  # subscribed to /out; our HELLO waits
        await other.start(subscribe=False)
        await other.publish(hello_text("thalovant-python-mqtt-other", mqtt_identity.site_id))
        await session.arrivals.arrival("offer")  # the hub's HELLO and offer for the other session reached us
        session.let_hello_go()
        await connecting
        assert session.arrivals.kinds[:5] == ["hello", "offer", "hello", "offer", "message 2"]
        assert (await ours.ask("What can this hub do?")).text == CAPABILITIES
    finally:
        await settle(connecting)
        await ours.close()
        await other.stop()


async def test_a_message2_sent_to_another_session_first_is_not_ours(
    server: RunningServer, mqtt_identity: ThalovantIdentity, holding: HoldingFactory, tmp_path: Path
) -> None:
    """Used to fail with 'Malformed HiveMind negotiation: Out-of-order Noise negotiation' (the CI's
    doctor failure over MQTT)."""
    settings = MqttSettings.from_credentials(mqtt_identity.mqtt)
    other = OtherSession(settings, server.ca_file)
    ours = our_client(mqtt_identity, tmp_path)
    connecting: asyncio.Task[None] | None = None
    try:
        # the other session: HELLO, the hub's HELLO and offer (before we subscribe), then its message 1
        await other.start(subscribe=True)
        await other.publish(hello_text("thalovant-python-mqtt-other", mqtt_identity.site_id))
        await other.arrivals.arrival("offer")
        negotiation = ClientNegotiation(
            static=KeyPair.generate(), site_id=mqtt_identity.site_id, session_id="other", hub_pin=None, force_xx=True
        )
        for text in other.arrivals.texts:
            negotiation.receive_text(text)
        message1 = negotiation.start(bytes(32))  # XXpsk2 message 1 does not use the PSK yet

        connecting = asyncio.create_task(ours.connect())
        session = await holding.held  # subscribed to /out; our HELLO waits
        await other.publish(message1)
        await session.arrivals.arrival("message 2")  # the hub's answer to the other session reached us first
        session.let_hello_go()
        await connecting
        assert session.arrivals.kinds[:4] == ["message 2", "hello", "offer", "message 2"]
        assert (await ours.ask("What can this hub do?")).text == CAPABILITIES
    finally:
        if connecting is not None:
            await settle(connecting)
        await ours.close()
        await other.stop()


# ---------------------------------------------------------------- without a network

NODE = "node-scripted"
PSK = bytes(range(32))
HUB_KEY = KeyPair.generate()


def hub_state(**hello_extra: Any) -> Callable[[], HubNegotiation]:
    """A hub (one key, node id and PSK) whose HELLO carries ``hello_extra``: a fresh negotiation per HELLO."""
    return lambda: HubNegotiation(
        node_id=NODE, static=HUB_KEY, psk=PSK, pinned_client_key=None, hello_extra=hello_extra or None
    )


class ScriptedCarrier(Carrier):
    """A carrier whose hub is a script: opening, and each send, may make it answer."""

    protocol = "mqtt"

    def __init__(self, *, shared: bool, opened: list[str], answer: Callable[[str | bytes], list[str | bytes]]) -> None:
        self.shared_inbound = shared
        self._opened = opened
        self._answer = answer
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._alive = False

    @property
    def pin_id(self) -> str:
        return "mqtts://hub.test:8883"

    @property
    def endpoint(self) -> str:
        return "mqtts://hub.test:8883"

    @property
    def alive(self) -> bool:
        return self._alive

    async def open(self, timeout: float) -> None:
        self._alive = True
        for message in self._opened:
            self._inbox.put_nowait(message)

    async def send_text(self, text: str) -> None:
        for message in self._answer(text):
            self._inbox.put_nowait(message)

    async def send_binary(self, data: bytes) -> None:
        for message in self._answer(data):
            self._inbox.put_nowait(message)

    async def receive(self) -> str | bytes:
        return await self._inbox.get()

    async def close(self) -> None:
        self._alive = False


class ScriptedHub:
    """Sessions before ``clean_from`` open on ``stale``'s HELLO and offer (another session's
    copies), and the hub's own answer to our HELLO comes after our message 1; later sessions open
    on the hub's own. ``carriers`` counts the sessions made."""

    def __init__(
        self, stale: Callable[[], HubNegotiation], own: Callable[[], HubNegotiation], *, clean_from: int, shared: bool
    ) -> None:
        self.stale, self.own, self.clean_from, self.shared = stale, own, clean_from, shared
        self.carriers = 0

    def __call__(self) -> Carrier:
        self.carriers += 1
        clean = self.carriers >= self.clean_from
        hub = self.own()
        own_opening = hub.opening()

        def answer(message: str | bytes) -> list[str | bytes]:
            if isinstance(message, bytes):  # the encrypted HELLO; the hub's first frame ends the settle wait
                hub.receive_binary(message)
                return list(hub.channel.seal_json(HiveMessage.bus("ready").to_bytes()))
            replies: list[str | bytes] = []
            if '"pattern"' in message and not clean:  # the hub's answer to our HELLO comes after message 1
                replies.extend(own_opening)
            # a message 1 built on a pair unlike the hub's: the hub cannot read it and says nothing
            with contextlib.suppress(ProtocolError):
                replies.extend(hub.receive_text(message))
            return replies

        opened = own_opening if clean else self.stale().opening()
        return ScriptedCarrier(shared=self.shared, opened=list(opened), answer=answer)


async def scripted_establish(hub: ScriptedHub, tmp_path: Path) -> Any:
    return await establish(
        hub,
        store=NoiseStore(tmp_path / "noise"),
        credentials=Credentials(access_key="access", password="secret", site_id="site"),
        session_id="thalovant-python-scripted",
        connect_timeout=5,
        handshake_timeout=5,
        derive=lambda _password, _node_id: PSK,
    )


async def test_message1_built_on_another_sessions_pair_is_retried_at_once_on_a_fresh_session(tmp_path: Path) -> None:
    stale, own = hub_state(peer="an earlier session's hub state"), hub_state()
    hub = ScriptedHub(stale, own, clean_from=2, shared=True)
    link = await scripted_establish(hub, tmp_path)
    try:
        assert (hub.carriers, link.timings.attempts, link.pattern) == (2, 2, "XXpsk2")
    finally:
        await link.close()


async def test_the_fresh_retry_is_made_once(tmp_path: Path) -> None:
    stale, own = hub_state(peer="an earlier session's hub state"), hub_state()
    hub = ScriptedHub(stale, own, clean_from=3, shared=True)
    with pytest.raises(ThalovantConnectionError, match="Malformed HiveMind negotiation: The hub restarted") as caught:
        await scripted_establish(hub, tmp_path)
    assert type(caught.value) is ThalovantConnectionError
    assert hub.carriers == 2


async def test_a_copy_equal_to_the_hubs_own_needs_no_retry(tmp_path: Path) -> None:
    hub = ScriptedHub(hub_state(), hub_state(), clean_from=2, shared=True)
    link = await scripted_establish(hub, tmp_path)
    try:
        assert (hub.carriers, link.timings.attempts) == (1, 1)
    finally:
        await link.close()


async def test_a_channel_of_the_sessions_own_stays_strict(tmp_path: Path) -> None:
    """WSS and HTTPS give each session its own channel: a second HELLO still ends the connect."""
    hub = ScriptedHub(hub_state(), hub_state(), clean_from=2, shared=False)
    with pytest.raises(ThalovantConnectionError, match="duplicate Noise HELLO"):
        await scripted_establish(hub, tmp_path)
    assert hub.carriers == 1
