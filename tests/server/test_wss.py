"""The hub-side WSS carrier, in-process: our engine's client role over a real TLS WebSocket.

The server is the real ASGI app (``create_app``) under uvicorn in the test's event loop, on
127.0.0.1, with its data created by ``thalovant-server admin``. Being in-process lets the
tests look at the runtime (patterns used, live sessions) and at the server's sockets.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
import websockets
from peers.processes import free_port
from tests.fixtures.server import server_command
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from thalovant.protocol.envelope import BusMessage, HiveMessage
from thalovant.protocol.errors import ProtocolError
from thalovant.protocol.negotiation import ClientNegotiation
from thalovant.protocol.noise import KeyPair
from thalovant.protocol.psk import derive_psk
from thalovant_server.app import create_app
from thalovant_server.carriers.websocket import WebSocketConnection
from thalovant_server.carriers.wss import MAX_UNREAD, WSSSession
from thalovant_server.config import ServerConfig
from thalovant_server.hub.routes import websocket_route_of
from thalovant_server.hub.runtime import HubRuntime
from thalovant_server.limits import Limits
from thalovant_server.listener import server_config
from thalovant_server.tls import ensure_dev_tls

GUIDE_JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."
USER_AGENT = "thalovant-tests/1.0"


@dataclass
class Identity:
    """A provisioned client identity plus its derived PSK (derived once per module)."""

    data: dict[str, Any]
    node_id: str
    psk: bytes = b""
    static: KeyPair = field(default_factory=KeyPair.generate)

    @property
    def hub_id(self) -> str:
        return str(self.data["hub_id"])

    @property
    def client_id(self) -> str:
        return str(self.data["client_id"])


@dataclass
class HubData:
    """A data directory with a user, one hub and a few client identities."""

    data_dir: Path
    port: int
    hub_id: str
    node_id: str
    identities: list[Identity] = field(default_factory=list)

    def admin(self, *args: str, stdin: str = "") -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("THALOVANT_")}
        env["THALOVANT_PORT"] = str(self.port)
        env["THALOVANT_HOST"] = "127.0.0.1"
        result = subprocess.run(
            [*server_command(), "admin", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            input=stdin,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def new_identity(self, name: str) -> Identity:
        path = self.data_dir / f"{name}.json"
        self.admin("client", "create", "--hub", "joke-garden", "--name", name, "--out", str(path))
        identity = Identity(json.loads(path.read_text()), self.node_id)
        identity.psk = derive_psk(str(identity.data["password"]), self.node_id)
        return identity


def _node_id(data_dir: Path, hub_id: str) -> str:
    code = (
        "import asyncio, sys\n"
        "from thalovant_server.app import open_control_plane\n"
        "from thalovant_server.config import ServerConfig\n"
        "async def main():\n"
        "    async with open_control_plane(ServerConfig(data_dir=__import__('pathlib').Path(sys.argv[1]))) as p:\n"
        "        keys = await p.directory().load_hub(sys.argv[2])\n"
        "        print(keys.node_id)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(data_dir), hub_id], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def hub_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubData]:
    data_dir = tmp_path_factory.mktemp("wss-hub")
    port = free_port()
    ensure_dev_tls(data_dir, extra_names=("127.0.0.1",))
    data = HubData(data_dir, port, "", "")
    data.admin("user", "create", "--email", "owner@example.com", "--password-stdin", stdin=secrets.token_urlsafe(16))
    created = json.loads(
        data.admin(
            "hub",
            "create",
            "--slug",
            "joke-garden",
            "--title",
            "Joke garden",
            "--no-mqtt",
            "--skill",
            "jokes",
            "--skill",
            "trivia",
            "--skill",
            "capabilities",
            "--skill",
            "memory",
        )
    )
    data.hub_id = str(created["id"])
    data.node_id = _node_id(data_dir, data.hub_id)
    data.identities = [data.new_identity(f"client-{i}") for i in range(4)]
    yield data


class HubServer:
    """``create_app`` under uvicorn, configured as ``serve`` configures it, in the current event loop."""

    def __init__(self, data: HubData, limits: Limits | None = None) -> None:
        self.data = data
        self.config = ServerConfig(data_dir=data.data_dir, host="127.0.0.1", port=data.port, mqtt_port=0)
        tls = ensure_dev_tls(data.data_dir, extra_names=("127.0.0.1",))
        self.app = create_app(self.config)
        self.server = uvicorn.Server(
            server_config(
                self.app,
                host="127.0.0.1",
                port=data.port,
                cert=str(tls.cert),
                key=str(tls.key),
                limits=limits or Limits(),
                websockets=websocket_route_of(self.app),
                lifespan="on",
                log_level="warning",
            )
        )
        self.task: asyncio.Task[None] | None = None
        self.ssl = ssl.create_default_context(cafile=str(data.data_dir / "ca.pem"))

    @property
    def runtime(self) -> HubRuntime:
        runtime = self.app.state.runtime
        assert isinstance(runtime, HubRuntime)
        return runtime

    async def start(self) -> None:
        self.server.should_exit = False
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            assert not self.task.done(), "server failed to start"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.server.started = False

    def url(self, hub_id: str | None = None) -> str:
        return f"wss://127.0.0.1:{self.data.port}/hubs/{hub_id or self.data.hub_id}"

    async def dial(self, query: str) -> ClientConnection:
        return await websockets.connect(f"{self.url()}?{query}", ssl=self.ssl, max_size=None)

    async def raw(self, identity: Identity, **kwargs: Any) -> RawSession:
        session = RawSession(self, identity, **kwargs)
        await session.open()
        return session


def authorization(access_key: str, useragent: str = USER_AGENT) -> str:
    return "authorization=" + quote(base64.b64encode(f"{useragent}:{access_key}".encode()).decode(), safe="")


class RawSession:
    """A client session driven by our engine's client role (``ClientNegotiation``)."""

    def __init__(
        self,
        server: HubServer,
        identity: Identity,
        *,
        static: KeyPair | None = None,
        hub_pin: bytes | None = None,
        session_id: str | None = None,
        psk: bytes | None = None,
    ) -> None:
        self.server = server
        self.identity = identity
        self.static = static or identity.static
        self.negotiation = ClientNegotiation(
            static=self.static, site_id="tests", session_id=session_id or f"raw-{secrets.token_hex(8)}", hub_pin=hub_pin
        )
        self.psk = psk or identity.psk
        self.ws: ClientConnection | None = None
        self.hub_hello: dict[str, Any] | None = None

    async def open(self) -> None:
        """Dial and negotiate; the hub's encrypted HELLO is read as well."""
        self.ws = await self.server.dial(authorization(str(self.identity.data["access_key"])))
        await self.handshake()
        self.hub_hello = await self.next_envelope()

    async def handshake(self) -> None:
        assert self.ws is not None
        while not self.negotiation.complete:
            message = await self.ws.recv()
            assert isinstance(message, str), "binary message before the handshake completed"
            out = self.negotiation.receive_text(message)
            if self.negotiation.needs_psk:
                await self.ws.send(self.negotiation.start(self.psk))
            for item in out:
                await self.ws.send(item)

    async def next_envelope(self) -> dict[str, Any]:
        assert self.ws is not None
        while True:
            message = await self.ws.recv()
            assert isinstance(message, bytes), "text message after the handshake"
            frame = self.negotiation.channel.open(message)
            if frame is not None:
                envelope: dict[str, Any] = json.loads(frame.body)
                return envelope

    async def send_bus(self, bus_type: str, data: dict[str, Any], context: dict[str, Any]) -> None:
        assert self.ws is not None
        for message in self.negotiation.channel.seal_json(HiveMessage.bus(bus_type, data, context).to_bytes()):
            await self.ws.send(message)

    async def ask(self, text: str, **context: Any) -> list[BusMessage]:
        """Send an utterance; collect the bus replies up to ``ovos.utterance.handled``."""
        request_id = f"req-{secrets.token_hex(6)}"
        ctx = {"request_id": request_id, "source": USER_AGENT, "destination": "HiveMind", **context}
        await self.send_bus("recognizer_loop:utterance", {"utterances": [text], "lang": "en-us"}, ctx)
        replies: list[BusMessage] = []
        while True:
            envelope = await self.next_envelope()
            bus = BusMessage.from_object(envelope.get("payload"))
            if bus.context.get("request_id") != request_id:
                continue
            replies.append(bus)
            if bus.type == "ovos.utterance.handled":
                return replies

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def closed_without_status(ws: ClientConnection) -> list[str | bytes]:
    """Everything received until the close, which must carry no status (1005)."""
    received: list[str | bytes] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            received.append(await ws.recv())
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1005
    return received


