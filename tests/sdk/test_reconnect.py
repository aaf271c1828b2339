"""The client always comes back: every loss of the link ends in the same supervised reconnect,
listeners stay subscribed, and calls made during an outage wait for the link (up to their
timeout) and are then sent. Each test restarts a server of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.fixtures.identities import new_identity, trusting
from tests.fixtures.server import RunningServer

from thalovant import EVENT_SPEAK
from thalovant.client import AsyncThalovantClient
from thalovant.errors import ThalovantConnectionError
from thalovant.events import ThalovantEvent
from thalovant_server.hub.skills.jokes import JOKES

#: generous: these bound a slow CI machine's restart, they are not a speed goal
PATIENCE = 120.0


@pytest.fixture
def hub(server_factory: Callable[..., RunningServer]) -> Iterator[RunningServer]:
    with trusting(server_factory()) as server:
        yield server


def client_of(server: RunningServer, name: str, noise: Path, **options: float) -> AsyncThalovantClient:
    return AsyncThalovantClient(
        new_identity(server, name), protocol="wss", noise_state_dir=noise / name, **options  # type: ignore[arg-type]
    )


async def test_an_ask_made_while_the_hub_is_down_waits_and_is_answered(hub: RunningServer, tmp_path: Path) -> None:
    client = client_of(hub, "outage-asker", tmp_path)
    await client.connect()
    try:
        await asyncio.to_thread(hub.stop)
        ask = asyncio.create_task(client.ask("Tell me a short clean joke.", timeout=PATIENCE))
        await asyncio.to_thread(hub.start)
        reply = await ask
        assert reply.text in JOKES
        assert client.connection_info().reconnects == 1
    finally:
        await client.close()


async def test_a_client_that_only_listens_comes_back(hub: RunningServer, tmp_path: Path) -> None:
    client = client_of(hub, "listener", tmp_path)
    heard: asyncio.Queue[ThalovantEvent] = asyncio.Queue()
    await client.connect()
    try:
        client.on(EVENT_SPEAK, heard.put_nowait)
        await asyncio.to_thread(hub.restart)
        await client.wait_connected(PATIENCE)
        assert client.connection_info().reconnects == 1
        await client.send_utterance("Tell me a short clean joke.")
        event = await asyncio.wait_for(heard.get(), PATIENCE)
        assert event.text in JOKES
    finally:
        await client.close()


async def test_clients_racing_the_drop_all_come_back(hub: RunningServer, tmp_path: Path) -> None:
    """Calls that find the link down while it closes must not stop the reconnect (the old
    client dialled inline, closed the dying link quietly and never retried)."""
    clients = [client_of(hub, f"racer-{n}", tmp_path, send_timeout=PATIENCE) for n in range(8)]
    await asyncio.gather(*(c.connect() for c in clients))
    stop_sending = asyncio.Event()

    async def keep_sending(client: AsyncThalovantClient) -> int:
        sent = 0
        while not stop_sending.is_set():
            await client.send_utterance("Tell me a short clean joke.")
            sent += 1
        return sent

    senders = [asyncio.create_task(keep_sending(c)) for c in clients]
    try:
        await asyncio.to_thread(hub.restart)
        await asyncio.gather(*(c.wait_connected(PATIENCE) for c in clients))
        stop_sending.set()
        assert all(count > 0 for count in await asyncio.gather(*senders))
        replies = await asyncio.gather(*(c.ask("Tell me a short clean joke.", timeout=PATIENCE) for c in clients))
        assert all(reply.text in JOKES for reply in replies)
    finally:
        stop_sending.set()
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in clients))


async def test_a_call_gives_up_at_its_timeout_while_the_hub_stays_down(hub: RunningServer, tmp_path: Path) -> None:
    client = client_of(hub, "patient", tmp_path)
    await client.connect()
    try:
        await asyncio.to_thread(hub.stop)
        with pytest.raises(ThalovantConnectionError, match="not back within"):
            await client.ask("Tell me a short clean joke.", timeout=0.5)
        assert client.connection_info().phase == "error"
    finally:
        await client.close()


async def test_asks_in_a_loop_through_a_restart_all_get_their_reply(hub: RunningServer, tmp_path: Path) -> None:
    """The hub closes with 1012 when it restarts: an ask it had not answered is sent again on
    the next link (the same request id), so none of these asks fails."""
    clients = [client_of(hub, f"looper-{n}", tmp_path) for n in range(10)]
    await asyncio.gather(*(c.connect() for c in clients))
    stop = asyncio.Event()
    failures: list[BaseException] = []

    async def keep_asking(client: AsyncThalovantClient) -> int:
        answered = 0
        while not stop.is_set():
            try:
                assert (await client.ask("Tell me a short clean joke.", timeout=PATIENCE)).text in JOKES
                answered += 1
            except ThalovantConnectionError as exc:
                failures.append(exc)
        return answered

    loops = [asyncio.create_task(keep_asking(c)) for c in clients]
    try:
        await asyncio.to_thread(hub.restart)
        await asyncio.gather(*(c.wait_connected(PATIENCE) for c in clients))
        await asyncio.gather(*(c.ask("Tell me a short clean joke.", timeout=PATIENCE) for c in clients))
    finally:
        stop.set()
        answered = await asyncio.gather(*loops, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in clients))
    assert failures == []
    assert all(isinstance(count, int) and count > 0 for count in answered)
    assert all(c.connection_info().reconnects == 1 for c in clients)
