"""Our SDK's intent queries, direct queries, replies, mesh sends and connection life, against our hub.

Each runs against ``thalovant-server serve --demo`` (the joke-garden hub), sync and async.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.identities import new_identity, trusting
from tests.fixtures.server import RunningServer

from thalovant import (
    AsyncThalovantClient,
    IntentDefinition,
    IntentRegistration,
    ThalovantClient,
    ThalovantIdentity,
    ThalovantRuntimeError,
    ThalovantTimeoutError,
)
from thalovant_server.hub.skills.jokes import JOKES

FALLBACK = "Sorry, I can't help with that yet. Ask what this hub can do."


@pytest.fixture(scope="module")
def identity(server: RunningServer) -> Iterator[ThalovantIdentity]:
    with trusting(server):
        yield new_identity(server, f"runtime-methods-{uuid.uuid4().hex[:6]}", "wss")


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One client key for the identity: the hub pins the first key it sees."""
    return tmp_path_factory.mktemp("noise")


@pytest.fixture
def client(identity: ThalovantIdentity, server: RunningServer, noise_dir: Path) -> Iterator[ThalovantClient]:
    with trusting(server), ThalovantClient(identity, protocol="wss", noise_state_dir=noise_dir) as live:
        yield live


def test_list_intents_and_describe_one(client: ThalovantClient) -> None:
    intents = client.list_intents("en-us")
    assert all(isinstance(i, IntentRegistration) for i in intents)
    by_name = {(i.skill_id, i.intent_name): i for i in intents}
    joke = by_name[("jokes", "tell_joke")]
    assert joke.lang == "en-us" and joke.method == "template" and joke.engine == "padatious" and joke.enabled
    assert joke.definition is None
    every_language = client.list_intents()
    assert {(i.skill_id, i.intent_name) for i in every_language} == set(by_name)
    detailed = {(i.skill_id, i.intent_name): i for i in client.list_intents("en-us", include_definitions=True)}
    definition = detailed[("jokes", "tell_joke")].definition
    assert definition is not None and "tell me a joke" in definition["samples"]
    [described] = client.describe_intent("jokes", "tell_joke", "en-us")
    assert isinstance(described, IntentDefinition)
    assert (described.skill_id, described.intent_name, described.lang) == ("jokes", "tell_joke", "en-us")
    assert "tell me a joke" in described.samples and described.engine == "padatious"
    with pytest.raises(ThalovantRuntimeError, match="no intent"):
        client.describe_intent("jokes", "no_such_intent")


def test_direct_query_ends_with_the_completion(client: ThalovantClient) -> None:
    reply = client.query("Tell me a short clean joke.", timeout=10)
    assert reply.text == JOKES[0] and reply.handled
    assert reply.session_id is not None and reply.session_id.startswith("thalovant-session-")
    named = client.query("Please water the plants.", session_id="kiosk-7", query_id="q-kiosk-7")
    assert named.text == FALLBACK  # no skill claims it: the fallback speaks, then completes
    assert named.session_id == "kiosk-7"


def test_reply_goes_back_along_the_route(client: ThalovantClient) -> None:
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    client.emit("thalovant.client.status", {"state": "ready"}, {"request_id": request_id})
    answer = client.wait_for_event("thalovant.client.status.response", timeout=10, request_id=request_id)
    assert answer.data["ok"] is True
    assert answer.routing_context is not None and answer.routing_context["destination"].startswith("Thalovant")
    client.reply(answer, "thalovant.client.status", {"state": "replied"})
    echoed = client.wait_for_event("thalovant.client.status.response", timeout=10, request_id=request_id)
    assert echoed.data["state"] == "replied"  # the reply kept the request id of the message it answers


def test_propagate_and_escalate_reach_the_hub_as_bus_messages(client: ThalovantClient) -> None:
    for send in (client.propagate, client.escalate):
        request_id = f"req-{uuid.uuid4().hex[:8]}"
        send("thalovant.client.status", {"state": send.__name__}, {"request_id": request_id})
        answer = client.wait_for_event("thalovant.client.status.response", timeout=10, request_id=request_id)
        assert answer.data["state"] == send.__name__


def test_a_broadcast_without_standing_ends_the_connection(client: ThalovantClient) -> None:
    first = client.connection_info().session_id
    client.broadcast("thalovant.client.status", {"state": "everyone"})
    client.wait_closed(timeout=10)  # the hub disconnects a client without admin standing
    assert client.ask("Tell me a short clean joke.").text == JOKES[0]  # reconnected
    assert client.connection_info().session_id != first


def test_disconnect_wait_closed_and_connect_with_info(client: ThalovantClient) -> None:
    info = client.connect_with_info(timeout=10)
    assert info.phase == "ready" and info.connected_at is not None
    with pytest.raises(ThalovantTimeoutError):
        client.wait_closed(timeout=0.2)  # the connection stays open
    client.disconnect(timeout=10)
    assert not client.connected
    client.wait_closed(timeout=1)  # nothing open: returns at once
    again = client.connect_with_info()
    assert again.phase == "ready" and client.ask("Tell me a short clean joke.").text == JOKES[0]


def test_the_async_client_has_the_same_methods(
    identity: ThalovantIdentity, server: RunningServer, noise_dir: Path
) -> None:
    async def scenario() -> tuple[str, int, str]:
        async with AsyncThalovantClient(identity, protocol="https", noise_state_dir=noise_dir) as client:
            reply = await client.query("Tell me a short clean joke.")
            intents = await client.list_intents("en-us")
            info = await client.connect_with_info()
            await client.disconnect()
            return reply.text, len(intents), info.protocol

    with trusting(server):
        text, count, protocol = asyncio.run(scenario())
    assert text == JOKES[0] and count >= 4 and protocol == "https"
