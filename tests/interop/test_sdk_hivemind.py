"""Our SDK against an independent hub: hivemind-core 5.3.10a1 (``peers.hm5``).

The stack is the session fixture of ``tests/interop/conftest.py`` (on free loopback ports).
The hub's ws carrier is plain ``ws://``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from thalovant import ThalovantClient, ThalovantIdentity
from thalovant.client import AsyncThalovantClient
from thalovant.errors import ThalovantClientKeyRejectedError, ThalovantHubRefusedError

pytestmark = pytest.mark.interop


@pytest.fixture
def noise_dir(hm5_noise_dir: Path) -> Path:
    """The session's client key folder (see tests/interop/conftest.py)."""
    return hm5_noise_dir


def test_ask_with_xx_then_kk_after_reconnect(hm5_identity: Path, noise_dir: Path) -> None:
    identity = ThalovantIdentity.from_file(hm5_identity)
    assert (identity.endpoint_for("wss") or "").startswith("ws://127.0.0.1:")

    with ThalovantClient(identity, protocol="wss", noise_state_dir=noise_dir, reply_settle_seconds=0) as client:
        assert client.connection_info().noise_pattern == "XXpsk2"
        reply = client.ask("hello 0")
        assert reply.text == "You said hello 0"

    with ThalovantClient(identity, protocol="wss", noise_state_dir=noise_dir, reply_settle_seconds=0) as client:
        info = client.connection_info()
        assert info.noise_pattern == "KKpsk0"
        assert info.phase == "ready"
        assert client.ask("hello 1").text == "You said hello 1"
        assert client.healthcheck().ok


async def test_async_client_several_asks(hm5_identity: Path, noise_dir: Path) -> None:
    identity = ThalovantIdentity.from_file(hm5_identity)
    async with AsyncThalovantClient(identity, noise_state_dir=noise_dir, reply_settle_seconds=0) as client:
        for i in range(5):
            reply = await client.ask(f"hello {i}")
            assert reply.text == f"You said hello {i}"


def test_wrong_password_is_refused(hm5_identity: Path, tmp_path: Path) -> None:
    data = ThalovantIdentity.from_file(hm5_identity).as_dict(include_secrets=True)
    data["password"] = "not-the-password-" + "x" * 20
    identity = ThalovantIdentity.from_mapping(data)
    client = ThalovantClient(identity, protocol="wss", noise_state_dir=tmp_path / "noise3", auto_reconnect=False)
    try:
        with pytest.raises(ThalovantHubRefusedError):
            client.connect()
    finally:
        client.close()


def test_unknown_access_key_is_refused(hm5_identity: Path, tmp_path: Path) -> None:
    data = ThalovantIdentity.from_file(hm5_identity).as_dict(include_secrets=True)
    data["access_key"] = "unknown-access-key-0123456789"
    identity = ThalovantIdentity.from_mapping(data)
    client = ThalovantClient(identity, protocol="wss", noise_state_dir=tmp_path / "noise4", auto_reconnect=False)
    try:
        with pytest.raises(ThalovantHubRefusedError):
            client.connect()
    finally:
        client.close()


def test_second_client_key_is_rejected(hm5_identity: Path, noise_dir: Path, tmp_path: Path) -> None:
    """The hub pinned the key in ``noise_dir`` for this access key: another key is refused."""
    identity = ThalovantIdentity.from_file(hm5_identity)
    with ThalovantClient(identity, protocol="wss", noise_state_dir=noise_dir) as client:
        assert client.connected  # make sure the pin exists whatever ran first
    other = ThalovantClient(identity, protocol="wss", noise_state_dir=tmp_path / "other-key", auto_reconnect=False)
    try:
        with pytest.raises(ThalovantClientKeyRejectedError):
            other.connect()
    finally:
        other.close()
