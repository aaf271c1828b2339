"""The agent runner (``ThalovantAgent``, ``AsyncThalovantAgent``) against our hub."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.identities import new_identity, trusting
from tests.fixtures.server import RunningServer

from thalovant import (
    AsyncThalovantAgent,
    ThalovantAgent,
    ThalovantControlPlane,
    ThalovantEvent,
    ThalovantHubRefusedError,
    ThalovantIdentity,
)
from thalovant_server.hub.skills.jokes import JOKES


@pytest.fixture(scope="module")
def trusted(server: RunningServer) -> Iterator[RunningServer]:
    with trusting(server):
        yield server


@pytest.fixture
def identity(trusted: RunningServer) -> ThalovantIdentity:
    return new_identity(trusted, f"agent-{uuid.uuid4().hex[:8]}", "wss")


def test_handlers_run_until_a_handler_stops_the_agent(identity: ThalovantIdentity, tmp_path: Path) -> None:
    heard: list[str] = []
    with ThalovantAgent(identity, noise_state_dir=tmp_path / "noise") as agent:

        @agent.on_speak
        def on_speak(event: ThalovantEvent) -> None:
            heard.append(event.text or "")
            agent.stop()

        runner = threading.Thread(target=agent.run_forever)
        runner.start()
        agent.send_utterance("Tell me a short clean joke.")
        runner.join(30)
        assert not runner.is_alive()
    assert heard == [JOKES[0]]


def test_the_agent_keeps_its_handlers_across_a_lost_link(identity: ThalovantIdentity, tmp_path: Path) -> None:
    statuses: list[str] = []
    seen = threading.Event()
    with ThalovantAgent(identity, noise_state_dir=tmp_path / "noise") as agent:
        subscription = agent.subscribe(
            "thalovant.client.status.response",
            lambda event: (statuses.append(str(event.data.get("state"))), seen.set()),
        )
        runner = threading.Thread(target=agent.run_forever, kwargs={"poll_interval": 0.05})
        runner.start()
        try:
            agent.client.connect()
            first = agent.client.connection_info().session_id
            agent.client.broadcast("thalovant.client.status", {"state": "all"})  # the hub drops this link
            agent.client.wait_closed(timeout=10)
            assert agent.ask("Tell me a short clean joke.").text == JOKES[0]  # the agent is back
            assert agent.client.connection_info().session_id != first
            agent.client.emit("thalovant.client.status", {"state": "after"})
            assert seen.wait(10)
            assert statuses == ["after"] and subscription.active
        finally:
            agent.stop()
            runner.join(30)
    assert not runner.is_alive()


def test_run_forever_raises_when_the_hub_refuses_the_identity(trusted: RunningServer, tmp_path: Path) -> None:
    with ThalovantControlPlane(trusted.api_url) as api:
        api.login(trusted.demo_email, trusted.demo_password)
        hub = api.get_public_hub("joke-garden")
        created = api.create_client_identity(hub["id"], name=f"agent-gone-{uuid.uuid4().hex[:6]}")
        api.delete_client(str(created.client_id))
    with (
        ThalovantAgent(created.identity, noise_state_dir=tmp_path / "noise") as agent,
        pytest.raises(ThalovantHubRefusedError),
    ):
        agent.run_forever()


def test_the_async_agent(identity: ThalovantIdentity, trusted: RunningServer, tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], str]:
        heard: list[str] = []
        async with AsyncThalovantAgent(identity, noise_state_dir=tmp_path / "noise") as agent:

            @agent.on("speak")
            async def on_speak(event: ThalovantEvent) -> None:
                heard.append(event.text or "")
                agent.stop()

            running = asyncio.create_task(agent.run_forever())
            await agent.send_utterance("Tell me a short clean joke.")
            await asyncio.wait_for(running, 30)
            again = await agent.ask("another one")
            agent.stop()
            await agent.run_forever()  # a stop before running: returns at once
            return heard, again.text

    heard, another = asyncio.run(scenario())
    assert heard == [JOKES[0], another]  # the handler heard the ask's answer too
