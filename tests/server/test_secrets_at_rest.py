"""Secrets at rest: sealed PSKs, a private data directory, and a scan that finds no secret in clear.

A real ``serve`` process (embedded broker and Mosquitto) is driven the way users drive it: a
password sign-in, an API token, client identities minted by the server, chosen by the caller and
replayed through ``Idempotency-Key``, asks over WSS, HTTPS and MQTT. Then every file of its data
directory (copied while it ran, WAL included, and again after it stopped) and its log are
searched for every secret the run handed out, in every encoding a file could hold it in.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from tests.fixtures import legacy
from tests.fixtures.identities import trusting
from tests.fixtures.mosquitto import require_mosquitto
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.server import RunningServer

from thalovant import ThalovantClient, ThalovantIdentity
from thalovant.protocol.psk import derive_psk
from thalovant_server.api.provisioning import ClientRequest, provision_client
from thalovant_server.app import open_control_plane
from thalovant_server.config import ServerConfig
from thalovant_server.secrets import SealingKey
from thalovant_server.store import accounts, hubs
from thalovant_server.store.directory import StoreDirectory
from thalovant_server.store.engine import Store, create_engine
from thalovant_server.store.hub_spec import normalise_spec
from thalovant_server.store.models import Client, Hub
from thalovant_server.store.sealed import noise_static_key

JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."
KEY_FILES = {"server.key", "ca-key.pem", "server-key.pem"}
"""The only files that hold a key in clear: the sealing key itself and the TLS keys (0600, 0700 dir)."""


def encodings(secret: str | bytes) -> set[bytes]:
    """The forms a file could hold ``secret`` in: raw, hex, base64 (standard and URL-safe, padded or not)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = {raw}
    if isinstance(secret, bytes):
        forms.add(raw.hex().encode())
        forms.add(raw.hex().upper().encode())
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms.update({encoded, encoded.rstrip(b"=")})
    return {form for form in forms if len(form) >= 16}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (relative path -> bytes), read now."""
    files: dict[str, bytes] = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                files[str(path.relative_to(root))] = path.read_bytes()
            except FileNotFoundError:  # a WAL checkpointed away meanwhile
                continue
    return files


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return found


def assert_private(root: Path) -> None:
    for name, mode in modes(root).items():
        wanted = 0o700 if (root / name).is_dir() else 0o600
        assert mode == wanted, f"{name} is {mode:04o}, not {wanted:04o}"


def assert_no_secret(files: dict[str, bytes], named: dict[str, str | bytes]) -> None:
    for label, secret in named.items():
        for form in encodings(secret):
            holders = [name for name, content in files.items() if form in content]
            assert not holders, f"{label} in clear in {holders}"
    for name, content in files.items():
        if Path(name).name not in KEY_FILES:
            assert b"PRIVATE KEY" not in content, f"a private key in {name}"


def _api(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.api_url, verify=str(server.ca_file), timeout=60)


@pytest.fixture(params=["embedded", "mosquitto"])
def scanned_server(request: pytest.FixtureRequest, server_factory: Callable[..., RunningServer]) -> RunningServer:
    kind: str = request.param
    if kind == "mosquitto":
        require_mosquitto()
    return server_factory(["--log-level", "debug"], mqtt_broker=kind)


def test_a_run_leaves_no_secret_in_clear_in_the_data_directory_or_the_log(
    scanned_server: RunningServer, tmp_path: Path
) -> None:
    server = scanned_server
    named: dict[str, str | bytes] = {"demo password": server.demo_password}
    identities: list[dict[str, object]] = []
    with _api(server) as http:
        login = http.post("/v1/auth/token", json={"email": server.demo_email, "password": server.demo_password})
        assert login.status_code == 200, login.text
        session_token = login.json()["access_token"]
        named["session token"] = session_token
        auth = {"authorization": f"Bearer {session_token}"}
        minted = http.post("/v1/auth/api-tokens", json={"name": "scan"}, headers=auth)
        assert minted.status_code == 201, minted.text
        named["api token"] = minted.json()["access_token"]
        hub = http.get("/v1/public/hubs/joke-garden", headers=auth).json()
        chosen = {"apiKey": secrets.token_urlsafe(32), "password": secrets.token_urlsafe(32)}
        for index, spec in enumerate([{}, chosen]):
            name = f"scan-{index}-{secrets.token_hex(3)}"
            body = {"hub_id": hub["id"], "name": name, "spec": {"version": "1", **spec}}
            headers = {**auth, "Idempotency-Key": f"scan-{secrets.token_hex(8)}"}
            created = http.post("/v1/clients", json=body, headers=headers)
            assert created.status_code == 201, created.text
            replay = http.post("/v1/clients", json=body, headers=headers)
            assert replay.json()["initial_identify"] == created.json()["initial_identify"]
            identities.append(created.json()["initial_identify"])
    out = tmp_path / "admin-identity.json"
    server.admin("client", "create", "--hub", "joke-garden", "--name", f"scan-admin-{secrets.token_hex(3)}",
                 "--out", str(out))  # fmt: skip
    identities.append(json.loads(out.read_text()))
    for index, identity in enumerate(identities):
        mqtt = identity["mqtt"]
        assert isinstance(mqtt, dict)
        named |= {
            f"access key {index}": str(identity["access_key"]),
            f"client password {index}": str(identity["password"]),
            f"MQTT password {index}": str(mqtt["password"]),
        }
    with trusting(server):
        for index, identity in enumerate(identities):
            for carrier in ("wss", "https", "mqtt"):
                with ThalovantClient(
                    ThalovantIdentity.from_mapping(identity), protocol=carrier,
                    noise_state_dir=tmp_path / f"noise-{index}", reply_settle_seconds=0,
                ) as client:  # fmt: skip
                    assert client.ask("Tell me a short clean joke.").text == JOKE
    assert_private(server.data_dir)
    while_running = snapshot(server.data_dir)
    assert any(name.endswith("-wal") for name in while_running) or server.mqtt_broker != "embedded"
    server.stop()
    assert_private(server.data_dir)
    after = snapshot(server.data_dir)

    # what only the store knows: the server's Noise key and the PSKs it derived
    async def derived() -> dict[str, str | bytes]:
        found: dict[str, str | bytes] = {}
        async with open_control_plane(ServerConfig(data_dir=server.data_dir)) as plane:
            found["server Noise private key"] = plane.noise_key.private
            async with plane.store.session() as session:
                node_id = await session.scalar(sa.select(Hub.node_id).where(Hub.id == hub["id"]))
        assert node_id is not None
        for index, identity in enumerate(identities):
            found[f"PSK {index}"] = await asyncio.to_thread(derive_psk, str(identity["password"]), node_id)
        return found

    named |= asyncio.run(derived())
    assert_no_secret(while_running, named)
    assert_no_secret(after, named)
    assert_no_secret({"server log": "".join(server.output).encode()}, named)


# -- migration of rows written before the PSKs were sealed ------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'thalovant.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(server.create_database())


@pytest.fixture
async def store_at_0002(fresh_database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(fresh_database_url)
    async with engine.begin() as connection:
        await connection.run_sync(legacy.upgrade_to("0002_mqtt_password_hash"))
    store = Store(engine)
    try:
        yield store
    finally:
        await store.close()


async def test_migration_seals_existing_psks_and_leaves_no_raw_copy(store_at_0002: Store, tmp_path: Path) -> None:
    hub = await legacy.insert_hub(store_at_0002.engine)
    rows = [await legacy.insert_client(store_at_0002.engine, hub) for _ in range(3)]
    sealing = SealingKey.load_or_create(tmp_path / "data")

    await store_at_0002.migrate(sealing)

    directory = StoreDirectory(store_at_0002, noise_key=await noise_static_key(store_at_0002, sealing), sealing=sealing)
    for row in rows:
        found = await directory.find_client(hub.id, row.access_key)
        assert found is not None and found.psk == row.psk
    async with store_at_0002.session() as session:
        stored = {client.id: bytes(client.psk_sealed) for client in await session.scalars(sa.select(Client))}
        columns = await session.run_sync(lambda s: sa.inspect(s.connection()).get_columns("clients"))
    assert "psk" not in {column["name"] for column in columns}
    for row in rows:
        assert row.psk not in stored[row.id]
    if store_at_0002.dialect == "sqlite":
        database = Path(str(store_at_0002.engine.url.database))
        files = {path.name: path.read_bytes() for path in database.parent.glob(database.name + "*")}
        assert_no_secret(files, {f"raw PSK {row.id}": row.psk for row in rows})


async def test_a_sealed_psk_opens_for_its_own_client_only(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "data", mqtt_broker="off")
    async with open_control_plane(config) as plane:
        hub = await new_hub(plane.store)
        made = [
            await provision_client(
                plane, hub=hub, owner_id=hub.owner_id, workspace_id=hub.workspace_id, request=ClientRequest(name=n)
            )
            for n in ("one", "two")
        ]
        directory = plane.directory()
        keys = [str(m.body["initial_identify"]["access_key"]) for m in made]
        assert all([await directory.find_client(hub.id, key) for key in keys])
        one, two = (m.client.id for m in made)
        async with plane.store.session() as session:
            sealed = {c.id: c.psk_sealed for c in await session.scalars(sa.select(Client))}
            await session.execute(sa.update(Client).where(Client.id == one).values(psk_sealed=sealed[two]))
        assert await directory.find_client(hub.id, keys[0]) is None  # refused, not served with another's PSK
        assert await directory.find_client(hub.id, keys[1]) is not None


async def new_hub(store: Store) -> Hub:
    async with store.session() as session:
        user = await accounts.create_user(session, email=f"{secrets.token_hex(5)}@example.com", password_hash="x")
        workspace = (await accounts.workspace_ids(session, user.id))[0]
        return await hubs.create_hub(
            session, slug=f"sealed-{secrets.token_hex(3)}", name="sealed", title="Sealed", owner_id=user.id,
            workspace_id=workspace, spec=normalise_spec({"version": "1", "skills": ["jokes"]}),
        )  # fmt: skip


# -- the data directory's modes ---------------------------------------------------------------------


@pytest.fixture
def loose_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory as older servers left it: 0755, its files 0644."""
    data = tmp_path / "old"
    asyncio.run(_init(data))
    data.chmod(0o755)
    for path in data.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield data


async def _init(data: Path) -> None:
    async with open_control_plane(ServerConfig(data_dir=data, mqtt_broker="off")):
        pass


def test_a_loose_data_directory_is_made_private_on_start(loose_data_dir: Path) -> None:
    assert modes(loose_data_dir)["thalovant.db"] == 0o644
    asyncio.run(_init(loose_data_dir))
    assert_private(loose_data_dir)
