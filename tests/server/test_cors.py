"""Web pages of other origins reach the API and a hub's HTTPS endpoints (the Node.js SDK's browser build)."""

from __future__ import annotations

import httpx
import pytest
from tests.fixtures.server import RunningServer

ORIGIN = "http://127.0.0.1:5173"


@pytest.fixture
def http(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.api_url, verify=str(server.ca_file), timeout=30)


def demo_hub_id(http: httpx.Client) -> str:
    hub_id: str = http.get("/v1/public/hubs/joke-garden").json()["id"]
    return hub_id


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/v1/hubs", "authorization"),
        ("POST", "/v1/clients", "authorization, content-type, idempotency-key"),
        ("PATCH", "/v1/hubs/some-hub", "authorization, content-type, if-match"),
        ("POST", "/hubs/{hub}/connect", "authorization, content-type"),
        ("GET", "/hubs/{hub}/get_messages", "authorization"),
    ],
)
def test_preflights_are_answered_without_credentials(http: httpx.Client, method: str, path: str, headers: str) -> None:
    answer = http.options(
        path.format(hub=demo_hub_id(http)),
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers},
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert method in answer.headers["access-control-allow-methods"]
    assert headers.lower() in answer.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in answer.headers


def test_answers_to_another_origin_are_readable(http: httpx.Client) -> None:
    answer = http.get("/v1/public/hubs/joke-garden", headers={"Origin": ORIGIN})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "etag" in answer.headers["access-control-expose-headers"].lower()
    refused = http.get(f"/hubs/{demo_hub_id(http)}/get_messages", headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "*"


def test_same_origin_requests_carry_no_cors_headers(http: httpx.Client) -> None:
    answer = http.get("/v1/public/hubs/joke-garden")
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
