"""The control-plane client (controlplane.md 1-5, 12, 14).

Wire behaviour is checked against a small real HTTP server on 127.0.0.1 that records what it
receives and answers what each test scripts; the end-to-end tests at the bottom run against a
real ``thalovant-server serve --demo``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from thalovant import (
    AsyncThalovantControlPlane,
    ThalovantAPIError,
    ThalovantAPIUnreachableError,
    ThalovantAuthError,
    ThalovantControlPlane,
    ThalovantIdentity,
    ThalovantIdentityError,
    ThalovantUnsupportedConnectionTypeError,
)
from thalovant.control import MISSING_TOKEN_MESSAGE, clean_site_id, normalize_api_url, resolve_api_url

# ---------------------------------------------------------------- a scripted HTTP server


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


Answer = tuple[int, dict[str, str], str]


@dataclass
class Stub:
    url: str
    routes: dict[tuple[str, str], Callable[[Seen], Answer] | list[Answer] | Answer] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        text = body if isinstance(body, str) else ("" if body is None else json.dumps(body))
        self.routes[(method, path)] = (status, headers or {"content-type": "application/json"}, text)

    def answer(self, seen: Seen) -> Answer:
        route = self.routes.get((seen.method, seen.path.split("?", 1)[0]))
        if route is None:
            return 404, {"content-type": "application/json"}, json.dumps({"detail": "Not Found"})
        if callable(route):
            return route(seen)
        if isinstance(route, list):
            return route.pop(0)
        return route


@contextlib.contextmanager
def running_stub() -> Iterator[Stub]:
    """A scripted HTTP server on 127.0.0.1 for the duration of the block."""
    holder: dict[str, Stub] = {}

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                json.loads(raw) if raw else None,
            )
            current = holder["stub"]
            current.seen.append(seen)
            status, headers, text = current.answer(seen)
            data = text.encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["stub"] = Stub(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield holder["stub"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    with running_stub() as running:
        yield running


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("THALOVANT_API_URL", "THALOVANT_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


HUB = {
    "id": "hub-1",
    "slug": "joke-garden",
    "domain": "hub.example.test",
    "spec": {"version": "1", "protocols": {"wss": True, "http": True, "mqtt": True}},
    "data_plane_endpoints": {
        "wss": "wss://hub.example.test/hubs/hub-1",
        "https": "https://hub.example.test/hubs/hub-1",
        "mqtt": "mqtts://hub.example.test:8883",
    },
    "etag": "etag-h1",
}


def client_answer(seen: Seen, *, initial: bool = True, echo_type: bool = True) -> Answer:
    spec = seen.body["spec"]
    body: dict[str, Any] = {
        "id": "client-1",
        "hub_id": seen.body["hub_id"],
        "name": seen.body["name"],
        "etag": "etag-c1",
        "spec": {"version": spec["version"], "siteId": spec["siteId"], "apiKeyRef": {"name": "vault", "key": "k"}},
        "operation": {"id": "op-1", "kind": "client.sync", "status": "requested"},
    }
    if echo_type and "connection_type" in spec:
        body["spec"]["connection_type"] = spec["connection_type"]
    if initial:
        body["initial_identify"] = {
            "access_key": spec["apiKey"],
            "password": spec["password"],
            "site_id": spec["siteId"],
            "default_master": "https://hub.example.test",
            "default_port": 443,
            "mqtt": {
                "endpoint": "mqtts://hub.example.test:8883",
                "username": "mqtt-user",
                "password": "mqtt-secret",
                "topic_prefix": f"hivemind/hub-1/{spec['apiKey']}",
            },
        }
    return 201, {"content-type": "application/json"}, json.dumps(body)


# ---------------------------------------------------------------- configuration


def test_url_normalisation_and_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert normalize_api_url("https://api.example.com/v1/") == "https://api.example.com/"
    assert normalize_api_url(" https://dash.example.com/api/v1 ") == "https://dash.example.com/api/"
    assert normalize_api_url("https://dash.example.com/api") == "https://dash.example.com/api/"
    assert normalize_api_url("") == "https://localhost:8443/"
    assert resolve_api_url(None) == "https://localhost:8443/"
    config = tmp_path / "xdg" / "thalovant"
    config.mkdir(parents=True)
    (config / "config.yaml").write_text("api_url: https://from-config.example.com/v1\n", encoding="utf-8")
    assert resolve_api_url(None) == "https://from-config.example.com/"
    monkeypatch.setenv("THALOVANT_API_URL", "https://from-env.example.com")
    assert resolve_api_url(None) == "https://from-env.example.com/"
    assert resolve_api_url("https://argument.example.com") == "https://argument.example.com/"
    assert ThalovantControlPlane().api_url == "https://from-env.example.com/"


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THALOVANT_API_TOKEN", "env-token")
    api = ThalovantControlPlane("https://api.example.com")
    assert api.access_token == "env-token"
    assert "env-token" not in repr(api)


def test_clean_site_id() -> None:
    assert clean_site_id("  python demo_client ") == "python-demo-client"
    assert clean_site_id("Kitchen\t Speaker") == "Kitchen-Speaker"
    generated = clean_site_id("   ")
    assert generated.startswith("thalovant-client-") and len(generated) == len("thalovant-client-") + 8


def test_credentials_in_url_refused() -> None:
    with pytest.raises(ThalovantAPIError, match="credentials"):
        ThalovantControlPlane("https://user:pw@api.example.com")
    with pytest.raises(ThalovantAPIError):
        ThalovantControlPlane("ftp://api.example.com")


# ---------------------------------------------------------------- the missing token, before any I/O


def test_missing_token_before_any_request(stub: Stub) -> None:
    idle = f"http://127.0.0.1:{unused_port()}"
    with ThalovantControlPlane(idle) as api:
        for call in (
            lambda: api.list_hubs(),
            lambda: api.get_hub("hub-1"),
            lambda: api.create_client_identity("hub-1", name="x"),
            lambda: api.get_profile(),
            lambda: api.list_clients(),
        ):
            with pytest.raises(ThalovantAPIError) as info:
                call()
            assert not isinstance(info.value, ThalovantAPIUnreachableError)
            assert str(info.value) == MISSING_TOKEN_MESSAGE
            assert info.value.status_code is None
        # the public listing needs no token, so it does try, and the port is closed
        with pytest.raises(ThalovantAPIUnreachableError, match="Could not reach the Thalovant API"):
            api.list_public_hubs()
    with (
        ThalovantControlPlane(stub.url) as api,
        pytest.raises(ThalovantAPIError, match="Missing Thalovant API access token"),
    ):
        api.list_hubs()
    assert stub.seen == []


async def test_async_missing_token_and_unreachable() -> None:
    async with AsyncThalovantControlPlane(f"http://127.0.0.1:{unused_port()}") as api:
        with pytest.raises(ThalovantAPIError, match="Missing Thalovant API access token"):
            await api.list_hubs()
        api.access_token = "tok"
        with pytest.raises(ThalovantAPIUnreachableError):
            await api.list_hubs()


def test_plain_http_to_remote_host_refused_before_sending() -> None:
    api = ThalovantControlPlane("http://api.example.invalid", access_token="secret-token")
    with pytest.raises(ThalovantAPIError, match="plain HTTP"):
        api.list_hubs()
    with pytest.raises(ThalovantAPIError, match="plain HTTP"):
        api.login("a@example.com", "pw")
    api.close()


# ---------------------------------------------------------------- requests on the wire


def test_public_listing_is_anonymous(stub: Stub) -> None:
    stub.on("GET", "/v1/public/hubs", 200, {"data": [HUB], "meta": {"count": 1, "next": None}, "links": {}})
    stub.on("GET", "/v1/public/hubs/joke-garden", 200, HUB)
    with ThalovantControlPlane(stub.url + "/v1", access_token="tok") as api:
        page = api.list_public_hubs()
        assert page["data"][0]["id"] == "hub-1"
        assert api.get_public_hub("joke-garden")["slug"] == "joke-garden"
    first = stub.seen[0]
    assert first.path == "/v1/public/hubs?limit=24"
    assert "authorization" not in first.headers
    assert first.headers["accept"] == "application/json"
    assert first.headers["user-agent"].startswith("ThalovantSelfHostedSDK/")


def test_login_then_bearer_and_no_cookies(stub: Stub) -> None:
    stub.on(
        "POST",
        "/v1/auth/token",
        200,
        {"access_token": "session-token", "expires_in": 3600},
        {"content-type": "application/json", "set-cookie": "sid=abc; Path=/"},
    )
    stub.on("GET", "/v1/hubs", 200, {"data": [], "meta": {"count": 0, "next": None}, "links": {}})
    stub.on("GET", "/v1/users/profile", 200, {"data": {"id": "u1", "email": "a@example.com"}})
    with ThalovantControlPlane(stub.url) as api:
        answer = api.login("a@example.com", "pw", scope="hubs:read")
        assert answer["access_token"] == "session-token"
        assert api.access_token == "session-token"
        assert api.token_id is None
        api.list_hubs(owner_id="me", cursor="c1")
        assert api.get_profile() == {"id": "u1", "email": "a@example.com"}
    login, hubs, _ = stub.seen
    assert login.body == {"email": "a@example.com", "password": "pw", "scope": "hubs:read"}
    assert "authorization" not in login.headers
    assert hubs.headers["authorization"] == "Bearer session-token"
    assert "cookie" not in hubs.headers
    assert hubs.path.startswith("/v1/hubs?") and "owner_id=me" in hubs.path and "limit=100" in hubs.path


def test_login_without_token_in_answer(stub: Stub) -> None:
    stub.on("POST", "/v1/auth/token", 200, {"token_type": "bearer"})
    with ThalovantControlPlane(stub.url) as api, pytest.raises(ThalovantAPIError, match="access_token"):
        api.login("a@example.com", "pw")


def test_errors_over_the_wire(stub: Stub) -> None:
    stub.on("GET", "/v1/hubs/missing", 404, {"detail": "Hub not found"})
    stub.on("GET", "/v1/hubs/locked", 401, {"detail": "Could not validate credentials"})
    stub.on("GET", "/v1/hubs/array", 200, "[1, 2]")
    stub.on("GET", "/v1/hubs/html", 200, "<html></html>", {"content-type": "text/html"})
    stub.on("GET", "/v1/hubs/moved", 302, "", {"location": "/v1/hubs/target"})
    stub.on("GET", "/v1/hubs/target", 200, HUB)
    with ThalovantControlPlane(stub.url, access_token="tok") as api:
        with pytest.raises(ThalovantAPIError) as info:
            api.get_hub("missing")
        assert info.value.status_code == 404 and info.value.detail == "Hub not found"
        with pytest.raises(ThalovantAuthError):
            api.get_hub("locked")
        with pytest.raises(ThalovantAPIError, match="unexpected response shape"):
            api.get_hub("array")
        with pytest.raises(ThalovantAPIError, match="non-JSON"):
            api.get_hub("html")
        with pytest.raises(ThalovantAPIError, match="redirects are disabled") as moved:
            api.get_hub("moved")
        assert moved.value.status_code == 302
    assert [seen.path for seen in stub.seen if seen.path.endswith("target")] == []


def test_hub_writes_use_if_match_and_idempotency(stub: Stub) -> None:
    stub.on("POST", "/v1/hubs", 201, HUB)
    stub.on("GET", "/v1/hubs/hub-1", 200, HUB)
    stub.on("PATCH", "/v1/hubs/hub-1", 200, HUB)
    stub.on("DELETE", "/v1/hubs/hub-1", 204)
    with ThalovantControlPlane(stub.url, access_token="tok") as api:
        api.create_hub({"name": "n", "spec": {"version": "1"}, "ownerId": "o"}, idempotency_key="key-1")
        api.update_hub("hub-1", {"active": False}, etag="etag-9")
        api.delete_hub("hub-1")
    create, patch, get, delete = stub.seen
    assert create.headers["idempotency-key"] == "key-1"
    assert create.body == {"name": "n", "spec": {"version": "1"}, "owner_id": "o"}
    assert patch.headers["if-match"] == "etag-9"
    assert (get.method, delete.method, delete.headers["if-match"]) == ("GET", "DELETE", "etag-h1")


def test_delete_client_retries_once_and_tolerates_404(stub: Stub) -> None:
    stub.routes[("DELETE", "/v1/clients/c1")] = [
        (412, {"content-type": "application/json"}, json.dumps({"detail": "ETag mismatch"})),
        (204, {}, ""),
    ]
    stub.on("GET", "/v1/clients/c1", 200, {"id": "c1", "etag": "etag-3"})
    stub.on("DELETE", "/v1/clients/gone", 404, {"detail": "Client not found"})
    with ThalovantControlPlane(stub.url, access_token="tok") as api:
        api.delete_client("c1", etag="etag-1")
        api.delete_client("gone", etag="e")
    assert [(s.method, s.headers.get("if-match")) for s in stub.seen[:3]] == [
        ("DELETE", "etag-1"),
        ("GET", None),
        ("DELETE", "etag-3"),
    ]


# ---------------------------------------------------------------- create_client_identity


def test_create_client_identity_with_initial_identify(stub: Stub, tmp_path: Path) -> None:
    stub.on("GET", "/v1/hubs/hub-1", 200, HUB)
    stub.routes[("POST", "/v1/clients")] = client_answer
    with ThalovantControlPlane(stub.url, access_token="tok") as api:
        result = api.create_client_identity(
            "hub-1", name="python demo_client", spec={"crypto_key": "old", "label": "x"}, idempotency_key="idem-1"
        )
    get, post = stub.seen
    assert get.path == "/v1/hubs/hub-1"
    assert post.headers["idempotency-key"] == "idem-1"
    sent = post.body
    assert sent["hub_id"] == "hub-1" and sent["name"] == "python demo_client" and sent["active"] is True
    assert sent["spec"]["siteId"] == "python-demo-client"
    assert sent["spec"]["version"] == "1" and sent["spec"]["label"] == "x" and "crypto_key" not in sent["spec"]
    assert len(sent["spec"]["apiKey"]) == 43 and len(sent["spec"]["password"]) == 43
    identity = result.identity
    assert identity.access_key == sent["spec"]["apiKey"]
    assert identity.site_id == "python-demo-client"
    assert identity.endpoint_for("wss") == "wss://hub.example.test/hubs/hub-1"
    assert identity.endpoint_for("https") == "https://hub.example.test:443/hubs/hub-1"
    assert identity.enabled_protocols() == ["wss", "https", "mqtt"]
    assert identity.mqtt is not None and identity.mqtt["port"] == 8883
    assert result.selected_protocol == "wss"
    assert result.client_id == "client-1"
    assert result.operation is not None and result.operation["id"] == "op-1"
    public = json.dumps(result.as_dict())
    for secret in (sent["spec"]["apiKey"], sent["spec"]["password"], "mqtt-secret", "mqtt-user"):
        assert secret not in public
        assert secret not in repr(result)
    assert "apiKeyRef" in public
    full = result.as_dict(include_secrets=True)
    assert full["identity"]["password"] == sent["spec"]["password"]
    path = result.save(tmp_path / "identity.json")
    assert ThalovantIdentity.from_file(path).as_dict(include_secrets=True) == full["identity"]


def test_create_client_identity_without_initial_identify(stub: Stub) -> None:
    stub.routes[("POST", "/v1/clients")] = lambda seen: client_answer(seen, initial=False)
    hub = {"id": "hub-2", "domain": "jokes.example.test", "spec": {"protocols": {"wss": True, "http": True}}}
    with ThalovantControlPlane(stub.url, access_token="tok") as api:
        result = api.create_client_identity(hub, name="kiosk", preferred_protocols=("https", "wss"))
    assert [seen.method for seen in stub.seen] == ["POST"]  # a hub mapping needs no GET
    identity = result.identity
    assert identity.default_master == "https://jokes.example.test"
    assert identity.default_port == 443
    assert identity.data_plane_endpoints == {"https": "https://jokes.example.test", "wss": "wss://jokes.example.test"}
    assert identity.endpoint_for("https") == "https://jokes.example.test:443"
    assert result.selected_protocol == "https"
    assert identity.mqtt is None


def test_create_client_identity_bad_answers(stub: Stub) -> None:
    stub.routes[("POST", "/v1/clients")] = lambda seen: (
        201,
        {"content-type": "application/json"},
        json.dumps({"id": "c", "initial_identify": {"password": "p"}}),
    )
    with ThalovantControlPlane(stub.url, access_token="tok") as api:
        with pytest.raises(ThalovantIdentityError):
            api.create_client_identity(HUB, name="x")
        with pytest.raises(ThalovantAPIError, match="missing id"):
            api.create_client_identity({"slug": "no-id"}, name="x")


def test_connection_type_must_be_echoed(stub: Stub) -> None:
    stub.routes[("POST", "/v1/clients")] = lambda seen: client_answer(seen, echo_type=False)
    stub.on("DELETE", "/v1/clients/client-1", 204)
    with (
        ThalovantControlPlane(stub.url, access_token="tok") as api,
        pytest.raises(ThalovantUnsupportedConnectionTypeError),
    ):
        api.create_client_identity(HUB, name="x", connection_type="web_chat")
    post, delete = stub.seen
    assert post.body["spec"]["connection_type"] == "web_chat"
    assert (delete.method, delete.headers["if-match"]) == ("DELETE", "etag-c1")


def test_connection_type_refused_with_422(stub: Stub) -> None:
    detail = "Schema validation failed: 'toaster' is not one of [...] at spec.connection_type"
    stub.on("POST", "/v1/clients", 422, {"detail": detail, "code": "schema_validation_failed"})
    with (
        ThalovantControlPlane(stub.url, access_token="tok") as api,
        pytest.raises(ThalovantUnsupportedConnectionTypeError) as info,
    ):
        api.create_client_identity(HUB, name="x", connection_type="toaster")
    assert info.value.status_code == 422


def test_revoke_api_token(stub: Stub) -> None:
    stub.on("POST", "/v1/auth/token", 200, {"access_token": "t", "token_id": "tid-1"})
    stub.on("DELETE", "/v1/auth/api-tokens/tid-1", 204)
    with ThalovantControlPlane(stub.url) as api:
        with pytest.raises(ThalovantAPIError, match="No API token id"):
            api.revoke_api_token()
        api.login("a@example.com", "pw")
        api.revoke_api_token()
        assert api.access_token is None
        with pytest.raises(ThalovantAPIError, match="Missing Thalovant API access token"):
            api.list_hubs()


# ---------------------------------------------------------------- against the real server


@pytest.fixture
def real_api(server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThalovantControlPlane]:
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(server.ca_file))
    with ThalovantControlPlane(server.api_url) as api:
        yield api


def test_server_public_hubs(real_api: ThalovantControlPlane) -> None:
    page = real_api.list_public_hubs()
    slugs = [hub.get("slug") for hub in page["data"]]
    assert "joke-garden" in slugs
    hub = real_api.get_public_hub("joke-garden")
    assert hub["slug"] == "joke-garden"
    assert real_api.get_public_hub(hub["public_ref"])["id"] == hub["id"]


def test_server_login_and_identity(real_api: ThalovantControlPlane, server: Any, tmp_path: Path) -> None:
    with pytest.raises(ThalovantAPIError, match="Missing Thalovant API access token"):
        real_api.list_hubs()
    with pytest.raises(ThalovantAuthError):
        real_api.login(server.demo_email, "wrong-password")
    real_api.login(server.demo_email, server.demo_password)
    hubs = real_api.list_hubs()["data"]
    hub = next(h for h in hubs if h.get("slug") == "joke-garden")
    assert real_api.get_hub(hub["id"])["etag"]
    result = real_api.create_client_identity(hub["id"], name="sdk test client")
    assert result.identity.site_id == "sdk-test-client"
    assert result.selected_protocol == "wss"
    assert result.identity.endpoint_for("wss")
    path = result.save(tmp_path / "identity.json")
    assert ThalovantIdentity.from_file(path).access_key == result.identity.access_key
    assert result.client_id is not None
    assert real_api.get_client(result.client_id)["id"] == result.client_id
    listed = real_api.list_clients(hub_id=hub["id"])["data"]
    assert result.client_id in [c["id"] for c in listed]
    real_api.delete_client(result.client_id)
    with pytest.raises(ThalovantAPIError) as info:
        real_api.get_client(result.client_id)
    assert info.value.status_code == 404


async def test_server_async_public_hubs(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(server.ca_file))
    async with AsyncThalovantControlPlane(server.api_url) as api:
        page = await api.list_public_hubs(limit=5)
        assert page["data"]
        await api.login(server.demo_email, server.demo_password)
        profile = await api.get_profile()
        assert profile["email"] == server.demo_email
