"""The HTTPS polling carrier (spec 4.2) against a small real TLS server on 127.0.0.1.

The server is a scripted stand-in for a hub's polling endpoints: it records every request and
answers from queues and per-path overrides, so each test can check what goes on the wire and
how each kind of answer (401, redirects, bad bodies, errors) is mapped.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from tests.fixtures.peers import trust_env

from thalovant.carriers import CarrierClosed, CarrierOpenError, CarrierRefused, HTTPSCarrier, carrier_for
from thalovant.carriers.https import REPLICA_COOKIE, admission_for
from thalovant.errors import ThalovantUnsupportedProtocolError
from thalovant.identity import ThalovantIdentity
from thalovant_server.tls import ensure_dev_tls

UA = "carrier-tests/1.0"


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    cookie: str | None
    useragent: str | None
    content_type: str | None
    body: bytes


@dataclass
class Override:
    status: int = 200
    body: Any = None  # JSON value, or bytes sent raw
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1_000_000


class FakeHub:
    """Records requests; answers polls from ``texts``/``binaries`` unless overridden."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.texts: list[str] = []
        self.binaries: list[bytes] = []
        self.overrides: dict[str, Override] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.polled = asyncio.Event()
        self.received = asyncio.Event()

    def override(self, path: str, status: int = 200, body: Any = None, **kw: Any) -> None:
        self.overrides[path] = Override(status, body, **kw)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let an overlapping request show up, if the client sent one
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body = await request.read()
        self.seen.append(
            Seen(
                request.method,
                path,
                request.query.get("authorization"),
                request.headers.get("Cookie"),
                request.headers.get("User-Agent"),
                request.headers.get("Content-Type"),
                body,
            )
        )
        if path == "/send_message":
            self.received.set()
        if path.startswith("/get_"):
            self.polled.set()
        override = self.overrides.get(path)
        if override is not None and override.times > 0:
            override.times -= 1
            if isinstance(override.body, bytes):
                return web.Response(status=override.status, body=override.body, headers=override.headers)
            return web.json_response(override.body, status=override.status, headers=override.headers)
        if path == "/connect":
            response = web.json_response({"status": "Connected"})
            response.set_cookie(REPLICA_COOKIE, "replica-7", httponly=True)
            response.set_cookie("other", "ignored")
            return response
        if path == "/disconnect":
            return web.json_response({"status": "Disconnected"})
        if path == "/send_message":
            return web.json_response({"status": "message sent"})
        if path == "/get_messages":
            out, self.texts = self.texts, []
            return web.json_response({"messages": out})
        if path == "/get_binary_messages":
            encoded = [base64.b64encode(b).decode() for b in self.binaries]
            self.binaries = []
            return web.json_response({"b64_messages": encoded})
        return web.json_response({"error": "not found"}, status=404)


@dataclass
class Served:
    hub: FakeHub
    base: str
    port: int


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return ensure_dev_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trusted(tls_files: Any) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in trust_env(Path(tls_files.ca_cert)).items():
            patch.setenv(key, value)
        for key in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            patch.delenv(key, raising=False)
        yield


@pytest.fixture
async def served(tls_files: Any, trusted: None) -> AsyncIterator[Served]:
    hub = FakeHub()
    app = web.Application()
    app.router.add_route("*", "/hub/{tail:.*}", hub.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls_files.cert), str(tls_files.key))
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Served(hub, f"https://127.0.0.1:{port}/hub", port)
    finally:
        await runner.cleanup()


_key_counter = iter(range(1_000_000))


def fresh_key() -> str:
    """A new access key per test: admissions are shared per (endpoint, access key)."""
    return f"access-key-{next(_key_counter)}-{id(object())}"


def make(served: Served, key: str | None = None, **options: Any) -> HTTPSCarrier:
    return HTTPSCarrier(served.base, access_key=key or fresh_key(), useragent=UA, **options)


async def until(event: asyncio.Event) -> None:
    event.clear()
    await event.wait()


# ---------------------------------------------------------------- the happy path