@pytest.fixture
async def hub(hub_data: HubData) -> AsyncIterator[HubServer]:
    server = HubServer(hub_data)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def speech(replies: list[BusMessage]) -> list[str]:
    return [str(m.data.get("utterance")) for m in replies if m.type == "speak"]


async def test_ask_over_wss_gets_hub_hello_then_speak_and_handled(hub: HubServer, hub_data: HubData) -> None:
    session = await hub.raw(hub_data.identities[0])
    assert session.hub_hello is not None and session.hub_hello["msg_type"] == "hello"
    assert session.hub_hello["payload"]["node_id"] == hub_data.node_id
    replies = await session.ask("Tell me a short clean joke.")
    assert [m.type for m in replies] == ["speak", "ovos.utterance.handled"]
    assert speech(replies) == [GUIDE_JOKE]
    assert replies[0].context["destination"] == USER_AGENT
    assert replies[-1].context["session"]["session_id"] == session.negotiation.session_id
    await session.close()


async def test_server_sockets_have_tcp_nodelay(hub: HubServer, hub_data: HubData) -> None:
    session = await hub.raw(hub_data.identities[0])
    connections = list(hub.server.server_state.connections)
    assert connections
    for protocol in connections:
        transport = getattr(protocol, "transport", None)
        assert transport is not None
        sock = transport.get_extra_info("socket")
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    await session.close()


