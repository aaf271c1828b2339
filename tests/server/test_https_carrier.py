"""The hub side of the HTTPS polling carrier (spec 4.2), request by request.

Most tests talk raw HTTP (httpx, no redirects followed) to a real ``thalovant-server serve``
process on 127.0.0.1 and drive the negotiation with our engine's client role
(``ClientNegotiation``), so every status and body is checked as a client sees it. The last
tests run the same app in-process (``create_app`` under its lifespan, requests through
``httpx.ASGITransport``) to look at what the wire cannot show: the runtime's live sessions
after an idle expiry, and a hub-initiated push.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from peers.processes import free_port
from tests.fixtures.peers import trust_env
from tests.fixtures.server import RunningServer

from thalovant.protocol.envelope import BusMessage, HiveMessage
from thalovant.protocol.errors import ProtocolError
from thalovant.protocol.negotiation import ClientNegotiation
from thalovant.protocol.noise import KeyPair
from thalovant.protocol.psk import derive_psk
from thalovant_server.app import create_app
from thalovant_server.carriers.https import IDLE_TIMEOUT_ENV, REPLICA_COOKIE, PollingCarrier
from thalovant_server.carriers.polling import MAX_OUTBOUND_MESSAGES, MAX_POLL_BYTES
from thalovant_server.config import ServerConfig
from thalovant_server.hub.runtime import HubRuntime
from thalovant_server.secrets import hash_password
from thalovant_server.store import accounts
from thalovant_server.tls import ensure_dev_tls

UA = "https-carrier-tests/1.0"
GUIDE_JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."
UNAUTHORIZED = {"error": "Unauthorized"}
PATHS = ("/connect", "/get_messages", "/get_binary_messages", "/send_message")


def authorization(access_key: str, useragent: str = UA) -> str:
    return base64.b64encode(f"{useragent}:{access_key}".encode()).decode("ascii")


@dataclass
class Identity:
    """A client identity (the identity file's fields); its PSK is derived once, on first use."""

    data: dict[str, Any]
    static: KeyPair = field(default_factory=KeyPair.generate)
    _psk: dict[str, bytes] = field(default_factory=dict)

    @property
    def access_key(self) -> str:
        return str(self.data["access_key"])

    @property
    def hub_id(self) -> str:
        return str(self.data["hub_id"])

    def psk(self, node_id: str) -> bytes:
        if node_id not in self._psk:
            self._psk[node_id] = derive_psk(str(self.data["password"]), node_id)
        return self._psk[node_id]


class Poller:
    """One client's requests to one hub's polling base (the credential in every query)."""

    def __init__(self, http: httpx.AsyncClient, hub_id: str, access_key: str) -> None:
        self.http = http
        self.base = f"/hubs/{hub_id}"
        self.auth = authorization(access_key)

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, self.base + path, params={"authorization": self.auth}, **kwargs)

    async def connect(self) -> httpx.Response:
        return await self.call("POST", "/connect")

    async def disconnect(self) -> httpx.Response:
        return await self.call("POST", "/disconnect")

    async def texts(self) -> list[str]:
        response = await self.call("GET", "/get_messages")
        assert response.status_code == 200, response.text
        messages = response.json()["messages"]
        assert isinstance(messages, list) and all(isinstance(item, str) for item in messages)
        return messages

    async def binaries(self) -> list[bytes]:
        response = await self.call("GET", "/get_binary_messages")
        assert response.status_code == 200, response.text
        return [base64.b64decode(item, validate=True) for item in response.json()["b64_messages"]]

    async def send_text(self, text: str) -> httpx.Response:
        return await self.call("POST", "/send_message", data={"message": text})

    async def send_binary(self, message: bytes) -> httpx.Response:
        encoded = base64.b64encode(message).decode("ascii")
        return await self.call("POST", "/send_message", data={"message": encoded, "binary": "1"})


@dataclass
class Negotiated:
    """The outcome of :func:`negotiate`: the client engine and the hub's answer to each send."""

    negotiation: ClientNegotiation
    answers: list[httpx.Response]

    @property
    def last(self) -> httpx.Response:
        return self.answers[-1]


