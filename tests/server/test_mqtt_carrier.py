"""The hub-side MQTT carrier against real brokers (amqtt embedded, Mosquitto 2), no mocks.

Each test builds a SQLite store in ``tmp_path`` with one user, one hub (MQTT enabled) and a
few client identities made through the store functions, a :class:`HubRuntime` over the
store's :class:`StoreDirectory`, a broker on 127.0.0.1 with TLS from the development CA and
the per-identity accounts, and the :class:`MqttHubCarrier` logged in as the hub service
user. Clients are our SDK (``protocol="mqtt"``), the public SDK 0.9.7 in its own virtual
environment, and raw MQTT connections for malformed input. Waits are on events or on
observable state, never on the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import ssl
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import update
from tests.fixtures.mosquitto import new_mosquitto, require_mosquitto
from tests.fixtures.peers import trust_env

from thalovant import ThalovantIdentity
from thalovant.client import AsyncThalovantClient
from thalovant.errors import ThalovantHubKeyChangedError
from thalovant.noise_store import NoiseStore, https_pin_id
from thalovant.protocol.envelope import BusMessage
from thalovant.protocol.psk import derive_psk
from thalovant_server.api.state import ControlPlane
from thalovant_server.app import open_control_plane
from thalovant_server.carriers.mqtt import DORMANT_TTL, BrokerRefusedError, MqttHubCarrier, parse_topic
from thalovant_server.config import ServerConfig
from thalovant_server.hub.runtime import HubRuntime
from thalovant_server.mqtt import (
    BrokerAddress,
    MqttCredentials,
    issue_client_credentials,
    issue_hub_credentials,
)
from thalovant_server.mqtt.embedded import EmbeddedBroker
from thalovant_server.secrets import SealingKey, hash_password, sha256_hex
from thalovant_server.store import accounts, clients, hubs
from thalovant_server.store.engine import Store
from thalovant_server.store.hub_spec import normalise_spec
from thalovant_server.store.models import Client
from thalovant_server.store.sealed import seal_psk
from thalovant_server.tls import TLSFiles, ensure_dev_tls

GUIDE_JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."
SKILLS = ["jokes", "trivia", "capabilities", "memory"]


# -- the world: store, hub, identities, broker, carrier ------------------------------------------


@dataclass
class Identity:
    """A client identity: the store row's ids, its secrets, and its broker credentials."""

    client_id: str
    hub_id: str
    access_key: str
    password: str
    broker: MqttCredentials
    endpoint: str = ""

    def mapping(self, **changes: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "access_key": self.access_key,
            "password": self.password,
            "site_id": f"site-{self.client_id[:8]}",
            "default_master": "https://127.0.0.1",
            "default_port": 443,
            "default_path": f"/hubs/{self.hub_id}",
            "mqtt": self.broker.identity_block(self.endpoint),
        }
        data.update(changes)
        return data

    def sdk_identity(self, **changes: Any) -> ThalovantIdentity:
        return ThalovantIdentity.from_mapping(self.mapping(**changes))


@dataclass
class World:
    store: Store
    runtime: HubRuntime
    hub_id: str
    node_id: str
    identities: list[Identity]
    tls: TLSFiles
    hub_login: MqttCredentials
    address: BrokerAddress | None = None
    carrier: MqttHubCarrier | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    sealing: SealingKey | None = None

    async def store_psk(self, identity: Identity, psk: bytes) -> None:
        """Replace ``identity``'s PSK in the store (sealed, as provisioning stores it)."""
        assert self.sealing is not None
        sealed = seal_psk(self.sealing, identity.client_id, psk)
        async with self.store.session() as session:
            await session.execute(update(Client).where(Client.id == identity.client_id).values(psk_sealed=sealed))

    def client(self, identity: Identity, noise_dir: Path, **options: Any) -> AsyncThalovantClient:
        options.setdefault("reply_settle_seconds", 0)
        options.setdefault("auto_reconnect", False)
        return AsyncThalovantClient(identity.sdk_identity(), "mqtt", noise_state_dir=noise_dir, **options)


