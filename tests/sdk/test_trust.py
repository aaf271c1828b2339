"""TLS trust is one rule for the control plane and every carrier, and an unreachable API says
which URL and why."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.identities import new_identity, trusting
from tests.fixtures.server import RunningServer

from thalovant import ThalovantControlPlane
from thalovant.client import AsyncThalovantClient
from thalovant.errors import ThalovantAPIError, ThalovantAPIUnreachableError, ThalovantConnectionError
from thalovant.trust import TRUST_VARIABLES


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def untrusted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No trust variable: the system's default store, which does not hold the dev CA."""
    for variable in TRUST_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    yield


def test_a_refused_connection_names_the_url_and_the_cause(untrusted: None) -> None:
    url = f"https://127.0.0.1:{unused_port()}"
    with ThalovantControlPlane(url) as api, pytest.raises(ThalovantAPIUnreachableError) as info:
        api.list_public_hubs()
    message = str(info.value)
    assert message.startswith(f"Could not reach the Thalovant API at {url}/")
    assert "connection refused" in message and "is the server running?" in message


def test_an_untrusted_certificate_names_the_trust_store_and_the_fix(server: RunningServer, untrusted: None) -> None:
    with ThalovantControlPlane(server.api_url) as api, pytest.raises(ThalovantAPIUnreachableError) as info:
        api.list_public_hubs()
    message = str(info.value)
    assert f"at {server.api_url}/" in message
    assert "TLS certificate does not verify against the system's default trust store" in message
    assert "SSL_CERT_FILE" in message


async def test_the_first_trust_variable_set_wins_everywhere(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle that cannot be loaded is an error naming its variable, for the control plane
    and for the carriers alike (the WSS carrier used to skip it silently)."""
    with trusting(server):
        identity = new_identity(server, "trust-rule")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
        with pytest.raises(ThalovantAPIError, match="REQUESTS_CA_BUNDLE"):
            ThalovantControlPlane(server.api_url)
        client = AsyncThalovantClient(identity, protocol="wss", noise_state_dir=tmp_path / "n", auto_reconnect=False)
        with pytest.raises(ThalovantConnectionError, match="REQUESTS_CA_BUNDLE"):
            await client.connect()
        await client.close()