async def test_session_on_the_wire(served: Served) -> None:
    hub = served.hub
    hub.texts = ['{"msg_type":"hello"}', '{"msg_type":"shake"}']
    key = fresh_key()
    carrier = make(served, key)
    assert carrier.pin_id == served.base
    assert carrier.endpoint == served.base
    await carrier.open(4)
    try:
        assert carrier.alive
        assert await carrier.receive() == '{"msg_type":"hello"}'
        assert await carrier.receive() == '{"msg_type":"shake"}'
        await carrier.send_text('{"msg_type":"shake","payload":1}')
        assert "/get_binary_messages" not in hub.paths()  # no Noise session yet

        await carrier.send_binary(b"\x00\xffsealed")
        hub.binaries = [b"\x01\x02reply", b"second"]
        assert await carrier.receive() == b"\x01\x02reply"
        assert await carrier.receive() == b"second"
    finally:
        await carrier.close()

    connect = hub.seen[0]
    assert (connect.method, connect.path, connect.body) == ("POST", "/connect", b"")
    assert connect.content_type == "application/octet-stream"
    assert connect.cookie is None
    for seen in hub.seen:
        assert base64.b64decode(seen.authorization or "") == f"{UA}:{key}".encode()
        assert seen.useragent == UA
    for seen in hub.seen[1:]:
        assert seen.cookie == f"{REPLICA_COOKIE}=replica-7"  # only the replica cookie comes back

    sends = [s for s in hub.seen if s.path == "/send_message"]
    assert [dict(parse_qsl(s.body.decode())) for s in sends] == [
        {"message": '{"msg_type":"shake","payload":1}'},
        {"message": base64.b64encode(b"\x00\xffsealed").decode(), "binary": "1"},
    ]
    assert all(s.content_type == "application/x-www-form-urlencoded" for s in sends)
    assert hub.seen[-1].path == "/disconnect" and hub.seen[-1].method == "POST"
    assert hub.max_in_flight == 1  # one lock: requests never overlap
    assert not carrier.alive


async def test_requests_never_overlap_under_concurrent_sends(served: Served) -> None:
    carrier = make(served)
    await carrier.open(4)
    try:
        await carrier.send_binary(b"first")
        await asyncio.gather(*(carrier.send_binary(bytes([i]) * 10) for i in range(20)))
        await until(served.hub.polled)
    finally:
        await carrier.close()
    assert served.hub.max_in_flight == 1
    assert len([p for p in served.hub.paths() if p == "/send_message"]) == 21


async def test_the_replica_cookie_outlives_the_carrier(served: Served) -> None:
    key = fresh_key()
    first = make(served, key)
    await first.open(4)
    await first.close()
    second = make(served, key)
    await second.open(4)
    await second.close()
    connects = [s for s in served.hub.seen if s.path == "/connect"]
    assert [c.cookie for c in connects] == [None, f"{REPLICA_COOKIE}=replica-7"]


# ---------------------------------------------------------------- opening errors


@pytest.mark.parametrize("status", [401, 403])
async def test_connect_refusal_statuses(served: Served, status: int) -> None:
    served.hub.override("/connect", status, {"error": "Invalid authorization"})
    carrier = make(served)
    with pytest.raises(CarrierRefused) as caught:
        await carrier.open(4)
    assert caught.value.status == status
    await carrier.close()


async def test_redirects_are_failures_and_not_followed(served: Served) -> None:
    served.hub.override("/connect", 307, b"", headers={"Location": f"{served.base}/elsewhere"})
    carrier = make(served)
    with pytest.raises(CarrierOpenError, match="redirect") as caught:
        await carrier.open(4)
    assert not isinstance(caught.value, CarrierRefused)
    assert "/elsewhere" not in served.hub.paths()
    await carrier.close()


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, {"error": "Connection failed"}, "HTTP 500"),
        (429, {"error": "slow down"}, "HTTP 429"),
        (200, b"<html>proxy page</html>", "Invalid HiveMind HTTP response"),
        (200, ["not", "an", "object"], "Invalid HiveMind HTTP response"),
        (200, {"error": "Connection failed"}, "Connection failed"),
        (200, {"status": "Busy"}, "Busy"),
    ],
)
async def test_connect_bad_answers(served: Served, status: int, body: Any, message: str) -> None:
    served.hub.override("/connect", status, body)
    carrier = make(served)
    with pytest.raises(CarrierOpenError, match=message) as caught:
        await carrier.open(4)
    assert not isinstance(caught.value, CarrierRefused)
    await carrier.close()


async def test_plain_http_is_refused_before_any_io(served: Served) -> None:
    carrier = HTTPSCarrier(f"http://127.0.0.1:{served.port}/hub", access_key=fresh_key(), useragent=UA)
    with pytest.raises(CarrierOpenError, match="Refusing to use the HTTP transport over http://"):
        await carrier.open(4)
    await carrier.close()
    assert served.hub.seen == []


