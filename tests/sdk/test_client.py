"""The runtime client end to end against our own hub (``thalovant-server serve --demo``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.identities import new_identity as make_identity
from tests.fixtures.identities import trusting
from tests.fixtures.server import RunningServer

from thalovant import (
    EVENT_SPEAK,
    EVENT_UTTERANCE_HANDLED,
    ThalovantClient,
    ThalovantIdentity,
    build_client_context,
)
from thalovant.client import AsyncThalovantClient
from thalovant.errors import ThalovantHubKeyChangedError, ThalovantHubRefusedError
from thalovant.events import ThalovantEvent
from thalovant.noise_store import NoiseStore, wss_pin_id
from thalovant_server.hub.skills.jokes import JOKES

JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."
assert JOKES[0] == JOKE


@pytest.fixture(scope="module")
def trusted(server: RunningServer) -> Iterator[RunningServer]:
    with trusting(server):
        yield server


def new_identity(server: RunningServer, name: str) -> ThalovantIdentity:
    return make_identity(server, name, "wss")


@pytest.fixture(scope="module")
def identity(trusted: RunningServer) -> ThalovantIdentity:
    return new_identity(trusted, "sdk-client-tests")


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("noise")


@pytest.fixture(scope="module")
def client(identity: ThalovantIdentity, noise_dir: Path) -> Iterator[ThalovantClient]:
    with ThalovantClient(identity, protocol="wss", noise_state_dir=noise_dir) as live:
        yield live


def test_ask_a_joke(client: ThalovantClient) -> None:
    reply = client.ask("Tell me a short clean joke.")
    assert reply.text == JOKE
    info = client.connection_info()
    assert info.phase == "ready"
    assert info.protocol == "wss"
    assert info.session_id is not None and info.session_id.startswith("thalovant-python-")


def test_first_contact_is_xx_and_reconnect_is_kk(trusted: RunningServer, tmp_path: Path) -> None:
    identity = new_identity(trusted, "sdk-pattern-test")
    noise = tmp_path / "noise"
    with ThalovantClient(identity, noise_state_dir=noise) as first:
        assert first.connection_info().noise_pattern == "XXpsk2"
    store = NoiseStore(noise)
    assert len(store.pins()) == 1
    with ThalovantClient(identity, noise_state_dir=noise) as second:
        assert second.connection_info().noise_pattern == "KKpsk0"
        assert second.ask("Tell me a short clean joke.").text == JOKE


def test_capabilities_and_display_items(client: ThalovantClient) -> None:
    reply = client.ask("What can this hub do?")
    assert reply.text
    assert isinstance(list(reply.display_items()), list)


def test_conversation_remembers(client: ThalovantClient) -> None:
    with client.conversation(lang="en-us") as convo:
        convo.ask("Remember that my favorite color is blue.")
        assert "blue" in convo.ask("What color did I mention?").text.lower()


def test_inputs_and_wait_for_event(client: ThalovantClient) -> None:
    client.emit("thalovant.client.status", {"state": "ready"}, {"source": "checkout-kiosk"})
    client.send_action("/approve invoice-42", title="Approve invoice", session_id="approval-session")
    client.send_code("INV-2026-001", kind="invoice", session_id="scan-session")
    rid = client.send_utterance("Tell me a short clean joke.", session_id="status-session")
    event = client.wait_for_event(EVENT_UTTERANCE_HANDLED, timeout=12, request_id=rid)
    assert event.request_id == rid
    assert client.healthcheck().ok


def test_listen_and_on(client: ThalovantClient) -> None:
    seen: list[ThalovantEvent] = []
    got = threading.Event()

    def handler(event: ThalovantEvent) -> None:
        seen.append(event)
        got.set()

    subscription = client.on(EVENT_SPEAK, handler)
    stream = client.listen(EVENT_SPEAK, timeout=30, max_events=2)
    client.send_utterance("Tell me a short clean joke.")
    client.send_utterance("Tell me a short clean joke.")
    texts = [event.text for event in stream]
    assert len(texts) == 2 and all(text in JOKES for text in texts)
    assert got.wait(10)
    subscription.close()
    assert seen[0].name == EVENT_SPEAK


def test_context_reaches_the_hub(client: ThalovantClient) -> None:
    context = build_client_context(
        user_id="user-42",
        user_name="Ada",
        source="checkout-kiosk",
        platform="kiosk",
        locale="en-US",
        metadata={"trace_id": "req-2026-06-10-001"},
    )
    reply = client.ask("Tell me a short clean joke.", context=context)
    assert reply.text in JOKES


def test_doctor_report_is_readable(client: ThalovantClient) -> None:
    report = client.doctor()
    assert report.ok
    printed = str(report)
    for name in ("identity", "endpoint", "tls", "handshake", "round trip"):
        assert name in printed


async def test_async_client(identity: ThalovantIdentity, noise_dir: Path) -> None:
    async with AsyncThalovantClient(identity, noise_state_dir=noise_dir) as client:
        replies = await asyncio.gather(*(client.ask("Tell me a short clean joke.") for _ in range(3)))
        assert len(replies) == 3 and all(reply.text in JOKES for reply in replies)
        health = await client.healthcheck()
        assert health.ok
        stream = client.listen(EVENT_SPEAK, timeout=30, max_events=1)
        await client.send_utterance("Tell me a short clean joke.")
        events = [event async for event in stream]
        assert len(events) == 1 and events[0].text in JOKES


def _variant(identity: ThalovantIdentity, **changes: Any) -> ThalovantIdentity:
    data = identity.as_dict(include_secrets=True)
    data.update(changes)
    return ThalovantIdentity.from_mapping(data)


def test_wrong_password_is_refused(identity: ThalovantIdentity, tmp_path: Path) -> None:
    bad = _variant(identity, password="definitely-not-the-password")
    client = ThalovantClient(bad, noise_state_dir=tmp_path / "n", auto_reconnect=False)
    try:
        with pytest.raises(ThalovantHubRefusedError):
            client.connect()
    finally:
        client.close()


def test_unknown_key_is_refused(identity: ThalovantIdentity, tmp_path: Path) -> None:
    bad = _variant(identity, access_key="unknown-" + "k" * 30)
    client = ThalovantClient(bad, noise_state_dir=tmp_path / "n", auto_reconnect=False)
    try:
        with pytest.raises(ThalovantHubRefusedError):
            client.connect()
    finally:
        client.close()


def test_changed_hub_key_stops_the_client(identity: ThalovantIdentity, tmp_path: Path) -> None:
    noise = tmp_path / "n"
    client = ThalovantClient(identity, noise_state_dir=noise, auto_reconnect=False)
    try:
        pin_id = wss_pin_id(client.endpoint)
        NoiseStore(noise).pin_hub(pin_id, b"\x42" * 32)
        with pytest.raises(ThalovantHubKeyChangedError, match="remove that pin"):
            client.connect()
    finally:
        client.close()
