"""MQTT credentials in the store: migration 0002, the stored hash format, the broker's login query.

Parametrized over SQLite and PostgreSQL (a fresh database of the session's real server).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, insert, select, update
from tests.fixtures.postgres import PostgresServer
from tests.server.conftest import Api

from thalovant_server.api.broker_accounts import BrokerAccounts
from thalovant_server.config import MQTT_BROKER_KINDS, ConfigError, ServerConfig
from thalovant_server.mqtt import hash_password, issue_client_credentials, issue_hub_credentials, verify_password
from thalovant_server.mqtt.credentials import is_mosquitto_hash
from thalovant_server.mqtt.embedded import EmbeddedBroker
from thalovant_server.mqtt.mosquitto import render_password_file
from thalovant_server.store import accounts, clients, hubs
from thalovant_server.store.directory import StoreDirectory
from thalovant_server.store.engine import Store, alembic_config, create_engine
from thalovant_server.store.hub_spec import normalise_spec
from thalovant_server.store.models import Client, Hub, utcnow


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of its own (the migration test needs one at revision 0001)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'legacy.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(server.create_database())


def _upgrade_to(revision: str) -> object:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    return run


@pytest.fixture
async def legacy_store(fresh_database_url: str) -> AsyncIterator[Store]:
    """A store migrated to 0001 only, as servers before the Mosquitto hashes left it."""
    engine = create_engine(fresh_database_url)
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_to("0001_initial"))  # type: ignore[arg-type]
    store = Store(engine)
    try:
        yield store
    finally:
        await store.close()


async def _hub(store: Store, *, mqtt: bool = True, active: bool = True) -> Hub:
    async with store.session() as session:
        user = await accounts.create_user(session, email=f"{uuid.uuid4().hex[:10]}@example.com", password_hash="x")
        workspace = (await accounts.workspace_ids(session, user.id))[0]
        return await hubs.create_hub(
            session,
            slug=f"h-{uuid.uuid4().hex[:10]}",
            name="hub",
            title="Hub",
            owner_id=user.id,
            workspace_id=workspace,
            spec=normalise_spec({"version": "1", "protocols": {"mqtt": mqtt}}),
            active=active,
        )


async def _legacy_hub(store: Store) -> Hub:
    """A hub row as a 0001 database holds it (the columns of that schema only), written with a
    plain INSERT: the ORM model has columns later migrations add."""
    hub = Hub(
        id=str(uuid.uuid4()),
        slug=f"h-{uuid.uuid4().hex[:10]}",
        public_ref=f"hub_{uuid.uuid4().hex[:10]}",
        name="hub",
        title="Hub",
        description="",
        visibility="workspace",
        active=True,
        domain=None,
        spec=normalise_spec({"version": "1", "protocols": {"mqtt": True}}),
        etag=uuid.uuid4().hex[:24],
        node_id=f"node-{uuid.uuid4().hex}",
        noise_private_key=b"\x02" * 32,
    )
    async with store.session() as session:
        user = await accounts.create_user(session, email=f"{uuid.uuid4().hex[:10]}@example.com", password_hash="x")
        hub.owner_id = user.id
        hub.workspace_id = (await accounts.workspace_ids(session, user.id))[0]
        hub.created_at = hub.updated_at = utcnow()
        columns = [c.name for c in Hub.__table__.columns if c.name != "runtime_group_id"]
        await session.execute(insert(Hub.__table__).values({name: getattr(hub, name) for name in columns}))
    return hub


async def _client(
    store: Store, hub: Hub, *, password_hash: str | None = None, active: bool = True
) -> tuple[Client, str]:
    client_id = str(uuid.uuid4())
    creds = issue_client_credentials(hub.id, client_id)
    async with store.session() as session:
        client = await clients.create_client(
            session,
            hub=hub,
            owner_id=hub.owner_id,
            workspace_id=hub.workspace_id,
            name=f"c-{client_id[:8]}",
            site_id="s",
            access_key_hash=hashlib.sha256(client_id.encode()).hexdigest(),
            psk=b"\x01" * 32,
            connection_type=None,
            spec_extras={},
            active=active,
            client_id=client_id,
            mqtt_username=creds.username,
            mqtt_password_hash=password_hash or creds.password_hash,
            mqtt_topic_prefix=creds.topic_prefix,
        )
    return client, creds.password


async def test_migration_0002_widens_the_hash_and_keeps_legacy_rows(legacy_store: Store) -> None:
    hub = await _legacy_hub(legacy_store)
    password = "legacy-broker-password"
    legacy_digest = hashlib.sha256(password.encode()).hexdigest()
    legacy, _ = await _client(legacy_store, hub, password_hash=legacy_digest)
    await legacy_store.migrate()  # 0001 -> head
    async with legacy_store.session() as session:
        assert await session.scalar(select(Client.mqtt_password_hash).where(Client.id == legacy.id)) == legacy_digest
    # The legacy digest still logs in (control plane and embedded broker); Mosquitto leaves it out.
    directory = StoreDirectory(legacy_store)
    found = await directory.find_mqtt_client(legacy.mqtt_username or "", password)
    assert found is not None and found.client_id == legacy.id
    broker = EmbeddedBroker(cert_file="unused.pem", key_file="unused.pem")
    keeper = BrokerAccounts(broker, legacy_store, issue_hub_credentials())
    assert await keeper.load() == 1
    assert broker.access.authenticate(legacy.mqtt_username, password)
    assert f"{legacy.mqtt_username}:" not in render_password_file(broker.access)
    # A Mosquitto hash (about 120 characters) now fits, on PostgreSQL too.
    fresh_hash = hash_password(password)
    assert len(fresh_hash) > 64
    async with legacy_store.session() as session:
        await session.execute(update(Client).where(Client.id == legacy.id).values(mqtt_password_hash=fresh_hash))
    async with legacy_store.session() as session:
        assert await session.scalar(select(Client.mqtt_password_hash).where(Client.id == legacy.id)) == fresh_hash
    assert await directory.find_mqtt_client(legacy.mqtt_username or "", password) is not None


async def test_provisioning_stores_a_mosquitto_hash(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner, spec={"version": "1", "protocols": {"mqtt": True}})
    client = await api.create_client(owner, hub["id"])
    mqtt = client["initial_identify"]["mqtt"]
    async with api.store.session() as session:
        row = await session.scalar(select(Client).where(Client.id == client["id"]))
    assert row is not None and row.mqtt_password_hash is not None
    assert is_mosquitto_hash(row.mqtt_password_hash) and verify_password(mqtt["password"], row.mqtt_password_hash)
    assert mqtt["password"] not in row.mqtt_password_hash
    assert row.mqtt_password_hash != hashlib.sha256(mqtt["password"].encode()).hexdigest()
    account = api.app.state.mqtt_broker.access.get(mqtt["username"])
    assert account is not None and account.password_hash == row.mqtt_password_hash
    assert account.topic_prefix == mqtt["topic_prefix"] == f"thalovant/{hub['id']}/{client['id']}"


async def test_mqtt_logins_are_active_clients_of_active_mqtt_hubs(fresh_database_url: str) -> None:
    store = await Store.open(fresh_database_url)
    try:
        served = await _hub(store)
        kept, _ = await _client(store, served)
        await _client(store, served, active=False)
        await _client(store, await _hub(store, mqtt=False))
        await _client(store, await _hub(store, active=False))
        other, _ = await _client(store, await _hub(store))
        async with store.session() as session:
            assert [c.id for c in await clients.mqtt_logins(session)] == [kept.id, other.id]
            assert [c.id for c in await clients.mqtt_logins(session, hub_id=served.id)] == [kept.id]
            assert [c.id for c in await clients.mqtt_logins(session, client_ids=[other.id, "nope"])] == [other.id]
            assert await clients.mqtt_logins(session, client_ids=[]) == []
    finally:
        await store.close()


def test_broker_kind_comes_from_options_then_environment(tmp_path: Path) -> None:
    assert MQTT_BROKER_KINDS == ("embedded", "mosquitto", "off")
    base = {"THALOVANT_DATA_DIR": str(tmp_path)}
    assert ServerConfig.from_env(environ=base).mqtt_broker == "embedded"
    assert ServerConfig.from_env(environ={**base, "THALOVANT_MQTT_BROKER": "Mosquitto"}).mqtt_broker == "mosquitto"
    legacy_off = ServerConfig.from_env(environ={**base, "THALOVANT_MQTT_ENABLED": "false"})
    assert legacy_off.mqtt_broker == "off" and not legacy_off.mqtt_enabled
    explicit = ServerConfig.from_env(mqtt_broker="off", environ={**base, "THALOVANT_MQTT_BROKER": "mosquitto"})
    assert explicit.mqtt_broker == "off"
    with pytest.raises(ConfigError, match="THALOVANT_MQTT_BROKER"):
        ServerConfig.from_env(environ={**base, "THALOVANT_MQTT_BROKER": "rabbit"})
    with pytest.raises(ConfigError):
        ServerConfig(data_dir=tmp_path, mqtt_broker="rabbit")