async def _provision(plane: ControlPlane, count: int, *, mqtt: bool = True) -> tuple[str, str, list[Identity]]:
    store = plane.store
    """A user, a hub (MQTT on or off) and ``count`` client identities, as the store keeps them."""
    async with store.session() as session:
        user = await accounts.create_user(
            session, email=f"owner-{secrets.token_hex(4)}@example.com", password_hash=hash_password("x" * 20)
        )
        workspace_id = (await accounts.workspace_ids(session, user.id))[0]
        spec = normalise_spec({"version": "1", "skills": SKILLS, "protocols": {"mqtt": mqtt}})
        hub = await hubs.create_hub(
            session,
            slug=f"mqtt-{secrets.token_hex(4)}",
            name="mqtt garden",
            title="MQTT garden",
            owner_id=user.id,
            workspace_id=workspace_id,
            spec=spec,
        )
        hub_id, node_id = hub.id, hub.node_id
    identities: list[Identity] = []
    for index in range(count):
        client_id = str(uuid.uuid4())
        access_key, password = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        broker = issue_client_credentials(hub_id, client_id)
        psk = await asyncio.to_thread(derive_psk, password, node_id)
        async with store.session() as session:
            hub_row = await hubs.hub_by_id(session, hub_id)
            assert hub_row is not None
            await clients.create_client(
                session,
                hub=hub_row,
                owner_id=user.id,
                workspace_id=workspace_id,
                name=f"device-{index}",
                site_id=f"site-{index}",
                access_key_hash=sha256_hex(access_key),
                psk_sealed=seal_psk(plane.sealing, client_id, psk),
                connection_type="developer",
                spec_extras={},
                client_id=client_id,
                mqtt_username=broker.username,
                mqtt_password_hash=broker.password_hash,
                mqtt_topic_prefix=broker.topic_prefix,
            )
        identities.append(Identity(client_id, hub_id, access_key, password, broker))
    return hub_id, node_id, identities


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return ensure_dev_tls(tmp_path_factory.mktemp("mqtt-tls"), extra_names=("127.0.0.1",))


@pytest.fixture
def trusted(tls: TLSFiles) -> Iterator[None]:
    """Our SDK (and any subprocess) trusts the development CA."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in trust_env(tls.ca_cert).items():
            patch.setenv(key, value)
        yield


@pytest.fixture(params=["embedded", "mosquitto"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "mosquitto":
        require_mosquitto()
    return str(request.param)


async def _start_broker(kind: str, folder: Path, tls: TLSFiles, accounts_: list[Any]) -> Any:
    if kind == "embedded":
        broker: Any = EmbeddedBroker(cert_file=tls.cert, key_file=tls.key, port=0, accounts=accounts_)
    else:
        broker = new_mosquitto(folder, tls, accounts_)
    await broker.start()
    return broker


@pytest.fixture
async def world(broker_kind: str, tls: TLSFiles, tmp_path: Path, trusted: None) -> AsyncIterator[World]:
    planes = contextlib.AsyncExitStack()
    plane = await planes.enter_async_context(open_control_plane(ServerConfig(data_dir=tmp_path / "data")))
    store = plane.store
    hub_id, node_id, identities = await _provision(plane, 4)
    hub_login = issue_hub_credentials()
    runtime = HubRuntime(plane.directory())
    broker_accounts = [hub_login.account, *(identity.broker.account for identity in identities)]
    # a broker account whose prefix names no client in the store (the "unknown prefix")
    stranger = issue_client_credentials(hub_id, str(uuid.uuid4()))
    broker_accounts.append(stranger.account)
    # a client of a hub that does not serve MQTT (it was turned off after provisioning)
    _, _, [no_mqtt] = await _provision(plane, 1, mqtt=False)
    broker_accounts.append(no_mqtt.broker.account)
    broker = await _start_broker(broker_kind, tmp_path / "mosquitto", tls, broker_accounts)
    world = World(
        store, runtime, hub_id, node_id, identities, tls, hub_login, address=broker.address, sealing=plane.sealing
    )
    world.extra["stranger"] = stranger
    world.extra["no_mqtt"] = no_mqtt.broker
    world.extra["broker"] = broker
    for identity in identities:
        identity.endpoint = broker.address.endpoint
    # a closed client's dormant session does not outlive its test (the dormancy tests set their own)
    carrier = MqttHubCarrier(runtime, address=broker.address, login=hub_login, ca_file=tls.ca_cert, dormant_ttl=0.05)
    await carrier.start()
    world.carrier = carrier
    try:
        yield world
    finally:
        await carrier.stop()
        await runtime.close()
        await broker.stop()
        await planes.aclose()


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Wait until ``predicate()`` holds (re-checked as the loop runs); fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
    assert predicate(), what


class RawClient:
    """A plain MQTT connection with one identity's broker credentials (for malformed input)."""

    def __init__(self, world: World, broker: MqttCredentials) -> None:
        assert world.address is not None
        self.topics = broker.topics
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.topics_seen: list[str] = []
        self._client = aiomqtt.Client(
            world.address.host,
            world.address.port,
            username=broker.username,
            password=broker.password,
            identifier=f"raw-{secrets.token_hex(8)}",
            tls_context=ssl.create_default_context(cafile=str(world.tls.ca_cert)),
        )
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RawClient:
        await self._client.__aenter__()
        await self._client.subscribe(self.topics.outbound, qos=1)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        async for message in self._client.messages:
            payload = message.payload
            self.topics_seen.append(message.topic.value)
            if message.topic.value == self.topics.outbound and isinstance(payload, bytes | bytearray):
                await self.received.put(bytes(payload))

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self._client.__aexit__(None, None, None)

    async def send(self, payload: bytes | str, topic: str | None = None) -> None:
        await self._client.publish(topic or self.topics.inbound, payload, qos=1)

    async def next_json(self) -> dict[str, Any]:
        async with asyncio.timeout(20):
            value: dict[str, Any] = json.loads(await self.received.get())
        return value


