"""Hub references never collide: id, public_ref and slug are disjoint by shape, looked up one at a time.

Before, account A could create a hub whose slug was B's hub id, and B's ``GET /v1/hubs/{id}``,
``POST /v1/clients`` and ``DELETE`` could reach A's hub. Now such a slug is refused (and an
existing one renamed by migration ``0003c``), and the hub runtime keeps hubs under their canonical
id only, whatever spellings clients invent.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from tests.fixtures import legacy
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.server import RunningServer
from tests.interop.test_public_sdk_wss import result_of
from tests.server.conftest import Api
from tests.server.test_api_auth import assert_problem

from thalovant_server.hub.runtime import HubRuntime
from thalovant_server.secrets import SealingKey
from thalovant_server.store import hubs
from thalovant_server.store.engine import Store, create_engine
from thalovant_server.store.models import Hub


def id_spellings(hub_id: str) -> list[str]:
    """Ways to write an id that are not its canonical spelling but that ``uuid.UUID`` reads."""
    bare = hub_id.replace("-", "")
    return [bare, f"{{{hub_id}}}", f"urn:uuid:{hub_id}", "-".join([bare[:16], bare[16:]]), "0x" + bare[2:]]


async def test_a_slug_spelled_like_a_hub_id_is_refused_and_the_owner_keeps_their_hub(api: Api) -> None:
    victim, attacker = await api.account(), await api.account()
    target = await api.create_hub(victim, name=f"victim-{secrets.token_hex(3)}")
    bare = target["id"].replace("-", "")
    for slug in [target["id"], target["id"].upper(), bare, f"{bare[:16]}-{bare[16:]}", target["public_ref"]]:
        body = {"name": "takeover", "slug": slug, "spec": {"version": "1"}}
        refused = await api.http.post("/v1/hubs", json=body, headers=attacker.headers)
        assert refused.status_code == 422, (slug, refused.text)
    # a name that slugifies into an id's spelling gets a slug of its own instead
    named = await api.http.post("/v1/hubs", json={"name": target["id"], "spec": {"version": "1"}},
                                headers=attacker.headers)  # fmt: skip
    assert named.status_code == 201 and hubs.valid_slug(named.json()["slug"])
    own = await api.create_hub(attacker, name=f"own-{secrets.token_hex(3)}")
    patched = await api.http.patch(
        f"/v1/hubs/{own['id']}", json={"slug": target["id"]}, headers={**attacker.headers, "If-Match": own["etag"]}
    )
    assert patched.status_code == 422, patched.text

    fetched = await api.http.get(f"/v1/hubs/{target['id']}", headers=victim.headers)
    assert fetched.status_code == 200 and fetched.json()["id"] == target["id"]
    client = await api.create_client(victim, target["id"])
    assert client["hub_id"] == target["id"]
    deleted = await api.http.delete(
        f"/v1/hubs/{target['id']}", headers={**victim.headers, "If-Match": fetched.json()["etag"]}
    )
    assert deleted.status_code == 204
    assert (await api.http.get(f"/v1/hubs/{own['id']}", headers=attacker.headers)).status_code == 200


async def test_each_reference_resolves_in_its_own_namespace_only(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner, name=f"refs-{secrets.token_hex(3)}", visibility="public")
    for ref in (hub["id"], hub["id"].upper(), hub["public_ref"], hub["slug"]):
        found = await api.http.get(f"/v1/public/hubs/{ref}")
        assert found.status_code == 200 and found.json()["id"] == hub["id"], ref
    for ref in id_spellings(hub["id"]):
        assert_problem(await api.http.get(f"/v1/public/hubs/{ref}"), 404, "Hub not found")


def _hyphenated(value: uuid.UUID, cuts: list[int]) -> str:
    text = value.hex
    for cut in sorted(set(cuts), reverse=True):
        text = text[:cut] + "-" + text[cut:]
    return text


@given(
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,61}[a-z0-9]", fullmatch=True)
    | st.uuids().map(str)
    | st.uuids().map(lambda value: value.hex)
    | st.builds(_hyphenated, st.uuids(), st.lists(st.integers(1, 31), max_size=6))
)
def test_no_valid_slug_is_an_id_and_no_id_is_a_valid_slug(text: str) -> None:
    if hubs.valid_slug(text):
        assert not hubs.is_uuid(text) and not hubs.PUBLIC_REF.match(text)
        try:
            uuid.UUID(text)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{text!r} is a slug uuid.UUID reads as an id")


async def test_the_runtime_keeps_only_canonical_hub_ids(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner, name=f"cache-{secrets.token_hex(3)}")
    client = await api.create_client(owner, hub["id"])
    runtime: HubRuntime = api.app.state.runtime
    key = client["initial_identify"]["access_key"]
    authorization = base64.b64encode(f"probe:{key}".encode()).decode()
    spellings = [hub["id"], hub["id"].upper(), *id_spellings(hub["id"])]
    spellings += [str(uuid.uuid4()) for _ in range(50)] + [f"nohub-{n}" for n in range(50)]
    for spelling in spellings:
        answer = await api.http.post(f"/hubs/{spelling}/connect", params={"authorization": authorization})
        assert answer.status_code == (200 if spelling.lower() == hub["id"] else 401), spelling
        await api.http.post(f"/hubs/{spelling}/disconnect", params={"authorization": authorization})
    assert runtime.loaded_hubs() == [hub["id"]]


# -- migration 0003c -------------------------------------------------------------------------------


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


async def test_migration_renames_slugs_spelled_like_ids(store_at_0002: Store, tmp_path: Path) -> None:
    victim = await legacy.insert_hub(store_at_0002.engine, order=0)
    squatter = await legacy.insert_hub(store_at_0002.engine, order=1, slug=victim.id)
    taken = await legacy.insert_hub(store_at_0002.engine, order=2, slug=f"hub-{victim.id.replace('-', '')}")
    bare = await legacy.insert_hub(store_at_0002.engine, order=3, slug=victim.id.replace("-", ""))
    await store_at_0002.migrate(SealingKey.load_or_create(tmp_path / "data"))
    async with store_at_0002.session() as session:
        slugs = dict((await session.execute(sa.select(Hub.id, Hub.slug))).tuples().all())
        assert slugs[victim.id] == victim.slug and slugs[taken.id] == taken.slug
        assert slugs[squatter.id] == f"hub-{victim.id}"
        assert slugs[bare.id] == f"hub-{victim.id.replace('-', '')}-2"
        assert all(hubs.valid_slug(slug) for slug in slugs.values())
        found = await hubs.hub_by_ref(session, victim.id)
        assert found is not None and found.id == victim.id


# -- through the public SDK 0.9.7 ------------------------------------------------------------------


@pytest.mark.interop
def test_the_public_sdk_reaches_its_own_hub_when_another_account_tries_its_id_as_a_slug(
    run_public_sdk: Callable[..., Any], server: RunningServer
) -> None:
    with httpx.Client(base_url=server.api_url, verify=str(server.ca_file), timeout=60) as http:
        login = http.post("/v1/auth/token", json={"email": server.demo_email, "password": server.demo_password})
        demo = {"authorization": f"Bearer {login.json()['access_token']}"}
        mine = http.post("/v1/hubs", json={"name": f"mine-{secrets.token_hex(3)}", "spec": {"version": "1",
                         "skills": ["jokes"]}}, headers=demo).json()  # fmt: skip
        # the demo account plays both sides here: no slug may shadow an id, whoever owns it
        squat = http.post("/v1/hubs", json={"name": "squat", "slug": mine["id"], "spec": {"version": "1"}},
                          headers=demo)  # fmt: skip
        assert squat.status_code == 422, squat.text
    code = f"""
import json
from thalovant import ThalovantControlPlane
api = ThalovantControlPlane({server.api_url!r})
api.login({server.demo_email!r}, {server.demo_password!r})
hub = api.get_hub({mine["id"]!r})
made = api.create_client_identity({mine["id"]!r}, name="refs-{secrets.token_hex(3)}")
print("RESULT " + json.dumps({{"hub": hub["id"], "client_hub": made.client["hub_id"]}}))
"""
    result = result_of(run_public_sdk(code, ca_file=server.ca_file))
    assert result == {"hub": mine["id"], "client_hub": mine["id"]}
