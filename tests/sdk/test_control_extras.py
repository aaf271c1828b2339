"""Our SDK's sign-in, memory, analytics and hub-extras calls.

The client-side rules no server of ours would ever trip (a verification URL with credentials, a
``slow_down`` without an interval, a ``client_verified`` without an app) are checked against the
scripted HTTP server of test_control.py; the rest runs against a real ``serve --demo``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from tests.fixtures.server import RunningServer
from tests.sdk.test_control import Stub, running_stub

from thalovant import (
    AsyncThalovantControlPlane,
    DeviceAuthorization,
    DeviceLoginRequest,
    ThalovantAPIError,
    ThalovantControlPlane,
    ThalovantDeviceLoginExpired,
    ThalovantDeviceLoginPending,
    ThalovantUnsupportedProtocolError,
    begin_native_sign_in,
    challenge_for,
    new_verifier,
)


@pytest.fixture
def stub() -> Iterator[Stub]:
    with running_stub() as running:
        yield running


GRANT = {
    "device_code": "dev-secret",
    "user_code": "WDJB-MJHT",
    "verification_uri": "https://example.test/activate",
    "verification_uri_complete": "https://example.test/activate?user_code=WDJB-MJHT",
    "interval": 2,
    "expires_in": 600,
}


def test_device_authorization_refuses_unsafe_browser_urls() -> None:
    assert DeviceAuthorization.from_dict(GRANT).interval == 2.0
    assert "dev-secret" not in repr(DeviceAuthorization.from_dict(GRANT))
    defaults = DeviceAuthorization.from_dict({k: GRANT[k] for k in ("device_code", "user_code", "verification_uri")})
    assert (defaults.interval, defaults.expires_in, defaults.verification_uri_complete) == (5.0, 900, None)
    for url in (
        "ftp://example.test/activate",
        "https://user:pw@example.test/activate",
        "https://example.test/acti vate",
        "https:///activate",
        "javascript:alert(1)",
    ):
        with pytest.raises(ThalovantAPIError, match="without embedded credentials"):
            DeviceAuthorization.from_dict({**GRANT, "verification_uri": url})
    with pytest.raises(ThalovantAPIError, match="did not include device_code"):
        DeviceAuthorization.from_dict({**GRANT, "device_code": ""})


def test_device_login_request_trusts_verification_only_with_an_app() -> None:
    seen = DeviceLoginRequest.from_dict({"scopes": ["hubs:read"], "client_name": "x", "client_verified": True})
    assert seen.client_verified is False and seen.expires_at is None
    app = DeviceLoginRequest.from_dict(
        {
            "scopes": "hubs:read clients:write",
            "client_id": "app",
            "client_verified": True,
            "expires_at": "2030-01-01T00:00:00Z",
        }
    )
    assert app.client_verified is True and app.scopes == ("hubs:read", "clients:write")
    assert app.expires_at is not None and app.expires_at.year == 2030


def test_polling_errors_and_what_is_sent(stub: Stub) -> None:
    api = ThalovantControlPlane(stub.url)
    stub.on("POST", "/v1/auth/device/authorize", 200, GRANT)
    grant = api.begin_device_login(scopes=[], client_name="kiosk", client_id="")
    assert stub.seen[-1].body == {"client_name": "kiosk", "client_id": ""}  # an empty scope list is left out
    assert "authorization" not in stub.seen[-1].headers
    stub.routes[("POST", "/v1/auth/device/token")] = [
        (400, {"content-type": "application/json"}, '{"error": "slow_down"}'),
        (400, {"content-type": "application/json"}, '{"error": "authorization_pending", "interval": 9}'),
        (400, {"content-type": "application/json"}, '{"error": "expired_token"}'),
        (400, {"content-type": "application/json"}, '{"error": "invalid_grant", "detail": "Device code not found."}'),
    ]
    with pytest.raises(ThalovantDeviceLoginPending) as slow:
        api.poll_device_login(grant)
    assert slow.value.interval == 7.0  # 2 + 5: the RFC's step when the server names none
    with pytest.raises(ThalovantDeviceLoginPending) as pending:
        api.poll_device_login(grant)
    assert pending.value.interval == 9.0
    with pytest.raises(ThalovantDeviceLoginExpired) as expired:
        api.poll_device_login(grant)
    assert "dev-secret" not in str(expired.value)
    with pytest.raises(ThalovantAPIError) as other:
        api.poll_device_login("dev-secret")
    assert type(other.value) is ThalovantAPIError and other.value.detail == "Device code not found."
    assert stub.seen[-1].body == {"device_code": "dev-secret"}
    assert api.access_token is None
    api.close()


def test_native_sign_in_url_and_code() -> None:
    verifier = new_verifier()
    assert len(verifier) == 86 and challenge_for(verifier) != verifier
    attempt = begin_native_sign_in(
        client_id="thalovant-cli", redirect_uri="http://127.0.0.1:9/cb", dashboard_url="https://127.0.0.1:8443/v1"
    )
    assert attempt.authorization_url.startswith("https://127.0.0.1:8443/authorize?client_id=thalovant-cli&")
    assert f"code_challenge={challenge_for(attempt.verifier)}" in attempt.authorization_url
    assert "code_challenge_method=S256" in attempt.authorization_url
    assert attempt.verifier not in repr(attempt)  # the state is in the URL anyway; the verifier is secret
    back = f"http://127.0.0.1:9/cb?code=abc&state={attempt.state}"
    assert attempt.code_from(back) == "abc"
    assert attempt.code_from("http://127.0.0.1:9/cb?code=abc&state=other") is None
    assert attempt.code_from(f"http://127.0.0.1:9/cb?error=access_denied&code=abc&state={attempt.state}") is None
    for dashboard in ("http://dash.example.test", "https://dash.example.test/?x=1", "https://u:p@dash.example.test"):
        with pytest.raises(ValueError):
            begin_native_sign_in(client_id="c", redirect_uri="http://127.0.0.1:9/cb", dashboard_url=dashboard)


def test_memory_and_analytics_queries_on_the_wire(stub: Stub) -> None:
    api = ThalovantControlPlane(stub.url, access_token="tok")
    stub.on("GET", "/v1/memory", 200, {"data": [], "meta": {}, "links": {}})
    api.list_memory_items(scope="client", query="tea", include_deleted=True, include_expired=False, limit=5, offset=0)
    assert stub.seen[-1].path == "/v1/memory?scope=client&q=tea&include_deleted=true&limit=5&offset=0"
    stub.on("POST", "/v1/memory", 201, {"id": "m1"})
    api.create_memory_item(
        {"scope": "workspace", "content": "x", "consentScope": "c", "expiresAt": "2030-01-01T00:00:00Z"}
    )
    assert stub.seen[-1].body == {
        "scope": "workspace",
        "content": "x",
        "consent_scope": "c",
        "expires_at": "2030-01-01T00:00:00Z",
    }
    stub.on("GET", "/v1/analytics/overview", 200, {"meta": {}, "totals": {}})
    api.get_analytics_overview(range="30d", bucket="1d", weekday=0, hour=23)
    assert stub.seen[-1].path == "/v1/analytics/overview?range=30d&bucket=1d&weekday=0&hour=23"
    stub.on("POST", "/v1/hubs/h1/release", 200, {"id": "h1"})
    api.release_hub("h1", channel="beta", images={"listener": "img:1"})
    assert stub.seen[-1].body == {"channel": "beta", "images": {"listener": "img:1"}}
    api.close()


@pytest.fixture
def account(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, str(server.ca_file))
    return {"url": server.api_url, "email": server.demo_email, "password": server.demo_password}


async def test_async_workspace_calls_against_serve(account: dict[str, Any]) -> None:
    async with AsyncThalovantControlPlane(account["url"]) as api:
        await api.login(account["email"], account["password"])
        hub = await api.create_hub(
            {
                "name": f"async-{uuid.uuid4().hex[:8]}",
                "spec": {"version": "1", "skills": ["memory", "clock"], "protocols": {"http": False, "mqtt": True}},
            }
        )
        caps = await api.get_hub_runtime_capabilities(hub["id"])
        assert caps["source"] == "ovos-runtime" and {s["id"] for s in caps["skills"]} == {"memory", "clock"}
        item = await api.create_memory_item(
            {
                "scope": "hub",
                "hubId": hub["id"],
                "kind": "note",
                "content": "Closed on Sundays",
                "expires_at": "2999-01-01T00:00:00Z",
            }
        )
        assert item["hub_id"] == hub["id"]
        cleared = await api.update_memory_item(item["id"], {"clearExpiresAt": True})
        assert cleared["expires_at"] is None
        assert (await api.get_memory_item(item["id"]))["content"] == "Closed on Sundays"
        listed = await api.list_memory_items(hub_id=hub["id"])
        assert [entry["id"] for entry in listed["data"]] == [item["id"]]
        assert (await api.get_memory_summary())["by_scope"].get("hub", 0) >= 1
        await api.delete_memory_item(item["id"])
        with pytest.raises(ThalovantAPIError) as gone:
            await api.get_memory_item(item["id"])
        assert (gone.value.status_code, gone.value.detail) == (404, "Memory item not found")
        quiet = await api.get_analytics_overview(range="24h", hub_id=hub["id"])
        assert quiet["totals"]["requests"] == 0 and len(quiet["buckets"]) == 25
        released = await api.release_hub(hub["id"], mode="pinned", version="1.2.3")
        assert released["spec"]["image"] == "ghcr.io/thalovant/hivemind-listener:1.2.3"
        with pytest.raises(ThalovantAPIError) as own:
            await api.set_hub_rating(hub["id"], 3)
        assert (own.value.status_code, own.value.code) == (403, "own_hub")
        result = await api.create_client_identity(hub["id"], name="async-client")
        assert api.require_runtime_protocol(result).protocol == "wss"
        assert api.require_runtime_protocol(result, protocol="mqtt").protocol == "mqtt"
        with pytest.raises(ThalovantUnsupportedProtocolError):
            api.require_runtime_protocol(result, protocol="https")
        await api.delete_client(result.client_id or "")