@pytest.mark.parametrize(
    "query",
    [
        "",
        "authorization=",
        "authorization=%%%",
        "authorization=not-base64!",
        "authorization=" + quote(base64.b64encode(b"no colon here").decode()),
        "authorization=" + quote(base64.b64encode(b"ua:").decode()),
        "authorization=" + quote(base64.b64encode(b"\xff\xfe:\xff").decode()),
    ],
)
async def test_malformed_authorization_closes_1008(hub: HubServer, query: str) -> None:
    ws = await hub.dial(query)
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_unknown_key_or_hub_closes_without_status_and_sends_nothing(hub: HubServer) -> None:
    ws = await hub.dial(authorization("no-such-key"))
    assert await closed_without_status(ws) == []
    ws = await websockets.connect(f"wss://127.0.0.1:{hub.data.port}/hubs/no-such-hub?{authorization('x')}", ssl=hub.ssl)
    assert await closed_without_status(ws) == []


async def test_a_colon_in_the_user_agent_is_fine(hub: HubServer, hub_data: HubData) -> None:
    identity = hub_data.identities[0]
    ws = await hub.dial(authorization(str(identity.data["access_key"]), useragent="Agent:With:Colons/1"))
    first = await ws.recv()
    assert isinstance(first, str) and json.loads(first)["msg_type"] == "hello"
    await ws.close()


