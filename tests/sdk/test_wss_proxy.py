"""Which proxy a WSS connection dials through: websockets' rule over the environment, looked up
once per endpoint and set of proxy variables, and seen again as soon as a variable changes."""

from __future__ import annotations

import os

import pytest

from thalovant.carriers.wss import proxy_for

HUB = "wss://hub.example.test:8443/hubs/abc"


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


def test_no_proxy_variable_means_a_direct_connection() -> None:
    assert proxy_for(HUB) is None


def test_a_changed_proxy_variable_is_seen_by_the_next_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    assert proxy_for(HUB) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    assert proxy_for(HUB) == "http://proxy.example.test:3128"
    monkeypatch.setenv("wss_proxy", "http://ws-proxy.example.test:8080")  # the most specific wins
    assert proxy_for(HUB) == "http://ws-proxy.example.test:8080"
    monkeypatch.setenv("no_proxy", ".example.test")
    assert proxy_for(HUB) is None
    monkeypatch.delenv("no_proxy")
    monkeypatch.delenv("wss_proxy")
    assert proxy_for(HUB) == "http://proxy.example.test:3128"
    monkeypatch.delenv("HTTPS_PROXY")
    assert proxy_for(HUB) is None


def test_plain_ws_endpoints_also_use_an_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://proxy.example.test:3128")
    assert proxy_for("ws://hub.example.test:8080/hubs/abc") == "http://proxy.example.test:3128"
    assert proxy_for(HUB) is None  # wss: an http_proxy is not for TLS endpoints
