"""Our SDK's runtime client over MQTT against our own server, on both brokers.

``thalovant-server serve --demo --mqtt-broker KIND`` runs as a separate process on 127.0.0.1; the
identity comes from the ``/v1`` API (so its broker account exists at once) and names the broker
the server started; the client trusts the server's development CA through the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.identities import new_identity as make_identity
from tests.fixtures.identities import trusting
from tests.fixtures.mosquitto import require_mosquitto
from tests.fixtures.server import RunningServer, new_server

from thalovant import ThalovantClient, ThalovantIdentity
from thalovant.client import AsyncThalovantClient
from thalovant.errors import ThalovantTimeoutError

JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."
CAPABILITIES = "This hub can answer quick joke and trivia requests."


@pytest.fixture(scope="module", params=["embedded", "mosquitto"])
def mqtt_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    kind: str = request.param
    if kind == "mosquitto":
        require_mosquitto()
    server = new_server(tmp_path_factory.mktemp(f"sdk-mqtt-hub-{kind}"), mqtt_broker=kind)
    server.start()
    try:
        with trusting(server):
            yield server
    finally:
        server.stop()


def new_identity(server: RunningServer, name: str) -> ThalovantIdentity:
    return make_identity(server, name, "mqtt")


def test_ask_and_a_conversation_over_mqtt(mqtt_server: RunningServer, tmp_path: Path) -> None:
    identity = new_identity(mqtt_server, "sdk-mqtt-ask")
    with ThalovantClient(identity, protocol="mqtt", noise_state_dir=tmp_path, reply_settle_seconds=0) as client:
        assert client.ask("Tell me a short clean joke.").text == JOKE
        with client.conversation(lang="en-us") as convo:
            assert "blue" in convo.ask("Remember that my favorite color is blue.").text
            assert "blue" in convo.ask("What color did I mention?").text
        with client.conversation(lang="en-us") as other:  # kept for the identity, across conversations
            assert "blue" in other.ask("What color did I mention?").text
        assert client.connection_info().noise_pattern == "XXpsk2"
    with ThalovantClient(identity, protocol="mqtt", noise_state_dir=tmp_path, reply_settle_seconds=0) as again:
        assert again.ask("What can this hub do?").text == CAPABILITIES
        assert again.connection_info().noise_pattern == "KKpsk0"
    stranger = new_identity(mqtt_server, "sdk-mqtt-stranger")
    with ThalovantClient(
        stranger, protocol="mqtt", noise_state_dir=tmp_path / "stranger", reply_settle_seconds=0
    ) as other:
        assert "blue" not in other.ask("What color did I mention?").text


async def test_a_second_client_key_gets_no_session_over_mqtt(mqtt_server: RunningServer, tmp_path: Path) -> None:
    """MQTT has no refusal channel: the hub stays silent for a key that contradicts the pin (spec 3.9),
    and the client, which believes it is connected, gets no answer."""
    identity = new_identity(mqtt_server, "sdk-mqtt-keys")
    first = AsyncThalovantClient(identity, protocol="mqtt", noise_state_dir=tmp_path / "a", reply_settle_seconds=0)
    async with first:
        assert (await first.ask("Tell me a short clean joke.")).text == JOKE
    other = AsyncThalovantClient(
        identity, protocol="mqtt", noise_state_dir=tmp_path / "b", auto_reconnect=False, reply_settle_seconds=0
    )
    async with other:  # the broker lets it in; the hub never answers this key
        with pytest.raises(ThalovantTimeoutError):
            await other.ask("Tell me a short clean joke.", timeout=3)