async def test_pinning_offers_kk_rejects_other_keys_and_survives_a_restart(hub: HubServer, hub_data: HubData) -> None:
    identity = hub_data.identities[1]
    key = KeyPair.generate()
    first = await hub.raw(identity, static=key)
    assert first.negotiation.pattern == "XXpsk2"
    assert first.negotiation.offer_payload is not None
    assert first.negotiation.offer_payload["noise"]["patterns"] == ["XXpsk2"]
    hub_key = first.negotiation.hub_static
    await first.close()

    # another client key for the pinned identity: closed without status right after message 3
    other = RawSession(hub, identity, static=KeyPair.generate())
    other.ws = await hub.dial(authorization(str(identity.data["access_key"])))
    await other.handshake()
    assert other.negotiation.offer_payload is not None
    assert other.negotiation.offer_payload["noise"]["patterns"] == ["KKpsk0", "XXpsk2"]
    assert await closed_without_status(other.ws) == []

    # the pinned key uses KK, also after a restart
    await hub.stop()
    await hub.start()
    again = await hub.raw(identity, static=key, hub_pin=hub_key)
    assert again.negotiation.pattern == "KKpsk0"
    assert speech(await again.ask("What can this hub do?")) == ["This hub can answer quick joke and trivia requests."]
    assert hub.runtime.counters["pattern:KKpsk0"] == 1
    await again.close()


async def test_default_session_id_is_refused(hub: HubServer, hub_data: HubData) -> None:
    session = RawSession(hub, hub_data.identities[0], session_id="default")
    session.ws = await hub.dial(authorization(str(session.identity.data["access_key"])))
    await session.handshake()
    assert await closed_without_status(session.ws) == []


async def test_wrong_password_never_authenticates(hub: HubServer, hub_data: HubData) -> None:
    session = RawSession(hub, hub_data.identities[0], psk=b"\x00" * 32)
    session.ws = await hub.dial(authorization(str(session.identity.data["access_key"])))
    # the hub's message 2 does not authenticate under the wrong PSK: the client refuses it
    with pytest.raises((ProtocolError, ConnectionClosed)):
        await session.handshake()
    await session.ws.close()


async def test_chunked_messages_are_reassembled(hub: HubServer, hub_data: HubData) -> None:
    session = await hub.raw(hub_data.identities[0])
    replies = await session.ask("What can this hub do?", padding="p" * 140_000)
    assert speech(replies) == ["This hub can answer quick joke and trivia requests."]
    assert replies[0].context["padding"] == "p" * 140_000
    await session.close()


async def test_bad_frames_close_only_their_own_session(hub: HubServer, hub_data: HubData) -> None:
    healthy = await hub.raw(hub_data.identities[0])
    for poison in ("text", "garbage", "tampered"):
        victim = await hub.raw(hub_data.identities[2])
        assert victim.ws is not None
        if poison == "text":
            await victim.ws.send("plaintext after the handshake")
        elif poison == "garbage":
            await victim.ws.send(os.urandom(64))
        else:
            [sealed] = victim.negotiation.channel.seal_json(b'{"msg_type":"bus"}')
            await victim.ws.send(sealed[:-1] + bytes([sealed[-1] ^ 1]))
        with pytest.raises(ConnectionClosed):
            while True:
                await victim.ws.recv()
        assert speech(await healthy.ask("What can this hub do?")) == [
            "This hub can answer quick joke and trivia requests."
        ]
    await healthy.close()


async def test_a_broadcast_without_a_grant_disconnects_the_client(hub: HubServer, hub_data: HubData) -> None:
    session = await hub.raw(hub_data.identities[0])
    assert session.ws is not None
    inner = HiveMessage.bus("speak", {"utterance": "to everyone"}, {"source": USER_AGENT})
    for message in session.negotiation.channel.seal_json(HiveMessage("broadcast", inner.to_dict()).to_bytes()):
        await session.ws.send(message)
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await session.ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_revocation_closes_live_sessions_and_refuses_new_ones(hub: HubServer, hub_data: HubData) -> None:
    identity = hub_data.identities[3]
    session = await hub.raw(identity)
    bystander = await hub.raw(hub_data.identities[0])
    await hub.runtime.client_revoked(identity.client_id)
    assert session.ws is not None
    with pytest.raises(ConnectionClosed):
        while True:
            await session.ws.recv()
    ws = await hub.dial(authorization(str(identity.data["access_key"])))
    assert await closed_without_status(ws) == []
    assert speech(await bystander.ask("Tell me a short clean joke.")) == [GUIDE_JOKE]
    await bystander.close()


