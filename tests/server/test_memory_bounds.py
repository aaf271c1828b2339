"""Memory a client identity cannot grow without bound: the hub's copy of session contexts.

A client may invent any session id and fill its session context; the hub keeps a copy of each
conversation for clients that do not carry their state. Over real WSS with our SDK, one client
floods the hub with session ids and large contexts; what the hub keeps stays within the per-client
budget, a conversation too large is not kept, and another client's conversation survives.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from peers.processes import free_port
from tests.fixtures.peers import trust_env
from tests.server.test_wss import HubData, HubServer

from thalovant import ThalovantIdentity
from thalovant.client import AsyncThalovantClient
from thalovant_server.api.provisioning import ClientRequest, provision_client
from thalovant_server.app import open_control_plane
from thalovant_server.config import ServerConfig
from thalovant_server.hub.session import MAX_CLIENT_BYTES, MAX_ENTRY_BYTES, Conversation, SessionStore
from thalovant_server.store import accounts, hubs
from thalovant_server.store.hub_spec import normalise_spec
from thalovant_server.tls import ensure_dev_tls


async def _provision(data_dir: Path, port: int) -> tuple[str, list[dict[str, Any]]]:
    config = ServerConfig(data_dir=data_dir, host="127.0.0.1", port=port, mqtt_broker="off")
    async with open_control_plane(config) as plane:
        async with plane.store.session() as session:
            user = await accounts.create_user(session, email="owner@example.com", password_hash="x")
            workspace = (await accounts.workspace_ids(session, user.id))[0]
            hub = await hubs.create_hub(
                session, slug="bounded", name="bounded", title="Bounded", owner_id=user.id, workspace_id=workspace,
                spec=normalise_spec({"version": "1", "skills": ["jokes", "memory"]}),
            )  # fmt: skip
        identities = []
        for name in ("flooder", "neighbour"):
            made = await provision_client(
                plane, hub=hub, owner_id=user.id, workspace_id=workspace, request=ClientRequest(name=name)
            )
            identities.append(made.body["initial_identify"])
    return hub.id, identities


@pytest.fixture
def trusted(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "data"
    tls = ensure_dev_tls(data_dir, extra_names=("127.0.0.1",))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in trust_env(tls.ca_cert).items():
            patch.setenv(key, value)
        yield data_dir


@pytest.fixture
async def hub(trusted: Path) -> AsyncIterator[tuple[HubServer, list[dict[str, Any]]]]:
    port = free_port()
    hub_id, identities = await _provision(trusted, port)
    server = HubServer(HubData(trusted, port, hub_id, node_id=""))
    await server.start()
    try:
        yield server, identities
    finally:
        await server.stop()


def _client(identity: dict[str, Any], folder: Path) -> AsyncThalovantClient:
    return AsyncThalovantClient(
        ThalovantIdentity.from_mapping(identity), "wss", noise_state_dir=folder, reply_settle_seconds=0
    )


def _session(session_id: str, filler: int) -> dict[str, Any]:
    return {"session": {"session_id": session_id, "context": {"notes": "n" * filler}}}


async def test_a_client_inventing_sessions_and_contexts_stays_within_its_budget(
    hub: tuple[HubServer, list[dict[str, Any]]], tmp_path: Path
) -> None:
    server, (flooder, neighbour) = hub
    host = await server.runtime.host(server.data.hub_id)
    assert host is not None
    store: SessionStore = host.router.sessions
    async with _client(neighbour, tmp_path / "n") as client:
        await client.ask("Tell me a joke", session_id="kept", context=_session("kept", 100))
    kept = store.bytes_of(neighbour["client_id"])
    assert kept > 100

    filler = 20 * 1024
    async with _client(flooder, tmp_path / "f") as client:
        for index in range(60):  # 60 x 20 KiB: more than twice the client budget
            sid = f"invented-{index}-{secrets.token_hex(4)}"
            await client.ask("Tell me a joke", session_id=sid, context=_session(sid, filler))
        flooded = store.bytes_of(flooder["client_id"])
        assert MAX_CLIENT_BYTES - 2 * filler < flooded <= MAX_CLIENT_BYTES
        # a conversation larger than one entry may be is answered but not kept
        sid = f"huge-{secrets.token_hex(4)}"
        reply = await client.ask("Tell me a joke", session_id=sid, context=_session(sid, MAX_ENTRY_BYTES))
        assert reply.text
        assert store.bytes_of(flooder["client_id"]) <= flooded
    assert store.bytes_of(neighbour["client_id"]) == kept
    assert store.bytes_of() <= store.hub_bytes


def test_the_hub_budget_holds_across_many_clients() -> None:
    store = SessionStore(client_bytes=10_000, hub_bytes=50_000)
    for client in range(40):
        for index in range(10):
            conversation = Conversation(f"s{index}", "en-us", extra_context={"notes": "x" * 900})
            store.save(f"c{client}", conversation, conversation.to_session({}))
            assert store.bytes_of(f"c{client}") <= 10_000
            assert store.bytes_of() <= 50_000
    store.forget_client("c39")
    assert store.bytes_of("c39") == 0 and store.bytes_of() <= 50_000


def test_saving_a_conversation_again_counts_its_new_size_and_makes_it_the_most_recent() -> None:
    def conversation(sid: str, notes: int) -> tuple[Conversation, dict[str, object]]:
        kept = Conversation(sid, "en-us", extra_context={"notes": "x" * notes})
        return kept, kept.to_session({})

    store = SessionStore(client_bytes=3_500)
    for sid in ("s0", "s1", "s2"):
        store.save("c", *conversation(sid, 900))
    three = store.bytes_of("c")
    store.save("c", *conversation("s0", 1000))  # s0 again, 100 bytes larger, now the newest
    assert store.bytes_of("c") == three + 100 == store.bytes_of()
    store.save("c", *conversation("s0", 800))
    assert store.bytes_of("c") == three - 100
    store.save("c", *conversation("s3", 900))  # over the budget: the least recent (s1) goes
    assert store.load("c", "s1", "en-us", {}).extra_context == {}
    assert store.load("c", "s0", "en-us", {}).extra_context == {"notes": "x" * 800}
    assert len(store) == 3 and store.bytes_of("c") <= 3_500
