"""The server's one Noise static key: created once, sealed, shared by every hub, migrated from per-hub keys.

Migration ``0003a`` keeps the oldest hub's key as the server's (its pinned clients keep working)
and drops the per-hub column; the key is sealed with the data directory's ``server.key``, and a
database whose key does not open with that file refuses to start instead of presenting a new key.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.fixtures import legacy
from tests.fixtures.identities import trusting
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.server import RunningServer, new_server

from thalovant import ThalovantClient, ThalovantIdentity
from thalovant.noise_store import NoiseStore, wss_pin_id
from thalovant.protocol.noise import KeyPair
from thalovant.protocol.psk import derive_psk
from thalovant_server.app import open_control_plane
from thalovant_server.config import ServerConfig
from thalovant_server.secrets import SEALING_KEY_FILE, SealingKey
from thalovant_server.store.directory import StoreDirectory
from thalovant_server.store.engine import Store, create_engine
from thalovant_server.store.models import ServerKey
from thalovant_server.store.sealed import NOISE_STATIC, SealedSecretUnreadable, noise_static_key

JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'thalovant.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(server.create_database())


@pytest.fixture
async def store_at_0002(fresh_database_url: str) -> AsyncIterator[Store]:
    """A database as servers before one-key-per-endpoint left it (revision 0002)."""
    engine = create_engine(fresh_database_url)
    async with engine.begin() as connection:
        await connection.run_sync(legacy.upgrade_to("0002_mqtt_password_hash"))
    store = Store(engine)
    try:
        yield store
    finally:
        await store.close()


async def test_migration_keeps_the_oldest_hubs_key_for_every_hub_sealed(store_at_0002: Store, tmp_path: Path) -> None:
    newer = await legacy.insert_hub(store_at_0002.engine, order=5)
    oldest = await legacy.insert_hub(store_at_0002.engine, order=1)
    for hub in (newer, oldest):
        await legacy.insert_client(store_at_0002.engine, hub)
    sealing = SealingKey.load_or_create(tmp_path / "data")

    await store_at_0002.migrate(sealing)

    key = await noise_static_key(store_at_0002, sealing)
    assert key.private == oldest.noise_private_key
    async with store_at_0002.session() as session:
        row = await session.get(ServerKey, NOISE_STATIC)
        assert row is not None and oldest.noise_private_key not in bytes(row.sealed)
        columns = await session.run_sync(lambda s: sa.inspect(s.connection()).get_columns("hubs"))
        assert "noise_private_key" not in {column["name"] for column in columns}
        assert await session.scalar(sa.text("SELECT count(*) FROM clients")) == 2
    directory = StoreDirectory(store_at_0002, noise_key=key, sealing=sealing)
    for hub in (newer, oldest):
        keys = await directory.load_hub(hub.id)
        assert keys is not None and keys.static.public == key.public and keys.node_id == hub.node_id


async def test_a_migration_that_must_seal_needs_the_servers_sealing_key(store_at_0002: Store) -> None:
    await legacy.insert_hub(store_at_0002.engine)
    with pytest.raises(RuntimeError, match=r"server\.key"):
        await store_at_0002.migrate()


async def test_one_key_for_every_hub_kept_across_restarts(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "data")
    async with open_control_plane(config) as plane:
        first = plane.noise_key
    async with open_control_plane(config) as plane:
        assert plane.noise_key.private == first.private


async def test_racing_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sealing = SealingKey.load_or_create(data)
    stores = [await Store.open(f"sqlite+aiosqlite:///{data / 'thalovant.db'}", sealing=sealing) for _ in range(2)]
    try:
        keys = await asyncio.gather(*(noise_static_key(store, sealing) for store in stores * 3))
        assert len({key.private for key in keys}) == 1
    finally:
        for store in stores:
            await store.close()


async def test_a_database_sealed_by_another_server_key_refuses_to_open(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "data")
    async with open_control_plane(config):
        pass
    (config.data_dir / SEALING_KEY_FILE).unlink()
    with pytest.raises(SealedSecretUnreadable):
        async with open_control_plane(config):
            pass


def test_serve_says_in_one_line_that_the_data_directory_does_not_match(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory()
    server.stop()
    (server.data_dir / SEALING_KEY_FILE).unlink()
    with pytest.raises(RuntimeError, match=r"server\.key") as refused:
        server.start()
    assert "Traceback" not in str(refused.value)


async def _old_data_dir(data_dir: Path, port: int) -> tuple[legacy.LegacyHub, dict[str, object]]:
    """A data directory as an older server left it: the database at 0002, two hubs each with its own
    key, a client identity of the oldest hub; returns that hub and the identity (as a file holds it)."""
    SealingKey.load_or_create(data_dir)
    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'thalovant.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(legacy.upgrade_to("0002_mqtt_password_hash"))
        oldest = await legacy.insert_hub(engine, order=0, mqtt=False)
        await legacy.insert_hub(engine, order=9, mqtt=False)
        password = secrets.token_urlsafe(32)
        psk = await asyncio.to_thread(derive_psk, password, oldest.node_id)
        client = await legacy.insert_client(engine, oldest, psk=psk)
    finally:
        await engine.dispose()
    base = f"127.0.0.1:{port}"
    identity: dict[str, object] = {
        "access_key": client.access_key,
        "password": password,
        "site_id": "legacy-site",
        "default_master": "https://127.0.0.1",
        "default_port": port,
        "default_path": f"/hubs/{oldest.id}",
        "data_plane_endpoints": {"wss": f"wss://{base}/hubs/{oldest.id}", "https": f"https://{base}/hubs/{oldest.id}"},
        "hub_id": oldest.id,
        "client_id": client.id,
    }
    return oldest, identity


def test_an_old_data_directory_serves_its_pinned_clients_without_a_manual_step(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    server = new_server(tmp_path_factory.mktemp("old-server"))
    oldest, identity = asyncio.run(_old_data_dir(server.data_dir, server.port))
    # the client talked to the oldest hub before the upgrade: its folder pins that hub's own key
    folder = tmp_path / "noise"
    pinned = KeyPair.from_private(oldest.noise_private_key).public
    endpoints = identity["data_plane_endpoints"]
    assert isinstance(endpoints, dict)
    NoiseStore(folder).pin_hub(wss_pin_id(endpoints["wss"]), pinned)
    server.start()
    try:
        with trusting(server), ThalovantClient(
            ThalovantIdentity.from_mapping(identity), protocol="wss", noise_state_dir=folder, reply_settle_seconds=0
        ) as client:
            assert client.ask("Tell me a short clean joke.").text == JOKE
        assert NoiseStore(folder).hub_pin(wss_pin_id(endpoints["wss"])) == pinned
    finally:
        server.stop()