async def test_push_and_pings(hub: HubServer, hub_data: HubData) -> None:
    session = await hub.raw(hub_data.identities[0])
    assert session.ws is not None
    pong = await session.ws.ping()
    await pong
    notice = BusMessage("thalovant.hub.notice", {"text": "maintenance at noon"}, {"source": "hub"})
    sent = await hub.runtime.push(hub_data.hub_id, notice, session_id=session.negotiation.session_id)
    assert sent == 1
    envelope = await session.next_envelope()
    assert envelope["payload"]["type"] == "thalovant.hub.notice"
    assert envelope["payload"]["context"]["session"]["session_id"] == session.negotiation.session_id
    await session.close()


async def test_emit_of_a_disallowed_type_is_denied_with_the_request_context(hub: HubServer, hub_data: HubData) -> None:
    session = await hub.raw(hub_data.identities[0])
    await session.send_bus("mycroft.volume.set", {"percent": 10}, {"request_id": "vol-1"})
    envelope = await session.next_envelope()
    assert envelope["payload"]["type"] == "hive.policy.denied"
    assert envelope["payload"]["data"]["denied_type"] == "mycroft.volume.set"
    assert envelope["payload"]["context"]["request_id"] == "vol-1"
    await session.close()


async def raw_upgrade(hub: HubServer, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection upgraded to WebSocket by hand: nothing answers the server's pings."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.data.port, ssl=hub.ssl)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def server_frames(reader: asyncio.StreamReader) -> list[tuple[int, bytes]]:
    """Every (opcode, payload) the server sends (unmasked, short frames) until the stream ends."""
    frames: list[tuple[int, bytes]] = []
    try:
        while True:
            first, second = await reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            frames.append((first & 0x0F, await reader.readexactly(length)))
    except (asyncio.IncompleteReadError, ConnectionError):
        return frames


async def test_an_upgrade_to_any_other_path_is_answered_404(hub: HubServer) -> None:
    for path in ("/v1/hubs", "/hubs/a/b", "/hubs/"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"wss://127.0.0.1:{hub.data.port}{path}", ssl=hub.ssl)
        assert refused.value.response.status_code == 404


async def test_a_peer_that_answers_no_ping_is_dropped(hub_data: HubData) -> None:
    server = HubServer(hub_data, Limits(ws_ping_interval=0.2))
    await server.start()
    try:
        access_key = str(hub_data.identities[0].data["access_key"])
        reader, writer = await raw_upgrade(server, f"/hubs/{hub_data.hub_id}?{authorization(access_key)}")
        frames = await server_frames(reader)  # ends when the server aborts the connection
        writer.close()
    finally:
        await server.stop()
    opcodes = [opcode for opcode, _ in frames]
    assert opcodes.count(0x9) >= 1, opcodes  # pinged, never answered
    assert 0x8 not in opcodes  # aborted, not closed: the peer is gone


async def test_text_that_is_not_utf8_closes_1007(hub: HubServer, hub_data: HubData) -> None:
    access_key = str(hub_data.identities[0].data["access_key"])
    reader, writer = await raw_upgrade(hub, f"/hubs/{hub_data.hub_id}?{authorization(access_key)}")
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"\xff\xfe"))
    writer.write(bytes([0x81, 0x80 | 2]) + mask + payload)
    frames = await server_frames(reader)
    writer.close()
    closes = [payload for opcode, payload in frames if opcode == 0x8]
    assert closes and int.from_bytes(closes[0][:2], "big") == 1007