async def negotiate(
    poller: Poller,
    identity: Identity,
    *,
    static: KeyPair | None = None,
    session_id: str | None = None,
    hub_pin: bytes | None = None,
    psk: bytes | None = None,
    max_polls: int = 50,
) -> Negotiated:
    """``/connect``, then the cleartext negotiation; stops at the first non-200 answer.

    The hub answers each message at once, so message 2 is queued by the time the send of
    message 1 returns; ``max_polls`` only bounds the loop.
    """
    connected = await poller.connect()
    assert connected.status_code == 200, connected.text
    negotiation = ClientNegotiation(
        static=static or identity.static,
        site_id="tests",
        session_id=session_id or f"tests-{secrets.token_hex(8)}",
        hub_pin=hub_pin,
    )
    answers: list[httpx.Response] = [connected]
    for _ in range(max_polls):
        for text in await poller.texts():
            out = negotiation.receive_text(text)
            if negotiation.needs_psk:
                assert negotiation.node_id is not None
                answers.append(await poller.send_text(negotiation.start(psk or identity.psk(negotiation.node_id))))
                if answers[-1].status_code != 200:
                    return Negotiated(negotiation, answers)
            for item in out:
                if isinstance(item, str):
                    answers.append(await poller.send_text(item))
                else:
                    answers.append(await poller.send_binary(item))
                if answers[-1].status_code != 200:
                    return Negotiated(negotiation, answers)
            if negotiation.complete:
                return Negotiated(negotiation, answers)
    raise AssertionError("the negotiation did not complete")


async def next_envelopes(poller: Poller, negotiation: ClientNegotiation, count: int = 1) -> list[dict[str, Any]]:
    """The next ``count`` envelopes from ``/get_binary_messages`` (a bounded poll loop)."""
    envelopes: list[dict[str, Any]] = []
    for _ in range(500):
        for message in await poller.binaries():
            frame = negotiation.channel.open(message)
            if frame is not None:
                envelopes.append(json.loads(frame.body))
        if len(envelopes) >= count:
            return envelopes
    raise AssertionError(f"got {len(envelopes)} of {count} envelopes")


async def ask(poller: Poller, negotiation: ClientNegotiation, text: str) -> list[BusMessage]:
    """Send an utterance; the bus replies up to ``ovos.utterance.handled``."""
    request_id = f"req-{secrets.token_hex(6)}"
    context = {"request_id": request_id, "source": UA, "destination": "HiveMind"}
    body = HiveMessage.bus("recognizer_loop:utterance", {"utterances": [text], "lang": "en-us"}, context).to_bytes()
    for message in negotiation.channel.seal_json(body):
        sent = await poller.send_binary(message)
        assert sent.status_code == 200 and "error" not in sent.json(), sent.text
    replies: list[BusMessage] = []
    while not replies or replies[-1].type != "ovos.utterance.handled":
        for envelope in await next_envelopes(poller, negotiation):
            bus = BusMessage.from_object(envelope.get("payload"))
            if bus.context.get("request_id") == request_id:
                replies.append(bus)
    return replies


def speech(replies: list[BusMessage]) -> list[str]:
    return [str(message.data.get("utterance")) for message in replies if message.type == "speak"]


async def assert_refused_everywhere(poller: Poller) -> None:
    """401 ``Unauthorized`` on every path but ``/connect`` and ``/disconnect``."""
    for method, path, kwargs in (
        ("GET", "/get_messages", {}),
        ("GET", "/get_binary_messages", {}),
        ("POST", "/send_message", {"data": {"message": "{}"}}),
        ("POST", "/send_message", {"data": {"message": "AAAA", "binary": "1"}}),
    ):
        response = await poller.call(method, path, **kwargs)
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED), (path, response.text)


