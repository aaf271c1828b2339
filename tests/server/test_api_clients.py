"""Client identities: provisioning (SDK-shaped), idempotent replay, etags, isolation, directory."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import select
from tests.server.conftest import Api
from tests.server.test_api_auth import assert_problem
from tests.server.test_api_hubs import RecordingRuntime, unique

from thalovant.protocol.psk import derive_psk
from thalovant_server.store.models import Client


def sdk_body(hub_id: str, name: str, **spec: object) -> dict[str, object]:
    """What ``create_client_identity`` sends: locally minted secrets, version "1"."""
    return {
        "hub_id": hub_id,
        "name": name,
        "spec": {
            "version": "1",
            "apiKey": secrets.token_urlsafe(32),
            "password": secrets.token_urlsafe(32),
            "siteId": name.replace(" ", "-"),
            **spec,
        },
        "active": True,
    }


async def test_create_client_like_the_sdk(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner, spec={"version": "1", "protocols": {"wss": True, "http": True, "mqtt": True}})
    body = sdk_body(hub["id"], "checkout kiosk", connection_type="developer", label="till 3")
    response = await api.http.post(
        "/v1/clients", json=body, headers={**owner.headers, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 201, response.text
    client = response.json()
    spec = body["spec"]
    assert isinstance(spec, dict)
    assert client["hub_id"] == hub["id"] and client["name"] == "checkout kiosk" and client["etag"]
    assert client["spec"]["connection_type"] == "developer" and client["spec"]["label"] == "till 3"
    assert spec["apiKey"] not in str(client["spec"]) and spec["password"] not in str(client["spec"])
    identify = client["initial_identify"]
    assert identify["access_key"] == spec["apiKey"]
    assert identify["password"] == spec["password"]
    assert identify["site_id"] == "checkout-kiosk"
    assert identify["default_master"] == "https://127.0.0.1"
    assert identify["default_port"] == 8443
    assert identify["data_plane_endpoints"] == {
        "wss": f"wss://127.0.0.1:8443/hubs/{hub['id']}",
        "https": f"https://127.0.0.1:8443/hubs/{hub['id']}",
        "mqtt": api.mqtt_endpoint,
    }
    assert identify["protocols"] == {"wss": True, "https": True, "mqtt": True}
    mqtt = identify["mqtt"]
    assert mqtt["endpoint"] == api.mqtt_endpoint and mqtt["qos"] == 1 and mqtt["tls"] is True
    assert mqtt["username"] and mqtt["password"] and mqtt["topic_prefix"].startswith("thalovant/")
    assert "operation" not in client


async def test_server_mints_credentials_and_stores_only_derived_material(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner)
    client = await api.create_client(owner, hub["id"], name="minted", spec={"version": "1"})
    identify = client["initial_identify"]
    assert len(identify["access_key"]) == 43 and len(identify["password"]) == 43
    assert "mqtt" not in identify and "mqtt" not in identify["data_plane_endpoints"]
    async with api.store.session() as session:
        row = await session.scalar(select(Client).where(Client.id == client["id"]))
    assert row is not None
    stored = " ".join(str(getattr(row, column.key)) for column in Client.__table__.columns)
    assert identify["access_key"] not in stored and identify["password"] not in stored
    directory = api.directory()
    hub_keys = await directory.load_hub(hub["id"])
    assert hub_keys is not None and hub_keys.skills == ("jokes",) and hub_keys.protocols == ("wss", "http")
    found = await directory.find_client(hub["id"], identify["access_key"])
    assert found is not None
    assert found.psk == derive_psk(identify["password"], hub_keys.node_id)
    assert found.site_id == "minted" and found.pinned_key is None and found.allowed_types == frozenset()
    assert await directory.find_client(str(uuid.uuid4()), identify["access_key"]) is None
    assert await directory.find_client(hub["id"], "wrong-key") is None
    await directory.pin_client_key(found.client_id, b"\x07" * 32)
    pinned = await directory.find_client(hub["id"], identify["access_key"])
    assert pinned is not None and pinned.pinned_key == b"\x07" * 32
    again = await directory.load_hub(hub["id"])
    assert again is not None and again.static.private == hub_keys.static.private and again.node_id == hub_keys.node_id


async def test_mqtt_logins_resolve_to_their_client(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner, spec={"version": "1", "protocols": {"mqtt": True}})
    client = await api.create_client(owner, hub["id"])
    mqtt = client["initial_identify"]["mqtt"]
    directory = api.directory()
    account = await directory.find_mqtt_client(mqtt["username"], mqtt["password"])
    assert account is not None
    assert (account.client_id, account.hub_id, account.topic_prefix) == (client["id"], hub["id"], mqtt["topic_prefix"])
    assert await directory.find_mqtt_client(mqtt["username"], "wrong") is None
    assert await directory.find_mqtt_client("nobody", mqtt["password"]) is None


async def test_replay_returns_the_original_identity(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner)
    headers = {**owner.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await api.http.post("/v1/clients", json=sdk_body(hub["id"], "retry me"), headers=headers)
    retry = await api.http.post("/v1/clients", json=sdk_body(hub["id"], "retry me"), headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    other = await api.http.post("/v1/clients", json=sdk_body(hub["id"], "another name"), headers=headers)
    assert (
        assert_problem(other, 409, "This Idempotency-Key was already used with a different request body.")["code"]
        == "idempotency_key_reused"
    )
    listed = (await api.http.get("/v1/clients", params={"hub_id": hub["id"]}, headers=owner.headers)).json()
    assert [client["id"] for client in listed["data"]] == [first.json()["id"]]


async def test_duplicate_names_and_bad_connection_types(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner)
    await api.create_client(owner, hub["id"], name="front door")
    duplicate = await api.http.post("/v1/clients", json=sdk_body(hub["id"], "front door"), headers=owner.headers)
    assert_problem(duplicate, 409, "Client name already exists")
    bad = await api.http.post(
        "/v1/clients", json=sdk_body(hub["id"], "tv", connection_type="toaster"), headers=owner.headers
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "schema_validation_failed"
    assert "connection_type" in bad.json()["detail"]
    first = await api.create_client(owner, hub["id"], name="ha", spec={"connection_type": "home_assistant"})
    second = await api.http.post(
        "/v1/clients", json=sdk_body(hub["id"], "ha2", connection_type="home_assistant"), headers=owner.headers
    )
    problem = assert_problem(second, 409, "This hub is already linked to a Home Assistant.")
    assert problem["code"] == "home_assistant_already_linked" and problem["client_id"] == first["id"]
    unknown_hub = await api.http.post("/v1/clients", json=sdk_body(str(uuid.uuid4()), "x"), headers=owner.headers)
    assert_problem(unknown_hub, 404, "Hub not found")


async def test_get_list_and_delete_with_etags(api: Api) -> None:
    api.app.state.runtime = runtime = RecordingRuntime()
    owner = await api.account()
    hub, other_hub = await api.create_hub(owner), await api.create_hub(owner)
    client = await api.create_client(owner, hub["id"])
    await api.create_client(owner, other_hub["id"])
    url = f"/v1/clients/{client['id']}"
    got = await api.http.get(url, headers=owner.headers)
    assert got.status_code == 200
    assert got.json()["etag"] == client["etag"] and "initial_identify" not in got.json()
    assert client["initial_identify"]["password"] not in got.text
    filtered = await api.http.get(
        "/v1/clients", params={"hub_id": hub["id"], "include_spec": "false"}, headers=owner.headers
    )
    rows = filtered.json()["data"]
    assert [row["id"] for row in rows] == [client["id"]] and "spec" not in rows[0]
    everything = (await api.http.get("/v1/clients", headers=owner.headers)).json()
    assert everything["meta"]["count"] == 2 and "spec" in everything["data"][0]
    assert_problem(await api.http.delete(url, headers=owner.headers), 412, "ETag mismatch")
    assert_problem(await api.http.delete(url, headers={**owner.headers, "If-Match": "etag-1"}), 412, "ETag mismatch")
    deleted = await api.http.delete(url, headers={**owner.headers, "If-Match": client["etag"]})
    assert deleted.status_code == 204
    assert runtime.revoked == [client["id"]]
    assert_problem(await api.http.get(url, headers=owner.headers), 404, "Client not found")
    gone = await api.http.delete(url, headers={**owner.headers, "If-Match": client["etag"]})
    assert_problem(gone, 404, "Client not found")
    assert await api.directory().find_client(hub["id"], client["initial_identify"]["access_key"]) is None


async def test_workspace_isolation_of_clients(api: Api) -> None:
    alice, bob = await api.account(), await api.account()
    private = await api.create_hub(alice, name=unique("private"))
    public = await api.create_hub(alice, name=unique("public"), visibility="public")
    alices = await api.create_client(alice, private["id"])
    url = f"/v1/clients/{alices['id']}"
    assert_problem(await api.http.get(url, headers=bob.headers), 404, "Client not found")
    assert_problem(
        await api.http.delete(url, headers={**bob.headers, "If-Match": alices["etag"]}), 404, "Client not found"
    )
    assert (await api.http.get("/v1/clients", headers=bob.headers)).json()["data"] == []
    hub_filter = await api.http.get("/v1/clients", params={"hub_id": private["id"]}, headers=bob.headers)
    assert hub_filter.json()["data"] == []
    on_private = await api.http.post("/v1/clients", json=sdk_body(private["id"], "sneaky"), headers=bob.headers)
    assert_problem(on_private, 404, "Hub not found")
    bobs = await api.create_client(bob, public["id"], name="visitor")
    assert bobs["workspace_id"] != alices["workspace_id"]
    # the hub's owner sees (and may revoke) every client of her hub, whoever made it
    alice_view = (await api.http.get("/v1/clients", params={"hub_id": public["id"]}, headers=alice.headers)).json()
    assert [row["id"] for row in alice_view["data"]] == [bobs["id"]]