async def test_a_client_that_stops_reading_is_not_read_either(hub: HubServer, hub_data: HubData) -> None:
    """Asks from a client that reads no answer stop being read: the answers waiting for it stay
    bounded by the transport's high-water mark, not by what the client sends, and other
    sessions go on."""
    session = await hub.raw(hub_data.new_identity("stuck-reader"))
    assert session.ws is not None
    [connection] = [c for c in hub.server.server_state.connections if isinstance(c, WebSocketConnection)]
    session.ws.transport.pause_reading()  # the client reads nothing more from its socket
    context = {"source": USER_AGENT, "destination": "HiveMind", "padding": "p" * 30_000}
    request = HiveMessage.bus("recognizer_loop:utterance", {"utterances": ["What can this hub do?"]}, context)

    async def ask_without_reading() -> None:
        assert session.ws is not None
        while True:  # until the client's own socket is full: its send then waits
            for message in session.negotiation.channel.seal_json(request.to_bytes()):
                await session.ws.send(message)

    sender = asyncio.create_task(ask_without_reading())
    while not connection.reading_paused:
        assert not sender.done()
        await asyncio.sleep(0.01)
    high_water = connection.buffered()
    sender.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sender
    assert high_water < 1024 * 1024
    assert connection.buffered() == high_water  # nothing more was answered: nothing more was read
    other = await hub.raw(hub_data.identities[0])  # the stuck client holds nobody else up
    assert speech(await other.ask("Tell me a short clean joke.")) == [GUIDE_JOKE]
    await other.close()
    session.ws.transport.abort()


async def test_a_client_that_leaves_pushes_unread_is_closed_with_1013(hub: HubServer, hub_data: HubData) -> None:
    session = await hub.raw(hub_data.new_identity("push-hoarder"))
    assert session.ws is not None
    [connection] = [c for c in hub.server.server_state.connections if isinstance(c, WebSocketConnection)]
    session.ws.transport.pause_reading()
    notice = BusMessage("thalovant.hub.notice", {"text": "n" * 60_000}, {"source": "hub"})
    pushes = 0
    while connection.is_open:
        assert pushes < 2000, "the server kept buffering for a client that reads nothing"
        await hub.runtime.push(hub_data.hub_id, notice, session_id=session.negotiation.session_id)
        pushes += 1
    assert connection.buffered() <= MAX_UNREAD + 128 * 1024
    session.ws.transport.resume_reading()
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await session.ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


async def test_a_flooding_client_takes_turns_with_the_others(
    hub: HubServer, hub_data: HubData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of 200 asks read at once is answered a few at a time between other connections'
    messages: an ask from another client made right after the burst is answered after at most a
    turn or two of it."""
    handled: list[str] = []
    original = WSSSession.on_message

    def recording(self: WSSSession, message: str | bytes) -> None:
        handled.append(self.link.client_id)
        original(self, message)

    monkeypatch.setattr(WSSSession, "on_message", recording)
    flooder = await hub.raw(hub_data.new_identity("flooder"))
    other = await hub.raw(hub_data.identities[0])
    assert flooder.ws is not None
    context = {"source": USER_AGENT, "destination": "HiveMind"}
    request = HiveMessage.bus("recognizer_loop:utterance", {"utterances": ["Tell me a joke."]}, context)
    for _ in range(200):  # framed by the client's sans-I/O protocol, then written at once
        for message in flooder.negotiation.channel.seal_json(request.to_bytes()):
            flooder.ws.protocol.send_binary(message)
    flooder.ws.send_data()
    assert speech(await other.ask("Tell me a short clean joke.")) == [GUIDE_JOKE]
    flooder_id = flooder.identity.client_id
    answered_before_other = handled.index(other.identity.client_id)
    # one of the burst per turn of the event loop; without that bound a whole TLS record's worth
    # (16 of these asks) went first
    assert handled[:answered_before_other].count(flooder_id) <= 2
    await flooder.close()
    await other.close()