# -- the real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trusted(server: RunningServer) -> Iterator[RunningServer]:
    """The session's server, its CA trusted through the environment as the SDKs expect."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in trust_env(server.ca_file).items():
            patch.setenv(key, value)
        yield server


def identity_of(server: RunningServer, directory: Path, hub: str = "joke-garden") -> Identity:
    path = directory / f"identity-{secrets.token_hex(4)}.json"
    server.admin("client", "create", "--hub", hub, "--name", f"https-{secrets.token_hex(4)}", "--out", str(path))
    return Identity(json.loads(path.read_text()))


@pytest.fixture(scope="module")
def identities(trusted: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> list[Identity]:
    directory = tmp_path_factory.mktemp("https-identities")
    return [identity_of(trusted, directory) for _ in range(6)]


def client_for(server: RunningServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.api_url,
        verify=ssl.create_default_context(cafile=str(server.ca_file)),
        follow_redirects=False,
        headers={"User-Agent": UA},
        timeout=30,
    )


@pytest.fixture
async def http(trusted: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(trusted) as client:
        yield client


async def test_unknown_key_or_hub_is_401_and_disconnect_still_200(
    http: httpx.AsyncClient, identities: list[Identity]
) -> None:
    hub_id = identities[0].hub_id
    for poller in (
        Poller(http, hub_id, "unknown-" + secrets.token_hex(8)),
        Poller(http, "no-such-hub", identities[0].access_key),
    ):
        connected = await poller.connect()
        assert (connected.status_code, connected.json()) == (401, UNAUTHORIZED)
        assert "set-cookie" not in connected.headers
        await assert_refused_everywhere(poller)
        for _ in range(2):
            gone = await poller.disconnect()
            assert (gone.status_code, gone.json()) == (200, {"error": "Already Disconnected"})


@pytest.mark.parametrize("query", ["", "authorization=", "authorization=%25%25", "authorization=bm8tY29sb24"])
async def test_malformed_authorization_is_401(http: httpx.AsyncClient, identities: list[Identity], query: str) -> None:
    base = f"/hubs/{identities[0].hub_id}"
    for path in PATHS:
        response = await http.request(
            "POST" if path in ("/connect", "/send_message") else "GET", f"{base}{path}?{query}"
        )
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    gone = await http.post(f"{base}/disconnect?{query}")
    assert (gone.status_code, gone.json()) == (200, {"error": "Already Disconnected"})


async def test_connect_sets_the_replica_cookie_and_queues_hello_then_offer(
    http: httpx.AsyncClient, identities: list[Identity]
) -> None:
    poller = Poller(http, identities[0].hub_id, identities[0].access_key)
    connected = await poller.connect()
    assert (connected.status_code, connected.json()) == (200, {"status": "Connected"})
    cookie = connected.headers["set-cookie"]
    name_value, *attributes = [part.strip() for part in cookie.split(";")]
    assert name_value.startswith(f"{REPLICA_COOKIE}=") and len(name_value) > len(REPLICA_COOKIE) + 1
    assert {"Secure", "HttpOnly", "Path=/"} <= set(attributes)
    hello, offer = (json.loads(text) for text in await poller.texts())
    assert hello["msg_type"] == "hello" and hello["payload"]["node_id"]
    assert offer["msg_type"] == "shake" and offer["payload"]["noise"]["patterns"] == ["XXpsk2"]
    assert await poller.texts() == []
    assert await poller.binaries() == []
    gone = await poller.disconnect()
    assert (gone.status_code, gone.json()) == (200, {"status": "Disconnected"})
    again = await poller.disconnect()
    assert (again.status_code, again.json()) == (200, {"error": "Already Disconnected"})
    await assert_refused_everywhere(poller)


async def test_handshake_then_ask_and_get_messages_stays_empty(
    http: httpx.AsyncClient, identities: list[Identity]
) -> None:
    identity = identities[1]
    poller = Poller(http, identity.hub_id, identity.access_key)
    done = await negotiate(poller, identity)
    assert [answer.status_code for answer in done.answers] == [200] * len(done.answers)
    assert done.last.json() == {"status": "message sent"}
    assert done.negotiation.pattern == "XXpsk2"
    # a HEAD poll does not drain the queue
    assert (await poller.call("HEAD", "/get_binary_messages")).status_code == 200
    # the hub's own encrypted HELLO comes first, as an authenticated frame
    (hub_hello,) = await next_envelopes(poller, done.negotiation)
    assert hub_hello["msg_type"] == "hello"
    assert hub_hello["payload"]["session"]["session_id"] == done.negotiation.session_id
    for _ in range(3):
        response = await poller.call("GET", "/get_messages")
        assert response.status_code == 200 and response.json() == {"messages": []}
    replies = await ask(poller, done.negotiation, "Tell me a short clean joke.")
    assert speech(replies) == [GUIDE_JOKE]
    assert replies[-1].context["session"]["session_id"] == done.negotiation.session_id
    assert await poller.texts() == []
    gone = await poller.disconnect()
    assert (gone.status_code, gone.json()) == (200, {"status": "Disconnected"})
    await assert_refused_everywhere(poller)


async def test_a_new_connect_supersedes_the_old_session(http: httpx.AsyncClient, identities: list[Identity]) -> None:
    identity = identities[1]
    poller = Poller(http, identity.hub_id, identity.access_key)
    first = await negotiate(poller, identity)
    assert first.last.status_code == 200
    second = await negotiate(poller, identity)
    assert second.last.status_code == 200
    # the old session's channel is gone: its frames do not decrypt in the new one
    stale = first.negotiation.channel.seal_json(HiveMessage("hello", {}).to_bytes())[0]
    refused = await poller.send_binary(stale)
    assert refused.status_code == 400
    await assert_refused_everywhere(poller)
    assert (await poller.disconnect()).json() == {"status": "Disconnected"}


async def test_abort_for_default_session_id_is_401_everywhere_but_disconnect(
    http: httpx.AsyncClient, identities: list[Identity]
) -> None:
    identity = identities[2]
    poller = Poller(http, identity.hub_id, identity.access_key)
    done = await negotiate(poller, identity, session_id="default")
    assert (done.last.status_code, done.last.json()) == (401, UNAUTHORIZED)
    await assert_refused_everywhere(poller)
    for expected in ({"status": "Disconnected"}, {"error": "Already Disconnected"}):
        gone = await poller.disconnect()
        assert (gone.status_code, gone.json()) == (200, expected)


async def test_malformed_handshake_aborts(http: httpx.AsyncClient, identities: list[Identity]) -> None:
    identity = identities[2]
    poller = Poller(http, identity.hub_id, identity.access_key)
    for garbage in ("not json", '{"msg_type":"shake","payload":{"noise":{"msg":"zz"}}}', "[]", "{}"):
        assert (await poller.connect()).status_code == 200
        refused = await poller.send_text(garbage)
        assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)
        await assert_refused_everywhere(poller)
        assert (await poller.disconnect()).status_code == 200
    # binary before the handshake is complete
    assert (await poller.connect()).status_code == 200
    refused = await poller.send_binary(b"\x00" * 48)
    assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)
    await assert_refused_everywhere(poller)
    assert (await poller.disconnect()).status_code == 200


async def test_pinned_identity_kk_then_other_key_and_wrong_password_are_401(
    http: httpx.AsyncClient, identities: list[Identity]
) -> None:
    identity = identities[3]
    poller = Poller(http, identity.hub_id, identity.access_key)
    first = await negotiate(poller, identity)
    assert first.last.status_code == 200 and first.negotiation.pattern == "XXpsk2"
    hub_key = first.negotiation.hub_static
    assert (await poller.disconnect()).status_code == 200

    # the pinned key: KK
    kk = await negotiate(poller, identity, hub_pin=hub_key)
    assert kk.last.status_code == 200 and kk.negotiation.pattern == "KKpsk0"
    (hub_hello,) = await next_envelopes(poller, kk.negotiation)
    assert hub_hello["msg_type"] == "hello"

    # another client key: XX up to message 3, which gets the 401 (the SDK's "client key rejected")
    other = await negotiate(poller, identity, static=KeyPair.generate())
    assert other.negotiation.pattern == "XXpsk2"
    assert (other.last.status_code, other.last.json()) == (401, UNAUTHORIZED)
    assert len(other.answers) == 3  # /connect, message 1, message 3
    await assert_refused_everywhere(poller)
    assert (await poller.disconnect()).json() == {"status": "Disconnected"}

    # KK under a wrong password: message 1 does not authenticate
    wrong = await negotiate(poller, identity, hub_pin=hub_key, psk=b"\x01" * 32)
    assert wrong.negotiation.pattern == "KKpsk0"
    assert (wrong.last.status_code, wrong.last.json()) == (401, UNAUTHORIZED)
    await assert_refused_everywhere(poller)
    assert (await poller.disconnect()).json() == {"status": "Disconnected"}

    # XX under a wrong password: the hub's message 2 does not authenticate on the client
    with pytest.raises(ProtocolError):
        await negotiate(poller, identity, psk=b"\x02" * 32)
    assert (await poller.disconnect()).status_code == 200


async def test_no_redirects_anywhere(http: httpx.AsyncClient, identities: list[Identity]) -> None:
    identity = identities[0]
    auth = {"authorization": authorization(identity.access_key)}
    base = f"/hubs/{identity.hub_id}"
    for method, path in (
        ("POST", "/connect/"),
        ("GET", "/get_messages/"),
        ("GET", "/get_binary_messages/"),
        ("POST", "/send_message/"),
        ("POST", "/disconnect/"),
        ("GET", "/connect"),
        ("POST", "/get_messages"),
        ("GET", "/"),
    ):
        response = await http.request(method, base + path, params=auth)
        assert not response.is_redirect and 400 <= response.status_code < 500, (method, path, response.status_code)


async def test_bad_bodies_are_4xx_and_never_break_the_server(
    http: httpx.AsyncClient, identities: list[Identity]
) -> None:
    identity = identities[4]
    poller = Poller(http, identity.hub_id, identity.access_key)
    done = await negotiate(poller, identity)
    assert done.last.status_code == 200
    form = {"content-type": "application/x-www-form-urlencoded"}
    for body, status in (
        (b"", 400),  # no message
        (b"binary=1", 400),
        (b"message=%%%&binary=1", 400),
        (b"message=not-base64!&binary=1", 400),
        (b"message=QUJD%0A&binary=1", 400),  # whitespace is not standard base64
        ("message=é".encode(), 400),
        (b"message=%FF%FE", 400),
        (b"&".join(b"f%d=1" % i for i in range(50)), 400),
        (b"message=" + b"A" * (600 * 1024) + b"&binary=1", 413),
    ):
        response = await poller.call("POST", "/send_message", content=body, headers=form)
        assert response.status_code == status, (body[:40], response.status_code, response.text)
        assert response.json()["error"]
    # none of these consumed a nonce: the session still answers
    replies = await ask(poller, done.negotiation, "Tell me a short clean joke.")
    assert speech(replies) == [GUIDE_JOKE]

    # a chunked body past the cap (no Content-Length)
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"A" * 16384

    too_big = await poller.call("POST", "/send_message", content=chunks(), headers=form)
    assert too_big.status_code == 413

    # valid base64 that does not decrypt ends the session (the nonces are lost)
    broken = await poller.send_binary(secrets.token_bytes(64))
    assert broken.status_code == 400 and broken.json()["error"]
    await assert_refused_everywhere(poller)
    assert (await poller.disconnect()).json() == {"status": "Disconnected"}

    # the server still serves everyone, this identity included
    again = await negotiate(poller, identity, hub_pin=done.negotiation.hub_static)
    assert again.last.status_code == 200
    assert speech(await ask(poller, again.negotiation, "Tell me a short clean joke.")) == [GUIDE_JOKE]
    assert (await poller.disconnect()).status_code == 200


async def test_hub_without_http_refuses(trusted: RunningServer, http: httpx.AsyncClient) -> None:
    token = await http.post("/v1/auth/token", json={"email": trusted.demo_email, "password": trusted.demo_password})
    headers = {"authorization": f"Bearer {token.json()['access_token']}"}
    spec = {"version": "1", "skills": ["jokes"], "protocols": {"wss": True, "http": False, "mqtt": False}}
    hub = await http.post("/v1/hubs", json={"name": f"no-http-{secrets.token_hex(3)}", "spec": spec}, headers=headers)
    assert hub.status_code == 201, hub.text
    client = await http.post("/v1/clients", json={"hub_id": hub.json()["id"], "name": "no-http"}, headers=headers)
    assert client.status_code == 201, client.text
    identity = Identity(client.json()["initial_identify"])
    assert "https" not in identity.data["data_plane_endpoints"]
    poller = Poller(http, identity.hub_id, identity.access_key)
    connected = await poller.connect()
    assert (connected.status_code, connected.json()) == (401, UNAUTHORIZED)
    assert (await poller.disconnect()).json() == {"error": "Already Disconnected"}


def test_the_server_printed_no_credential(trusted: RunningServer, identities: list[Identity]) -> None:
    """What the server printed while the tests above ran carries no access key or credential."""
    printed = "".join(trusted.output)
    assert "Thalovant API: " in printed
    for identity in identities:
        token = authorization(identity.access_key)
        for secret in (identity.access_key, token, quote(token, safe="")):
            assert secret not in printed


# -- idle expiry on a real server with a short timeout -----------------------------------------

IDLE_SECONDS = 1.0


@dataclass
class ShortIdleServer(RunningServer):
    """A ``serve --demo`` whose HTTPS sessions expire after :data:`IDLE_SECONDS`."""

    def env(self) -> dict[str, str]:
        return {**super().env(), IDLE_TIMEOUT_ENV: str(IDLE_SECONDS)}


@pytest.fixture
def short_idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShortIdleServer]:
    running = ShortIdleServer(
        data_dir=tmp_path_factory.mktemp("short-idle"), port=free_port(), demo_password=secrets.token_urlsafe(12)
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


async def test_idle_sessions_expire(short_idle_server: ShortIdleServer, tmp_path: Path) -> None:
    identity = identity_of(short_idle_server, tmp_path)
    async with client_for(short_idle_server) as http:
        poller = Poller(http, identity.hub_id, identity.access_key)
        done = await negotiate(poller, identity)
        assert done.last.status_code == 200
        # a client that keeps polling keeps its session past the idle timeout
        polls = 0
        until = time.monotonic() + 3 * IDLE_SECONDS
        while time.monotonic() < until:
            assert (await poller.call("GET", "/get_binary_messages")).status_code == 200
            polls += 1
        assert polls > 3
        # unpolled, it expires. A probe of a live session counts as activity, so the probes
        # are spaced wider than the timeout; the loop waits on the 401, a bounded number of times
        for _ in range(30):
            await asyncio.sleep(2 * IDLE_SECONDS)
            probe = await poller.call("GET", "/get_messages")
            if probe.status_code == 401:
                break
        else:
            raise AssertionError("the idle session never expired")
        assert probe.json() == UNAUTHORIZED
        assert (await poller.disconnect()).json() == {"error": "Already Disconnected"}
        # and the identity connects again at once
        again = await negotiate(poller, identity, hub_pin=done.negotiation.hub_static)
        assert again.last.status_code == 200 and again.negotiation.pattern == "KKpsk0"
        assert (await poller.disconnect()).json() == {"status": "Disconnected"}


# -- in-process: what the wire cannot show -------------------------------------------------------

OWNER_PASSWORD = "correct-horse-battery-staple"


@dataclass
class InProcess:
    app: Any
    http: httpx.AsyncClient

    @property
    def runtime(self) -> HubRuntime:
        runtime = self.app.state.runtime
        assert isinstance(runtime, HubRuntime)
        return runtime

    @property
    def carrier(self) -> PollingCarrier:
        carrier = self.app.state.https_carrier
        assert isinstance(carrier, PollingCarrier)
        return carrier

    async def identity(self) -> Identity:
        email = f"owner-{secrets.token_hex(4)}@example.com"
        async with self.app.state.store.session() as session:
            await accounts.create_user(session, email=email, password_hash=hash_password(OWNER_PASSWORD))
        token = await self.http.post("/v1/auth/token", json={"email": email, "password": OWNER_PASSWORD})
        headers = {"authorization": f"Bearer {token.json()['access_token']}"}
        spec = {"version": "1", "skills": ["jokes"]}
        hub = await self.http.post("/v1/hubs", json={"name": "push-hub", "spec": spec}, headers=headers)
        assert hub.status_code == 201, hub.text
        body = {"hub_id": hub.json()["id"], "name": "push-client"}
        client = await self.http.post("/v1/clients", json=body, headers=headers)
        assert client.status_code == 201, client.text
        return Identity(client.json()["initial_identify"])


@pytest.fixture
async def inprocess(tmp_path: Path) -> AsyncIterator[InProcess]:
    config = ServerConfig(data_dir=tmp_path / "data", port=8443, mqtt_port=0)
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            yield InProcess(app, http)


def pushed(n: int) -> BusMessage:
    return BusMessage("thalovant.tests.push", {"n": n}, {})


async def test_pushes_reach_https_clients_in_order(inprocess: InProcess) -> None:
    identity = await inprocess.identity()
    poller = Poller(inprocess.http, identity.hub_id, identity.access_key)
    done = await negotiate(poller, identity)
    assert done.last.status_code == 200
    (hello,) = await next_envelopes(poller, done.negotiation)
    assert hello["msg_type"] == "hello"
    runtime = inprocess.runtime
    assert len(runtime.live_sessions(identity.hub_id)) == 1
    assert await runtime.push(identity.hub_id, pushed(1)) == 1
    assert await runtime.push(identity.hub_id, pushed(2), session_id=done.negotiation.session_id) == 1
    assert await runtime.push(identity.hub_id, pushed(3), session_id="someone-else") == 0
    envelopes = await next_envelopes(poller, done.negotiation, 2)
    assert [envelope["payload"]["data"]["n"] for envelope in envelopes] == [1, 2]
    assert envelopes[1]["payload"]["context"]["session"]["session_id"] == done.negotiation.session_id


async def test_expiry_and_revocation_unregister_the_session(inprocess: InProcess) -> None:
    identity = await inprocess.identity()
    poller = Poller(inprocess.http, identity.hub_id, identity.access_key)
    runtime, carrier = inprocess.runtime, inprocess.carrier

    done = await negotiate(poller, identity)
    assert done.last.status_code == 200 and len(runtime.live_sessions(identity.hub_id)) == 1
    assert carrier.expire(now=time.monotonic() + carrier.idle_timeout / 2) == 0
    assert carrier.expire(now=time.monotonic() + carrier.idle_timeout + 1) == 1
    assert runtime.live_sessions(identity.hub_id) == []
    assert await runtime.push(identity.hub_id, pushed(1)) == 0
    await assert_refused_everywhere(poller)
    assert (await poller.disconnect()).json() == {"error": "Already Disconnected"}

    # a handshake that never finishes is aborted (401), then dropped when idle
    assert (await poller.connect()).status_code == 200
    carrier.expire(now=time.monotonic() + carrier.handshake_timeout + 1)
    await assert_refused_everywhere(poller)
    assert (await poller.disconnect()).json() == {"status": "Disconnected"}

    # revocation terminates a live session at once
    again = await negotiate(poller, identity, hub_pin=done.negotiation.hub_static)
    assert again.last.status_code == 200 and len(runtime.live_sessions(identity.hub_id)) == 1
    await runtime.client_revoked(str(identity.data["client_id"]))
    assert runtime.live_sessions(identity.hub_id) == []
    await assert_refused_everywhere(poller)
    refused = await poller.connect()
    assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)


async def test_a_client_that_never_polls_loses_its_session_at_the_queue_cap(inprocess: InProcess) -> None:
    identity = await inprocess.identity()
    poller = Poller(inprocess.http, identity.hub_id, identity.access_key)
    done = await negotiate(poller, identity)
    assert done.last.status_code == 200
    runtime = inprocess.runtime
    delivered = 0
    while await runtime.push(identity.hub_id, pushed(delivered)) == 1:
        delivered += 1
        assert delivered <= MAX_OUTBOUND_MESSAGES
    # the hub's HELLO and MAX - 1 pushes fill the queue; the next push ends the session instead
    assert delivered == MAX_OUTBOUND_MESSAGES
    assert runtime.live_sessions(identity.hub_id) == []
    await assert_refused_everywhere(poller)


async def test_a_large_backlog_is_answered_in_bounded_polls_in_order(inprocess: InProcess) -> None:
    identity = await inprocess.identity()
    poller = Poller(inprocess.http, identity.hub_id, identity.access_key)
    done = await negotiate(poller, identity)
    assert done.last.status_code == 200
    await next_envelopes(poller, done.negotiation)  # the hub's HELLO
    big = "x" * (1024 * 1024)
    for n in range(6):
        message = BusMessage("thalovant.tests.big", {"n": n, "big": big}, {})
        assert await inprocess.runtime.push(identity.hub_id, message) == 1
    sizes: list[int] = []
    received: list[int] = []
    while len(received) < 6:
        response = await poller.call("GET", "/get_binary_messages")
        assert response.status_code == 200
        items = response.json()["b64_messages"]
        assert items, "the backlog ran dry before every push arrived"
        sizes.append(sum(len(base64.b64decode(item, validate=True)) for item in items))
        for item in items:
            frame = done.negotiation.channel.open(base64.b64decode(item))
            if frame is not None:
                received.append(json.loads(frame.body)["payload"]["data"]["n"])
    assert received == list(range(6))
    assert len(sizes) >= 2 and max(sizes) <= MAX_POLL_BYTES


async def test_logs_name_the_client_never_its_key(inprocess: InProcess, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    identity = await inprocess.identity()
    poller = Poller(inprocess.http, identity.hub_id, identity.access_key)
    done = await negotiate(poller, identity)
    assert done.last.status_code == 200
    assert (await poller.send_binary(secrets.token_bytes(40))).status_code == 400  # ends the session
    assert (await poller.connect()).status_code == 200
    assert (await poller.send_text("garbage")).status_code == 401  # aborts the negotiation
    assert (await poller.disconnect()).status_code == 200
    # the server's records only (the test's own httpx client logs its URLs)
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        if record.name.startswith(("thalovant", "uvicorn", "starlette", "fastapi"))
    )
    assert "HTTPS session open" in logged and str(identity.data["client_id"]) in logged
    token = authorization(identity.access_key)
    for secret in (identity.access_key, token, quote(token, safe="")):
        assert secret not in logged


async def test_an_access_log_shows_no_credential(
    inprocess: InProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With uvicorn's access log on (``serve`` turns it off), the query is already redacted."""
    caplog.set_level(logging.INFO)
    identity = await inprocess.identity()
    tls = ensure_dev_tls(tmp_path / "tls")
    port = free_port()
    config = uvicorn.Config(
        inprocess.app,
        host="127.0.0.1",
        port=port,
        ssl_certfile=str(tls.cert),
        ssl_keyfile=str(tls.key),
        lifespan="off",
        access_log=True,
        log_config=None,
        log_level="info",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    for _ in range(1000):  # bounded wait for the listening socket
        if server.started or serving.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    context = ssl.create_default_context(cafile=str(tls.ca_cert))
    try:
        async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=context) as http:
            poller = Poller(http, identity.hub_id, identity.access_key)
            done = await negotiate(poller, identity)
            assert done.last.status_code == 200
            assert (await poller.send_binary(b"\x00" * 40)).status_code == 400
            assert (await poller.call("GET", "/get_messages")).status_code == 401
            assert (await poller.disconnect()).status_code == 200
    finally:
        server.should_exit = True
        await serving
    access = [record.getMessage() for record in caplog.records if record.name == "uvicorn.access"]
    assert any("/get_messages" in line for line in access), access
    assert any("/send_message" in line for line in access), access
    token = authorization(identity.access_key)
    for line in access:
        for secret in (identity.access_key, token, quote(token, safe="")):
            assert secret not in line
