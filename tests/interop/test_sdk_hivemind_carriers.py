"""Our SDK's HTTPS polling and MQTT carriers against hivemind-core 5.3.10a1 (``peers.hm5``).

The hub's https carrier and the mosquitto TLS listener in front of its mqtt carrier present
certificates of the stack's test CA, which the client trusts through ``SSL_CERT_FILE`` and
friends. HTTPS and MQTT share one hub pin, ``endpoint_base()`` (spec 1.8).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.peers import trust_env

from thalovant import ThalovantClient, ThalovantIdentity
from thalovant.client import AsyncThalovantClient
from thalovant.errors import ThalovantHubRefusedError
from thalovant.noise_store import NoiseStore, https_pin_id

pytestmark = pytest.mark.interop


@pytest.fixture
def trusted(hm5_ca_file: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in trust_env(hm5_ca_file).items():
            patch.setenv(key, value)
        yield


def test_https_ask_with_xx_then_kk_after_reconnect(hm5_identity: Path, hm5_noise_dir: Path, trusted: None) -> None:
    identity = ThalovantIdentity.from_file(hm5_identity)
    pin_id = https_pin_id(identity.endpoint_base())
    assert pin_id.startswith("https://127.0.0.1:")
    assert NoiseStore(hm5_noise_dir).hub_pin(pin_id) is None  # first contact with this endpoint

    with ThalovantClient(
        identity, protocol="https", noise_state_dir=hm5_noise_dir, reply_settle_seconds=0
    ) as client:
        info = client.connection_info()
        assert (info.protocol, info.noise_pattern, info.phase) == ("https", "XXpsk2", "ready")
        assert client.ask("hello 0").text == "You said hello 0"
    assert NoiseStore(hm5_noise_dir).hub_pin(pin_id) is not None

    with ThalovantClient(
        identity, protocol="https", noise_state_dir=hm5_noise_dir, reply_settle_seconds=0
    ) as client:
        assert client.connection_info().noise_pattern == "KKpsk0"
        assert client.ask("hello 1").text == "You said hello 1"
        assert client.healthcheck().ok


async def test_https_async_several_asks(hm5_identity: Path, hm5_noise_dir: Path, trusted: None) -> None:
    identity = ThalovantIdentity.from_file(hm5_identity)
    async with AsyncThalovantClient(
        identity, "https", noise_state_dir=hm5_noise_dir, reply_settle_seconds=0
    ) as client:
        for i in range(5):
            reply = await client.ask(f"hello {i}")
            assert reply.text == f"You said hello {i}"


def test_mqtt_ask(hm5_identity: Path, hm5_noise_dir: Path, trusted: None) -> None:
    identity = ThalovantIdentity.from_file(hm5_identity)
    assert identity.mqtt is not None and identity.mqtt.endpoint.startswith("mqtts://127.0.0.1:")
    with ThalovantClient(identity, protocol="mqtt", noise_state_dir=hm5_noise_dir, reply_settle_seconds=0) as client:
        info = client.connection_info()
        assert (info.protocol, info.phase) == ("mqtt", "ready")
        assert info.noise_pattern in ("XXpsk2", "KKpsk0")
        assert client.ask("hello 0").text == "You said hello 0"
        assert client.ask("hello 1").text == "You said hello 1"
    # MQTT pins the hub under the HTTPS pin id
    assert NoiseStore(hm5_noise_dir).hub_pin(https_pin_id(identity.endpoint_base())) is not None


def _with(identity_file: Path, **changes: str) -> ThalovantIdentity:
    data = ThalovantIdentity.from_file(identity_file).as_dict(include_secrets=True)
    data.update(changes)
    return ThalovantIdentity.from_mapping(data)


@pytest.mark.parametrize("protocol", ["https", "mqtt"])
def test_wrong_password_is_refused(hm5_identity: Path, tmp_path: Path, trusted: None, protocol: str) -> None:
    identity = _with(hm5_identity, password="not-the-password-" + "x" * 20)
    client = ThalovantClient(
        identity, protocol=protocol, noise_state_dir=tmp_path / "noise", auto_reconnect=False
    )
    try:
        with pytest.raises(ThalovantHubRefusedError):
            client.connect()
    finally:
        client.close()


def test_unknown_access_key_is_refused_over_https(hm5_identity: Path, tmp_path: Path, trusted: None) -> None:
    identity = _with(hm5_identity, access_key="unknown-access-key-0123456789")
    client = ThalovantClient(
        identity, protocol="https", noise_state_dir=tmp_path / "noise", auto_reconnect=False
    )
    try:
        with pytest.raises(ThalovantHubRefusedError):
            client.connect()
    finally:
        client.close()