def hello_payload(session_id: str = "thalovant-python-mqtt-raw") -> str:
    return json.dumps(
        {"msg_type": "hello", "payload": {"pubkey": "", "session": {"session_id": session_id}, "site_id": "raw"}}
    )


# -- units ------------------------------------------------------------------------------------


def test_topics_parse_to_hub_client_and_kind() -> None:
    assert parse_topic("thalovant/h/c/in") == ("h", "c", "in")
    assert parse_topic("thalovant/h/c/status") == ("h", "c", "status")
    for bad in ("thalovant/h/c/out", "thalovant/h/in", "other/h/c/in", "thalovant//c/in", "thalovant/h/c/in/x"):
        assert parse_topic(bad) is None


# -- our SDK ----------------------------------------------------------------------------------


async def test_sdk_asks_xx_first_then_kk_after_reconnect(world: World, tmp_path: Path) -> None:
    identity = world.identities[0]
    noise = tmp_path / "noise"
    assert world.carrier is not None and world.carrier.socket_nodelay()
    async with world.client(identity, noise) as client:
        await client.connect()
        assert client.connection_info().noise_pattern == "XXpsk2"
        reply = await client.ask("Tell me a short clean joke.")
        assert reply.text == GUIDE_JOKE
        [live] = world.runtime.live_sessions(world.hub_id)
        assert live.link.client_id == identity.client_id
    pin_id = https_pin_id(identity.sdk_identity().endpoint_base())
    assert NoiseStore(noise).hub_pin(pin_id) is not None
    async with world.store.session() as session:
        row = await clients.client_by_id(session, identity.client_id)
        assert row is not None and row.pinned_client_key is not None  # TOFU on the first XX
    async with world.client(identity, noise) as client:
        await client.connect()
        assert client.connection_info().noise_pattern == "KKpsk0"
        assert (await client.ask("What can this hub do?")).text
    assert world.runtime.counters["pattern:XXpsk2"] == 1
    assert world.runtime.counters["pattern:KKpsk0"] == 1


async def test_sdk_conversation_remembers_in_session_only(world: World, tmp_path: Path) -> None:
    async with world.client(world.identities[0], tmp_path / "noise") as client:
        async with client.conversation(lang="en-us") as convo:
            first = (await convo.ask("Remember that my favorite color is blue.")).text
            second = (await convo.ask("What color did I mention?")).text
        async with client.conversation(lang="en-us") as other:
            third = (await other.ask("What color did I mention?")).text
    assert "blue" in first and "blue" in second
    assert "blue" not in third


