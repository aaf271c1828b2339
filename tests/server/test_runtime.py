"""The hub runtime without a network: hubs, credentials, pins, live sessions, push, links."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.envelope import BusMessage, HiveMessage
from thalovant.protocol.errors import ProtocolError
from thalovant.protocol.noise import SUITES, CipherState, KeyPair
from thalovant.protocol.wire1 import encode_binary
from thalovant_server.hub.activity import Activity
from thalovant_server.hub.directory import ClientCredentials, HubKeys
from thalovant_server.hub.link import HubLink, MeshGrantDenied
from thalovant_server.hub.router import ClientOrigin
from thalovant_server.hub.runtime import HubHost, HubRuntime

GUIDE_JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."


@dataclass
class MemoryDirectory:
    """An in-memory ``ClientDirectory`` (the store-backed one is the control plane's)."""

    hubs: dict[str, HubKeys] = field(default_factory=dict)
    clients: dict[str, ClientCredentials] = field(default_factory=dict)
    pinned: dict[str, bytes] = field(default_factory=dict)

    async def find_client(self, hub_id: str, access_key: str) -> ClientCredentials | None:
        creds = self.clients.get(access_key)
        if creds is None or creds.hub_id != hub_id:
            return None
        return creds

    async def find_client_by_id(self, hub_id: str, client_id: str) -> ClientCredentials | None:
        for creds in self.clients.values():
            if creds.client_id == client_id and creds.hub_id == hub_id:
                return creds
        return None

    async def pin_client_key(self, client_id: str, key: bytes) -> None:
        self.pinned[client_id] = key

    async def load_hub(self, hub_id: str) -> HubKeys | None:
        return self.hubs.get(hub_id)


def hub_keys(hub_id: str = "hub-1", skills: tuple[str, ...] = ("jokes", "trivia", "capabilities", "memory")) -> HubKeys:
    return HubKeys(hub_id, f"node-{hub_id}", KeyPair.generate(), skills, ("wss", "http"))


def credentials(client_id: str = "client-1", hub_id: str = "hub-1") -> ClientCredentials:
    return ClientCredentials(client_id, hub_id, client_id, "site", b"k" * 32, None, frozenset())


@pytest.fixture
def directory() -> MemoryDirectory:
    return MemoryDirectory(hubs={"hub-1": hub_keys()}, clients={"key-1": credentials()})


def channel_pair(suite: str = SUITES[0]) -> tuple[SecureChannel, SecureChannel]:
    """(client, hub) channels sharing two fresh keys, as a completed handshake leaves them."""
    k1, k2 = os.urandom(32), os.urandom(32)
    client = SecureChannel(CipherState(suite, k1), CipherState(suite, k2))
    hub = SecureChannel(CipherState(suite, k2), CipherState(suite, k1))
    return client, hub


class FakeLive:
    """A carrier session that records what the runtime asks of it."""

    def __init__(self, link: HubLink, carrier: str = "wss") -> None:
        self.link = link
        self.carrier = carrier
        self.delivered: list[BusMessage] = []
        self.terminated: list[str] = []

    async def deliver(self, messages: list[BusMessage]) -> None:
        self.delivered.extend(messages)

    async def terminate(self, reason: str) -> None:
        self.terminated.append(reason)


def make_link(host: HubHost, client_id: str = "client-1", sid: str = "conn-1") -> tuple[HubLink, SecureChannel]:
    client, hub = channel_pair()
    origin = ClientOrigin(client_id, host.hub_id, "site", sid, frozenset())
    return HubLink(hub, origin, host, "XXpsk2"), client


def open_all(client: SecureChannel, messages: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        frame = client.open(message)
        if frame is not None:
            out.append(json.loads(frame.body))
    return out


def ask_frame(client: SecureChannel, text: str, request_id: str = "req-1", session_id: str = "s-1") -> bytes:
    context = {"request_id": request_id, "session": {"session_id": session_id}, "source": "sdk"}
    body = HiveMessage.bus("recognizer_loop:utterance", {"utterances": [text], "lang": "en-us"}, context).to_bytes()
    [message] = client.seal_json(body)
    return message


async def test_hosts_load_once_and_unknown_hubs_are_none(directory: MemoryDirectory) -> None:
    runtime = HubRuntime(directory)
    first = await runtime.host("hub-1")
    assert first is not None and first is await runtime.host("hub-1")
    assert [s.skill_id for s in first.router.agent.skills] == ["jokes", "trivia", "capabilities", "memory"]
    assert await runtime.host("nope") is None


async def test_credentials_pins_and_the_pin_race(directory: MemoryDirectory) -> None:
    runtime = HubRuntime(directory)
    creds = await runtime.credentials("hub-1", "key-1")
    assert creds is not None and creds.pinned_key is None
    assert await runtime.credentials("hub-2", "key-1") is None
    assert await runtime.credentials("hub-1", "wrong") is None
    assert await runtime.pin(creds, b"A" * 32) is True
    assert directory.pinned == {"client-1": b"A" * 32}
    # a concurrent XX with another key (credentials read before the pin) loses
    assert await runtime.pin(creds, b"B" * 32) is False
    assert await runtime.pin(creds, b"A" * 32) is True
    again = await runtime.credentials("hub-1", "key-1")
    assert again is not None and again.pinned_key == b"A" * 32
    assert "k" * 32 not in repr(again) and "psk" not in repr(again)


async def test_credentials_by_id_apply_revocation_and_pins(directory: MemoryDirectory) -> None:
    runtime = HubRuntime(directory)
    creds = await runtime.credentials_by_id("hub-1", "client-1")
    assert creds is not None and creds.client_id == "client-1" and creds.pinned_key is None
    assert await runtime.credentials_by_id("hub-2", "client-1") is None
    assert await runtime.credentials_by_id("hub-1", "nobody") is None
    assert await runtime.pin(creds, b"P" * 32) is True
    again = await runtime.credentials_by_id("hub-1", "client-1")
    assert again is not None and again.pinned_key == b"P" * 32
    await runtime.client_revoked("client-1")
    assert await runtime.credentials_by_id("hub-1", "client-1") is None


async def test_link_answers_an_ask_with_speak_then_handled(directory: MemoryDirectory) -> None:
    runtime = HubRuntime(directory)
    host = await runtime.host("hub-1")
    assert host is not None
    link, client = make_link(host)
    hello = open_all(client, link.hello())
    assert hello[0]["msg_type"] == "hello" and hello[0]["payload"]["node_id"] == "node-hub-1"
    replies = open_all(client, link.receive(ask_frame(client, "Tell me a short clean joke.")))
    assert [r["msg_type"] for r in replies] == ["bus", "bus"]
    speak, handled = (r["payload"] for r in replies)
    assert speak["type"] == "speak" and speak["data"]["utterance"] == GUIDE_JOKE
    assert handled["type"] == "ovos.utterance.handled"
    assert handled["context"]["request_id"] == "req-1"
    assert handled["context"]["session"]["active_skills"][0][0] == "jokes"


class RecordingSink:
    """A request log that keeps what it is given."""

    def __init__(self) -> None:
        self.activities: list[Activity] = []

    def record(self, activity: Activity) -> None:
        self.activities.append(activity)


def joke_rotation(replies: list[dict[str, Any]]) -> int:
    """Where the jokes skill's rotation stands after a turn (from the session sent back)."""
    session = replies[-1]["payload"]["context"]["session"]
    return int(session["context"]["thalovant_skills"]["jokes"]["next"])


async def test_a_turn_is_booked_after_its_reply_and_before_the_sessions_next_turn(directory: MemoryDirectory) -> None:
    sink = RecordingSink()
    runtime = HubRuntime(directory, sink=sink)
    host = await runtime.host("hub-1")
    assert host is not None
    link, client = make_link(host)
    first = open_all(client, link.receive(ask_frame(client, "Tell me a short clean joke.")))
    # the reply is out before the hub keeps the conversation or records the request
    assert first[0]["payload"]["type"] == "speak"
    assert sink.activities == [] and len(host.router.sessions) == 0
    await asyncio.sleep(0)  # the event loop's next turn
    assert [(a.skill, a.client_id) for a in sink.activities] == [("jokes", "client-1")]
    assert len(host.router.sessions) == 1

    # two turns in one loop turn: the second is routed with the first one booked
    second = open_all(client, link.receive(ask_frame(client, "Tell me a short clean joke.", "req-2")))
    third = open_all(client, link.receive(ask_frame(client, "Tell me a short clean joke.", "req-3")))
    assert joke_rotation(second) == joke_rotation(first) + 1
    assert joke_rotation(third) == joke_rotation(second) + 1
    assert len(sink.activities) == 2  # the second turn's, booked when the third was routed
    await asyncio.sleep(0)
    assert len(sink.activities) == 3 and not host.router.unsettled


async def test_link_reassembles_chunked_messages(directory: MemoryDirectory) -> None:
    runtime = HubRuntime(directory)
    host = await runtime.host("hub-1")
    assert host is not None
    link, client = make_link(host)
    context = {"request_id": "big", "padding": "x" * 140_000}
    body = HiveMessage.bus("recognizer_loop:utterance", {"utterances": ["What can this hub do?"]}, context).to_bytes()
    sealed = client.seal_json(body)
    assert len(sealed) == 3
    out: list[bytes] = []
    for message in sealed:
        out.extend(link.receive(message))
    replies = open_all(client, out)
    assert replies[0]["payload"]["data"]["utterance"] == "This hub can answer quick joke and trivia requests."
    # big replies come back chunked and reassemble on the client side
    assert replies[0]["payload"]["context"]["padding"] == "x" * 140_000


async def test_link_answers_direct_queries(directory: MemoryDirectory) -> None:
    runtime = HubRuntime(directory)
    host = await runtime.host("hub-1")
    assert host is not None
    link, client = make_link(host)
    inner = HiveMessage.bus("recognizer_loop:utterance", {"utterances": ["tell me a joke"]}, {"request_id": "q-1"})
    frame = HiveMessage("query", inner.to_dict(), {"query_id": "q-1"})
    [message] = client.seal_json(frame.to_bytes())
    replies = open_all(client, link.receive(message))
    assert {r["msg_type"] for r in replies} == {"query"}
    assert all(r["metadata"]["query_id"] == "q-1" for r in replies)
    types = [r["payload"]["payload"]["type"] for r in replies]
    assert types == ["speak", "ovos.utterance.handled", "hive.query.complete"]


async def test_mesh_frames_propagate_and_escalate_locally_and_broadcast_is_denied(
    directory: MemoryDirectory,
) -> None:
    runtime = HubRuntime(directory)
    host = await runtime.host("hub-1")
    assert host is not None
    link, client = make_link(host)
    for kind in ("propagate", "escalate"):
        inner = HiveMessage.bus("recognizer_loop:utterance", {"utterances": ["tell me a joke"]}, {"request_id": kind})
        [message] = client.seal_json(HiveMessage(kind, inner.to_dict()).to_bytes())
        replies = open_all(client, link.receive(message))
        assert [r["payload"]["type"] for r in replies] == ["speak", "ovos.utterance.handled"]
        assert replies[0]["payload"]["data"]["utterance"].startswith("Why did the")  # the jokes skill answered
        assert all(r["payload"]["context"]["request_id"] == kind for r in replies)
    # a mesh frame whose payload is not a bus envelope has nothing to deliver here
    [message] = client.seal_json(HiveMessage("propagate", {"msg_type": "hello", "payload": {}}).to_bytes())
    assert link.receive(message) == []
    inner = HiveMessage.bus("speak", {"utterance": "to everyone"}, {})
    [message] = client.seal_json(HiveMessage("broadcast", inner.to_dict()).to_bytes())
    with pytest.raises(MeshGrantDenied):
        link.receive(message)


async def test_binary_frames_are_accepted_and_dropped(directory: MemoryDirectory) -> None:
    runtime = HubRuntime(directory)
    host = await runtime.host("hub-1")
    assert host is not None
    link, client = make_link(host)
    frame = encode_binary(b"\x00audio" * 100, bin_type=1, metadata={"file_name": "a.wav"})
    [message] = client.seal_binary(frame)
    assert link.receive(message) == []
    # the session keeps working afterwards
    replies = open_all(client, link.receive(ask_frame(client, "What can this hub do?")))
    assert replies[0]["payload"]["data"]["utterance"] == "This hub can answer quick joke and trivia requests."


@pytest.mark.parametrize(
    "plaintext",
    [b"\x00not json", b"\x00[1,2]", b'\x00{"payload":{}}', b"\x07{}", b"\x04middle", b"", b"\x01\x00\x00"],
)
async def test_malformed_frames_raise_protocol_errors(directory: MemoryDirectory, plaintext: bytes) -> None:
    runtime = HubRuntime(directory)
    host = await runtime.host("hub-1")
    assert host is not None
    link, _ = make_link(host)
    k1 = os.urandom(32)
    # build a sender that shares the hub's receive key
    sender = CipherState(SUITES[0], k1)
    link.channel = SecureChannel(CipherState(SUITES[0], os.urandom(32)), CipherState(SUITES[0], k1))
    with pytest.raises(ProtocolError):
        link.receive(sender.encrypt(plaintext))


async def test_tampered_transport_message_is_a_protocol_error(directory: MemoryDirectory) -> None:
    runtime = HubRuntime(directory)
    host = await runtime.host("hub-1")
    assert host is not None
    link, client = make_link(host)
    message = bytearray(ask_frame(client, "hello"))
    message[3] ^= 0xFF
    with pytest.raises(ProtocolError):
        link.receive(bytes(message))


async def test_registry_revocation_and_push(directory: MemoryDirectory) -> None:
    directory.clients["key-2"] = credentials("client-2")
    runtime = HubRuntime(directory)
    host = await runtime.host("hub-1")
    assert host is not None
    one = FakeLive(make_link(host, "client-1", "conn-1")[0])
    two = FakeLive(make_link(host, "client-2", "conn-2")[0])
    assert runtime.register(one) and runtime.register(two)
    assert len(runtime.live_sessions("hub-1")) == 2
    event = BusMessage("thalovant.hub.notice", {"text": "hello"}, {})
    assert await runtime.push("hub-1", event) == 2
    assert await runtime.push("hub-1", event, session_id="conn-2") == 1
    assert two.delivered[-1].context["session"]["session_id"] == "conn-2"
    assert await runtime.push("nope", event) == 0
    await runtime.client_revoked("client-1")
    assert one.terminated and not two.terminated
    assert await runtime.credentials("hub-1", "key-1") is None
    assert not runtime.register(FakeLive(make_link(host, "client-1", "conn-3")[0]))
    runtime.unregister(one)
    runtime.unregister(two)
    runtime.unregister(two)
    assert runtime.live_sessions() == []


async def test_hub_changed_reloads_skills_and_closes_removed_hubs(directory: MemoryDirectory) -> None:
    runtime = HubRuntime(directory)
    host = await runtime.host("hub-1")
    assert host is not None
    live = FakeLive(make_link(host)[0])
    assert runtime.register(live)
    old = directory.hubs["hub-1"]
    directory.hubs["hub-1"] = HubKeys(old.hub_id, old.node_id, old.static, ("clock",), old.protocols)
    await runtime.hub_changed("hub-1")
    assert [s.skill_id for s in host.router.agent.skills] == ["clock"]
    assert not live.terminated
    del directory.hubs["hub-1"]
    await runtime.hub_changed("hub-1")
    assert live.terminated
    assert await runtime.host("hub-1") is None


async def test_switching_a_carrier_off_closes_only_its_sessions(directory: MemoryDirectory) -> None:
    runtime = HubRuntime(directory)
    host = await runtime.host("hub-1")
    assert host is not None
    sessions = {name: FakeLive(make_link(host, sid=f"conn-{name}")[0], name) for name in ("wss", "http", "mqtt")}
    for live in sessions.values():
        assert runtime.register(live)
    old = directory.hubs["hub-1"]
    directory.hubs["hub-1"] = HubKeys(old.hub_id, old.node_id, old.static, old.skills, ("wss", "mqtt"))
    await runtime.hub_changed("hub-1")
    assert sessions["http"].terminated == ["http switched off for this hub"]
    assert not sessions["wss"].terminated and not sessions["mqtt"].terminated