async def test_an_untrusted_certificate_fails_unless_verification_is_off(
    served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other_ca = ensure_dev_tls(tmp_path / "other").ca_cert
    for key, value in trust_env(other_ca).items():
        monkeypatch.setenv(key, value)
    carrier = make(served)
    with pytest.raises(CarrierOpenError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await carrier.open(4)
    await carrier.close()
    insecure = make(served, verify_tls=False)
    await insecure.open(4)
    await insecure.close()


# ---------------------------------------------------------------- errors after opening


async def test_poll_refusal_is_a_refusal_signal(served: Served) -> None:
    carrier = make(served)
    await carrier.open(4)
    served.hub.override("/get_messages", 401, {"error": "refused"})
    with pytest.raises(CarrierClosed) as caught:
        await carrier.receive()
    assert caught.value.refusal_signal and caught.value.code == 401
    assert not carrier.alive
    await carrier.close()
    assert served.hub.paths()[-1] == "/disconnect"  # /disconnect still works after a refusal


async def test_send_refusal_is_a_refusal_signal(served: Served) -> None:
    carrier = make(served)
    await carrier.open(4)
    served.hub.override("/send_message", 403, {"error": "Invalid authorization"})
    with pytest.raises(CarrierClosed) as caught:
        await carrier.send_text("{}")
    assert caught.value.refusal_signal and caught.value.code == 403
    with pytest.raises(CarrierClosed):
        await carrier.receive()
    await carrier.close()


@pytest.mark.parametrize(
    ("path", "status", "body", "message"),
    [
        ("/get_messages", 200, {"error": "Client is not connected"}, "Client is not connected"),
        ("/get_messages", 200, {"messages": "nope"}, "not a list of strings"),
        ("/get_messages", 200, {"messages": [1]}, "not a list of strings"),
        ("/get_messages", 502, b"bad gateway", "HTTP 502"),
        ("/get_messages", 302, b"", "redirect"),
        ("/get_binary_messages", 200, {"b64_messages": ["not base64!"]}, "not valid base64"),
        ("/get_binary_messages", 200, {"b64_messages": ["AAEC\nAwQ="]}, "not valid base64"),
        ("/get_binary_messages", 200, b"null", "not a JSON object"),
    ],
)
async def test_bad_poll_answers_end_the_session(
    served: Served, path: str, status: int, body: Any, message: str
) -> None:
    carrier = make(served)
    await carrier.open(4)
    await carrier.send_binary(b"hello")  # the binary polls start after the first transport message
    served.hub.override(path, status, body)
    with pytest.raises(CarrierClosed, match=message) as caught:
        await carrier.receive()
    assert not caught.value.refusal_signal
    await carrier.close()


async def test_messages_queued_before_a_failure_are_delivered_first(served: Served) -> None:
    carrier = make(served)
    served.hub.texts = ["one", "two"]
    await carrier.open(4)
    assert await carrier.receive() == "one"  # both came in one poll
    served.hub.override("/get_messages", 401, {"error": "refused"})
    assert await carrier.receive() == "two"
    with pytest.raises(CarrierClosed):
        await carrier.receive()
    await carrier.close()


# ---------------------------------------------------------------- /disconnect


async def test_already_disconnected_is_accepted(served: Served) -> None:
    key = fresh_key()
    carrier = make(served, key)
    await carrier.open(4)
    served.hub.override("/disconnect", 200, {"error": "Already Disconnected"})
    await carrier.close()
    assert not admission_for(served.base, key).held


async def test_failed_cleanup_blocks_the_next_connect_until_disconnect_succeeds(served: Served) -> None:
    key = fresh_key()
    first = make(served, key)
    await first.open(4)
    served.hub.override("/disconnect", 500, {"error": "Disconnection failed"}, times=2)
    await first.close()  # never raises
    assert admission_for(served.base, key).held

    second = make(served, key)
    with pytest.raises(CarrierOpenError, match="Previous connection cleanup failed"):
        await second.open(4)
    await second.close()
    assert served.hub.paths().count("/connect") == 1

    third = make(served, key)  # /disconnect works again: it goes first, then /connect
    await third.open(4)
    await third.close()
    assert served.hub.paths()[-3:] == ["/disconnect", "/connect", "/disconnect"]


# ---------------------------------------------------------------- sockets and factories


async def test_the_socket_has_tcp_nodelay(served: Served) -> None:
    carrier = make(served)
    await carrier.open(4)
    try:
        client = carrier._client
        assert client is not None
        pool = client._transport._pool  # type: ignore[attr-defined]  # httpcore's pool
        streams = [conn._connection._network_stream for conn in pool.connections if conn._connection]
        sockets = [stream.get_extra_info("socket") for stream in streams]
        assert sockets, "no pooled connection to inspect"
        for sock in sockets:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        await carrier.close()


def test_factory_uses_endpoint_base_and_shares_the_pin() -> None:
    identity = ThalovantIdentity.from_mapping(
        {
            "access_key": "k",
            "password": "p",
            "site_id": "s",
            "default_master": "https://hub.example.com",
            "default_port": 443,
            "default_path": "/hubs/h1",
        }
    )
    carrier = carrier_for("https", identity, useragent=UA)
    assert isinstance(carrier, HTTPSCarrier)
    assert carrier.endpoint == "https://hub.example.com:443/hubs/h1"
    assert carrier.pin_id == "https://hub.example.com:443/hubs/h1"
    assert carrier_for("http", identity, useragent=UA).pin_id == carrier.pin_id
    with pytest.raises(ThalovantUnsupportedProtocolError):
        carrier_for("gopher", identity, useragent=UA)


def test_invalid_poll_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        HTTPSCarrier("https://h", access_key="k", useragent=UA, poll_interval=0)