async def test_changed_password_kk_gets_the_decoy_and_xx_connects(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The client's cached PSK is stale (password rotated): KK fails, the decoy makes it retry XX."""
    caplog.set_level(logging.DEBUG)
    identity = world.identities[0]
    old_password = identity.password
    noise = tmp_path / "noise"
    async with world.client(identity, noise) as client:
        assert (await client.ask("Tell me a short clean joke.")).text == GUIDE_JOKE
    identity.password = secrets.token_urlsafe(24)
    new_psk = await asyncio.to_thread(derive_psk, identity.password, world.node_id)
    await world.store_psk(identity, new_psk)
    # a regression (silence instead of the decoy) would show as a handshake timeout, not a hang
    async with world.client(identity, noise, handshake_timeout=8) as client:
        await client.connect()
        assert client.connection_info().noise_pattern == "XXpsk2"
        assert (await client.ask("Tell me a short clean joke.")).text == GUIDE_JOKE
    assert world.runtime.counters["refused:kk-decoy"] == 1
    secrets_seen = [old_password, identity.password, identity.access_key, identity.broker.password]
    secrets_seen += [world.hub_login.password, new_psk.hex()]
    assert not [secret for secret in secrets_seen if secret in caplog.text]  # never logged


async def test_many_clients_converse_at_once_without_crosstalk(world: World, tmp_path: Path) -> None:
    colors = ("blue", "green", "purple", "orange")

    async def converse(index: int) -> str:
        identity = world.identities[index]
        async with (
            world.client(identity, tmp_path / f"noise-{index}") as client,
            client.conversation(lang="en-us") as convo,
        ):
            await convo.ask(f"Remember that my favorite color is {colors[index]}.")
            return (await convo.ask("What color did I mention?")).text

    answers = await asyncio.gather(*(converse(index) for index in range(len(colors))))
    for index, answer in enumerate(answers):
        assert colors[index] in answer
        assert not [other for other in colors if other != colors[index] and other in answer]
    assert world.runtime.counters["sessions"] == len(colors)


async def test_wrong_hub_pin_kk_gets_the_decoy_then_key_changed(world: World, tmp_path: Path) -> None:
    identity = world.identities[1]
    noise = tmp_path / "noise"
    async with world.client(identity, noise) as client:
        await client.connect()
    store = NoiseStore(noise)
    pin_id = https_pin_id(identity.sdk_identity().endpoint_base())
    store.remove_pin(pin_id)
    store.pin_hub(pin_id, os.urandom(32))
    client = world.client(identity, noise, handshake_timeout=8)
    try:
        with pytest.raises(ThalovantHubKeyChangedError):
            await client.connect()
    finally:
        await client.close()
    assert world.runtime.counters["refused:kk-decoy"] == 1


# -- the public SDK 0.9.7 ---------------------------------------------------------------------

PUBLIC_SDK_CODE = """
import json, os
from thalovant import ThalovantClient, ThalovantIdentity

identity = ThalovantIdentity.from_file(os.environ["IDENTITY_FILE"])
out = {}
with ThalovantClient(identity, protocol="mqtt", noise_state_dir="keys", reply_settle_seconds=0) as c:
    out["joke"] = c.ask("Tell me a short clean joke.").text
    with c.conversation(lang="en-us") as convo:
        out["first"] = convo.ask("Remember that my favorite color is blue.").text
        out["second"] = convo.ask("What color did I mention?").text
    with c.conversation(lang="en-us") as other:
        out["third"] = other.ask("What color did I mention?").text
with ThalovantClient(identity, protocol="mqtt", noise_state_dir="keys", reply_settle_seconds=0) as c:
    out["again"] = c.ask("Tell me a short clean joke.").text
print("RESULT " + json.dumps(out))
"""


PUBLIC_SDK_ASK = """
import json, os
from thalovant import ThalovantClient, ThalovantIdentity

identity = ThalovantIdentity.from_file(os.environ["IDENTITY_FILE"])
with ThalovantClient(identity, protocol="mqtt", noise_state_dir="keys", reply_settle_seconds=0,
                     handshake_timeout=8) as c:
    print("RESULT " + json.dumps({"joke": c.ask("Tell me a short clean joke.").text}))
"""


async def _run_public_sdk(
    runner: Callable[..., CompletedProcess[str]], code: str, identity_file: Path, world: World
) -> dict[str, Any]:
    """Run ``code`` with the public SDK (in a thread: the broker and the carrier share this loop)."""
    completed = await asyncio.to_thread(
        runner, textwrap.dedent(code), env={"IDENTITY_FILE": str(identity_file)}, ca_file=world.tls.ca_cert
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"public SDK failed (rc={completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def _write_identity(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)


@pytest.mark.interop
async def test_public_sdk_asks_converses_and_survives_a_password_rotation(
    world: World, tmp_path: Path, run_public_sdk: Callable[..., CompletedProcess[str]]
) -> None:
    identity = world.identities[2]
    path = tmp_path / "identity.json"
    _write_identity(path, identity.mapping())
    result = await _run_public_sdk(run_public_sdk, PUBLIC_SDK_CODE, path, world)
    assert result["joke"] == GUIDE_JOKE and result["again"] == GUIDE_JOKE
    assert "blue" in result["first"] and "blue" in result["second"] and "blue" not in result["third"]
    # the first connect ran XX (pinning both ways), the second KK
    assert world.runtime.counters["pattern:XXpsk2"] == 1
    assert world.runtime.counters["pattern:KKpsk0"] == 1
    # a rotated password: its cached PSK makes KK fail; the decoy makes it retry XX at once
    identity.password = secrets.token_urlsafe(24)
    new_psk = await asyncio.to_thread(derive_psk, identity.password, world.node_id)
    await world.store_psk(identity, new_psk)
    _write_identity(path, identity.mapping())
    again = await _run_public_sdk(run_public_sdk, PUBLIC_SDK_ASK, path, world)
    assert again["joke"] == GUIDE_JOKE
    assert world.runtime.counters["refused:kk-decoy"] == 1
    assert world.runtime.counters["pattern:XXpsk2"] == 2


# -- robustness -------------------------------------------------------------------------------


async def _ask_ok(world: World, identity: Identity, noise: Path) -> None:
    async with world.client(identity, noise) as client:
        assert (await client.ask("Tell me a short clean joke.")).text == GUIDE_JOKE


async def test_garbage_storms_and_bad_json_leave_other_prefixes_answered(world: World, tmp_path: Path) -> None:
    noisy, calm = world.identities[0], world.identities[1]
    assert world.carrier is not None
    async with RawClient(world, noisy.broker) as raw:
        # garbage before any HELLO: ignored, no state kept
        await raw.send(b"\x00\xff garbage")
        await raw.send(b"{not json")
        # a HELLO storm: only the newest HELLO matters
        for index in range(50):
            await raw.send(hello_payload(f"thalovant-python-mqtt-storm{index}"))
        hello = await raw.next_json()
        assert hello["msg_type"] == "hello" and hello["payload"]["node_id"] == world.node_id
        offer = await raw.next_json()
        assert offer["payload"]["noise"]["patterns"] == ["XXpsk2"]
        # malformed JSON in the negotiation: this prefix's attempt is dropped, silently
        refusals = world.runtime.counters["refused:aborted"]
        await raw.send(b'{"msg_type": "shake", "payload": {"noise": {"msg": "zz"')
        await raw.send(os.urandom(300))
        await eventually(lambda: world.runtime.counters["refused:aborted"] > refusals, "the abort is counted")
        await _ask_ok(world, calm, tmp_path / "calm")
        # the noisy prefix recovers with a proper client
        await _ask_ok(world, noisy, tmp_path / "noisy")
        assert raw.received.qsize() <= 6  # at most the storm's leftovers, never a transport frame
    await eventually(lambda: world.carrier is not None and world.carrier.prefix_count == 0, "state is released")


async def test_a_burst_from_many_clients_reaches_the_hub_whole(world: World) -> None:
    """2,000 QoS 1 publishes at once from four clients: the broker hands every one to the hub
    (with the hub subscribed at QoS 1, Mosquitto dropped most of them at its in-flight bound)."""
    carrier = world.carrier
    assert carrier is not None
    per_client = 500
    async with contextlib.AsyncExitStack() as stack:
        raws = [await stack.enter_async_context(RawClient(world, identity.broker)) for identity in world.identities]
        before = carrier.received
        await asyncio.gather(*(raw.send(b"burst %d" % index) for raw in raws for index in range(per_client)))
        expected = before + per_client * len(raws)
        await eventually(lambda: carrier.received >= expected, f"{expected - carrier.received} messages lost")
    assert carrier.received == expected


@pytest.mark.parametrize("who", ["stranger", "no_mqtt"])
async def test_unknown_prefix_and_hub_without_mqtt_are_silent(world: World, tmp_path: Path, who: str) -> None:
    login: MqttCredentials = world.extra[who]
    async with RawClient(world, login) as raw:
        before = world.runtime.counters["refused:unknown"]
        await raw.send(hello_payload())
        await eventually(lambda: world.runtime.counters["refused:unknown"] == before + 1, "the HELLO is refused")
        await _ask_ok(world, world.identities[3], tmp_path / "other")  # the carrier still serves
        assert raw.received.empty()
    assert world.carrier is not None
    await eventually(lambda: world.carrier is not None and world.carrier.prefix_count == 0, "no state is kept")


async def test_offline_status_ends_the_session(world: World, tmp_path: Path) -> None:
    carrier = world.carrier
    assert carrier is not None
    identity = world.identities[0]
    client = world.client(identity, tmp_path / "noise")
    await client.connect()
    await eventually(lambda: len(world.runtime.live_sessions(world.hub_id)) == 1, "the session registers")
    await client.close()  # the SDK publishes ``offline`` on its status topic
    await eventually(lambda: not world.runtime.live_sessions(world.hub_id), "offline ends the session")
    await eventually(lambda: carrier.prefix_count == 0, "its dormant keys are released after the TTL")


async def test_a_late_offline_does_not_silence_the_live_session(world: World, tmp_path: Path) -> None:
    """A last will published late (the broker noticed a half-open connection only after the
    client was back on a new one) names no connection: it ends the live session for the
    runtime, and the session's next message brings it back and is answered."""
    assert world.carrier is not None
    world.carrier.dormant_ttl = DORMANT_TTL
    identity = world.identities[0]
    async with world.client(identity, tmp_path / "noise") as client:
        assert (await client.ask("Tell me a short clean joke.")).text == GUIDE_JOKE
        [live] = world.runtime.live_sessions(world.hub_id)
        async with RawClient(world, identity.broker) as raw:  # the old connection's late will
            await raw.send(b"offline", raw.topics.status)
        await eventually(lambda: not world.runtime.live_sessions(world.hub_id), "offline ends the session")
        again = await client.ask("Tell me a short clean joke.")  # the same conversation: the next joke
        assert again.text.startswith("Why did") and again.text != GUIDE_JOKE
        assert world.runtime.live_sessions(world.hub_id) == [live]
        pushed = asyncio.ensure_future(client.wait_for_event("thalovant.notice", timeout=20))
        notice = BusMessage("thalovant.notice", {"text": "back"}, {})
        assert await world.runtime.push(world.hub_id, notice, session_id=live.link.session_id) == 1
        assert (await pushed).data["text"] == "back"


async def test_a_dormant_session_is_forgotten_on_a_new_hello_or_garbage(world: World, tmp_path: Path) -> None:
    identity = world.identities[0]
    carrier = world.carrier
    assert carrier is not None
    carrier.dormant_ttl = DORMANT_TTL
    async with world.client(identity, tmp_path / "noise") as client:
        await client.connect()
        async with RawClient(world, identity.broker) as raw:
            await raw.send(b"offline", raw.topics.status)
            await eventually(lambda: not world.runtime.live_sessions(world.hub_id), "offline ends the session")
            before = world.runtime.counters["refused:aborted"]
            await raw.send(os.urandom(64))  # not sealed under the dormant session's keys
            await eventually(lambda: world.runtime.counters["refused:aborted"] == before + 1, "the garbage ends it")
            await eventually(lambda: carrier.prefix_count == 0, "nothing is kept for the prefix")
            assert not world.runtime.live_sessions(world.hub_id)
    # a new HELLO forgets a dormant session too: the next client's handshake and ask work
    async with world.client(identity, tmp_path / "noise") as client:
        await client.connect()
        async with RawClient(world, identity.broker) as raw:
            await raw.send(b"offline", raw.topics.status)
            await eventually(lambda: not world.runtime.live_sessions(world.hub_id), "offline ends the session")
    await _ask_ok(world, identity, tmp_path / "noise")


async def test_revocation_terminates_and_silences(world: World, tmp_path: Path) -> None:
    identity = world.identities[0]
    async with world.client(identity, tmp_path / "noise") as client:
        await client.connect()
        await world.runtime.client_revoked(identity.client_id)
        assert not world.runtime.live_sessions(world.hub_id)
        assert world.carrier is not None
        await eventually(lambda: world.carrier is not None and world.carrier.prefix_count == 0, "state dropped")
    async with RawClient(world, identity.broker) as raw:
        before = world.runtime.counters["refused:unknown"]
        await raw.send(hello_payload())
        await eventually(lambda: world.runtime.counters["refused:unknown"] == before + 1, "revoked: silent")
        assert raw.received.empty()


async def test_abandoned_negotiations_expire(world: World) -> None:
    carrier = world.carrier
    assert carrier is not None
    carrier.negotiation_timeout = 0.2
    async with RawClient(world, world.identities[0].broker) as raw:
        await raw.send(hello_payload())
        await raw.next_json()
        await raw.next_json()
        assert carrier.prefix_count == 1
        await eventually(lambda: world.runtime.counters["refused:timeout"] == 1, "the negotiation expires")
        await eventually(lambda: carrier.prefix_count == 0, "its state is released")


async def test_broker_refusing_the_hub_login_is_a_typed_error(world: World) -> None:
    assert world.address is not None
    wrong = issue_client_credentials(world.hub_id, world.identities[0].client_id)  # unknown to the broker
    carrier = MqttHubCarrier(world.runtime, address=world.address, login=wrong, ca_file=world.tls.ca_cert)
    with pytest.raises(BrokerRefusedError):
        await carrier.start()
    if not isinstance(world.extra["broker"], EmbeddedBroker):
        return  # Mosquitto grants any SUBACK and filters at delivery (its acl_file semantics)
    # a client login has no grant on the wildcards: the embedded broker refuses the subscriptions
    own = world.identities[0].broker
    carrier = MqttHubCarrier(world.runtime, address=world.address, login=own, ca_file=world.tls.ca_cert)
    try:
        with pytest.raises(BrokerRefusedError):
            await carrier.start()
    finally:
        await carrier.stop()


async def test_reconnects_after_the_broker_drops_the_hub(world: World, tmp_path: Path) -> None:
    carrier = world.carrier
    broker = world.extra["broker"]
    assert carrier is not None
    async with world.client(world.identities[0], tmp_path / "noise") as client:
        await client.connect()
        await eventually(lambda: len(world.runtime.live_sessions(world.hub_id)) == 1, "the session registers")
        await broker.remove_account(world.hub_login.username)  # both brokers drop the hub's connection
        await eventually(lambda: not carrier.connected.is_set(), "the broker drops the hub")
        assert not world.runtime.live_sessions(world.hub_id)  # sessions on the old connection ended
        await broker.add_account(world.hub_login.account)
        await eventually(lambda: carrier.connections == 2 and carrier.connected.is_set(), "the carrier reconnects")
    await _ask_ok(world, world.identities[0], tmp_path / "noise")


async def test_a_new_hello_replaces_the_established_session(world: World, tmp_path: Path) -> None:
    identity = world.identities[0]
    client = world.client(identity, tmp_path / "noise")
    try:
        await client.connect()
        await eventually(lambda: len(world.runtime.live_sessions(world.hub_id)) == 1, "the session registers")
        async with RawClient(world, identity.broker) as raw:
            await raw.send(hello_payload())
            assert (await raw.next_json())["msg_type"] == "hello"
            assert not world.runtime.live_sessions(world.hub_id)  # unregistered before the new HELLO went out
            assert "noise" in (await raw.next_json())["payload"]
    finally:
        await client.close()


async def test_hub_initiated_push_reaches_the_mqtt_client(world: World, tmp_path: Path) -> None:
    async with world.client(world.identities[0], tmp_path / "noise") as client:
        await client.connect()
        await eventually(lambda: len(world.runtime.live_sessions(world.hub_id)) == 1, "the session registers")
        [live] = world.runtime.live_sessions(world.hub_id)
        waiter = asyncio.ensure_future(client.wait_for_event("thalovant.notice", timeout=20))
        notice = BusMessage("thalovant.notice", {"text": "door open"}, {})
        assert await world.runtime.push(world.hub_id, notice, session_id=live.link.session_id) == 1
        event = await waiter
        assert event.data["text"] == "door open"


# -- latency (printed, never asserted) ---------------------------------------------------------


async def test_ask_latency_is_reported(world: World, tmp_path: Path, broker_kind: str) -> None:
    async with world.client(world.identities[3], tmp_path / "noise") as client:
        await client.ask("Tell me a short clean joke.")
        samples = []
        for _ in range(30):
            started = time.perf_counter()
            await client.ask("Tell me a short clean joke.")
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    print(f"\nMQTT ask via {broker_kind}: median {samples[len(samples) // 2]:.2f} ms, min {samples[0]:.2f} ms")
