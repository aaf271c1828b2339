"""Our SDK's runtime client over HTTPS polling against our own hub (``thalovant-server serve --demo``).

The hub side is ``thalovant_server.carriers.https``; the client side ``thalovant.carriers.https``.
Both run for real: the server is a separate process on 127.0.0.1 with its development CA trusted
through the environment, as a user's process would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.identities import new_identity as make_identity
from tests.fixtures.identities import trusting
from tests.fixtures.server import RunningServer

from thalovant import ThalovantClient, ThalovantIdentity
from thalovant.client import AsyncThalovantClient
from thalovant.errors import ThalovantHubRefusedError
from thalovant.noise_store import NoiseStore
from thalovant_server.hub.skills.jokes import JOKES

JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."
CAPABILITIES = "This hub can answer quick joke and trivia requests."


@pytest.fixture(scope="module")
def trusted(server: RunningServer) -> Iterator[RunningServer]:
    with trusting(server):
        yield server


def new_identity(server: RunningServer, name: str) -> ThalovantIdentity:
    return make_identity(server, name, "https")


@pytest.fixture(scope="module")
def identity(trusted: RunningServer) -> ThalovantIdentity:
    return new_identity(trusted, "sdk-https-tests")


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("noise-https")


@pytest.fixture(scope="module")
def client(identity: ThalovantIdentity, noise_dir: Path) -> Iterator[ThalovantClient]:
    with ThalovantClient(identity, protocol="https", noise_state_dir=noise_dir) as live:
        yield live


def test_ask_a_joke_over_https(client: ThalovantClient) -> None:
    reply = client.ask("Tell me a short clean joke.")
    assert reply.text == JOKE
    info = client.connection_info()
    assert info.phase == "ready"
    assert info.protocol == "https"
    assert info.session_id is not None and info.session_id.startswith("thalovant-python-")


def test_conversation_memory_belongs_to_the_identity(
    client: ThalovantClient, trusted: RunningServer, tmp_path: Path
) -> None:
    with client.conversation(lang="en-us") as convo:
        assert "blue" in convo.ask("Remember that my favorite color is blue.").text.lower()
        assert "blue" in convo.ask("What color did I mention?").text.lower()
    with client.conversation(lang="en-us") as other:  # kept for the identity, across its conversations
        assert "blue" in other.ask("What color did I mention?").text.lower()
    stranger = new_identity(trusted, "sdk-https-stranger")
    with ThalovantClient(stranger, protocol="https", noise_state_dir=tmp_path / "noise") as someone_else:
        assert "blue" not in someone_else.ask("What color did I mention?").text.lower()


def test_first_contact_is_xx_then_kk(trusted: RunningServer, tmp_path: Path) -> None:
    identity = new_identity(trusted, "sdk-https-pattern")
    noise = tmp_path / "noise"
    with ThalovantClient(identity, protocol="https", noise_state_dir=noise) as first:
        assert first.connection_info().noise_pattern == "XXpsk2"
        assert first.ask("What can this hub do?").text == CAPABILITIES
    assert len(NoiseStore(noise).pins()) == 1
    with ThalovantClient(identity, protocol="https", noise_state_dir=noise) as second:
        assert second.connection_info().noise_pattern == "KKpsk0"
        assert second.ask("Tell me a short clean joke.").text == JOKE


async def test_async_client_asks_concurrently(trusted: RunningServer, tmp_path: Path) -> None:
    # an identity of its own: the hub holds one HTTPS session per access key, and a second
    # client with the module's identity would supersede the module client's session
    identity = new_identity(trusted, "sdk-https-async")
    async with AsyncThalovantClient(identity, protocol="https", noise_state_dir=tmp_path / "noise") as client:
        replies = await asyncio.gather(*(client.ask("Tell me a short clean joke.") for _ in range(3)))
        assert len(replies) == 3 and all(reply.text in JOKES for reply in replies)


def test_wrong_password_is_refused(trusted: RunningServer, tmp_path: Path) -> None:
    data = new_identity(trusted, "sdk-https-wrong-password").as_dict(include_secrets=True)
    data["password"] = "definitely-not-the-password"
    bad = ThalovantIdentity.from_mapping(data)
    client = ThalovantClient(bad, protocol="https", noise_state_dir=tmp_path / "n", auto_reconnect=False)
    try:
        with pytest.raises(ThalovantHubRefusedError):
            client.connect()
    finally:
        client.close()
