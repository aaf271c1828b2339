"""Hubs: public discovery, workspace listing, create/patch/delete with etags, isolation."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from tests.server.conftest import Api
from tests.server.test_api_auth import assert_problem

from thalovant_server.store.models import Hub


class RecordingRuntime:
    """Stands in for the hub runtime: records what the control plane tells it."""

    def __init__(self) -> None:
        self.revoked: list[str] = []
        self.changed: list[str] = []
        self.closed = False

    async def client_revoked(self, client_id: str) -> None:
        self.revoked.append(client_id)

    async def hub_changed(self, hub_id: str) -> None:
        self.changed.append(hub_id)

    async def close(self) -> None:
        self.closed = True


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_public_listing_shows_public_active_hubs_only(api: Api) -> None:
    owner = await api.account()
    public = await api.create_hub(owner, name=unique("pub"), visibility="public")
    private = await api.create_hub(owner, name=unique("priv"))
    inactive = await api.create_hub(owner, name=unique("off"), visibility="public", active=False)
    response = await api.http.get("/v1/public/hubs", params={"limit": "100"})
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"data", "meta", "links"}
    ids = {hub["id"] for hub in page["data"]}
    assert public["id"] in ids
    assert private["id"] not in ids and inactive["id"] not in ids
    entry = next(hub for hub in page["data"] if hub["id"] == public["id"])
    assert {"id", "slug", "title", "public_ref"} <= set(entry)
    assert "etag" not in entry and "owner_id" not in entry
    assert entry["public_ref"].startswith("hub_") and len(entry["public_ref"]) == 14


async def test_public_pages_follow_cursors_without_gaps(api: Api) -> None:
    owner = await api.account()
    made = [await api.create_hub(owner, name=unique("page"), visibility="public") for _ in range(7)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await api.http.get("/v1/public/hubs", params=params)).json()
        pages += 1
        assert page["meta"]["count"] == len(page["data"]) <= 3
        seen.extend(hub["id"] for hub in page["data"])
        cursor = page["meta"]["next"]
        if cursor is None:
            assert page["links"]["next"] is None
            break
        assert page["links"]["next"].startswith("/v1/public/hubs?")
        assert "cursor=" in page["links"]["next"]
    assert len(seen) == len(set(seen))
    assert [hub["id"] for hub in made] == [hub_id for hub_id in seen if hub_id in {h["id"] for h in made}]
    assert pages >= 3


async def test_public_limits_and_bad_cursor(api: Api) -> None:
    assert (await api.http.get("/v1/public/hubs", params={"limit": "100"})).status_code == 200
    too_many = await api.http.get("/v1/public/hubs", params={"limit": "101"})
    assert_problem(too_many, 422, "Request validation failed")
    bad = await api.http.get("/v1/public/hubs", params={"cursor": "not-a-cursor!"})
    assert assert_problem(bad, 400, "Invalid cursor")["code"] == "invalid_cursor"


async def test_public_get_by_slug_id_or_public_ref(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner, name=unique("Joke Garden"), visibility="public")
    for ref in (hub["slug"], hub["id"], hub["public_ref"]):
        response = await api.http.get(f"/v1/public/hubs/{ref}")
        assert response.status_code == 200
        assert response.json()["id"] == hub["id"]
    private = await api.create_hub(owner, name=unique("hidden"))
    for ref in (private["slug"], private["id"], "no-such-hub"):
        assert_problem(await api.http.get(f"/v1/public/hubs/{ref}"), 404, "Hub not found")


async def test_create_hub_validates_spec_and_answers_the_resource(api: Api) -> None:
    owner = await api.account()
    name = unique("Daily Desk")
    hub = await api.create_hub(
        owner,
        name=name,
        spec={"version": "2", "protocols": {"websocket": "on", "https": False, "mqtt": {"enabled": 1 == 1}}},
    )
    assert hub["name"] == name and hub["slug"] == name.lower().replace(" ", "-")
    assert hub["visibility"] == "workspace" and hub["active"] is True
    assert hub["spec"]["protocols"] == {"wss": {"enabled": True}, "http": {"enabled": False}, "mqtt": {"enabled": True}}
    assert hub["data_plane_endpoints"] == {
        "wss": f"wss://127.0.0.1:8443/hubs/{hub['id']}",
        "mqtt": api.mqtt_endpoint,
    }
    assert hub["owner_id"] == owner.user_id and hub["etag"] and hub["domain"] is None
    for spec in ({}, {"version": ""}, {"version": 3}):
        response = await api.http.post("/v1/hubs", json={"name": unique("bad"), "spec": spec}, headers=owner.headers)
        assert response.status_code == 422
        assert response.json()["code"] == "schema_validation_failed"
        assert response.json()["detail"].startswith("Schema validation failed")
    missing = await api.http.post("/v1/hubs", json={"spec": {"version": "1"}}, headers=owner.headers)
    body = assert_problem(missing, 422, "Request validation failed")
    assert body["errors"][0]["loc"] == ["body", "name"]
    duplicate = await api.http.post(
        "/v1/hubs", json={"name": "x", "slug": hub["slug"], "spec": {"version": "1"}}, headers=owner.headers
    )
    assert_problem(duplicate, 409, "Hub slug already exists")


async def test_create_hub_is_idempotent_per_key(api: Api) -> None:
    owner = await api.account()
    body = {"name": unique("idem"), "spec": {"version": "1"}}
    headers = {**owner.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await api.http.post("/v1/hubs", json=body, headers=headers)
    again = await api.http.post("/v1/hubs", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    changed = await api.http.post("/v1/hubs", json={**body, "title": "other"}, headers=headers)
    assert (
        assert_problem(changed, 409, "This Idempotency-Key was already used with a different request body.")["code"]
        == "idempotency_key_reused"
    )
    listed = (await api.http.get("/v1/hubs", headers=owner.headers)).json()["data"]
    assert [hub["id"] for hub in listed] == [first.json()["id"]]


async def test_list_hubs_is_the_workspace_with_owner_filter(api: Api) -> None:
    alice, bob = await api.account(), await api.account()
    mine = [await api.create_hub(alice, name=unique("a")) for _ in range(3)]
    await api.create_hub(alice, name=unique("a-public"), visibility="public")
    theirs = await api.create_hub(bob, name=unique("b"))
    page = (await api.http.get("/v1/hubs", params={"limit": "25"}, headers=alice.headers)).json()
    ids = [hub["id"] for hub in page["data"]]
    assert ids[:3] == [hub["id"] for hub in mine] and len(ids) == 4
    assert theirs["id"] not in ids
    assert all("etag" in hub for hub in page["data"])
    by_owner = await api.http.get("/v1/hubs", params={"owner_id": bob.user_id}, headers=alice.headers)
    assert by_owner.json()["data"] == []
    two = (await api.http.get("/v1/hubs", params={"limit": "2"}, headers=alice.headers)).json()
    rest = (await api.http.get("/v1/hubs", params={"cursor": two["meta"]["next"]}, headers=alice.headers)).json()
    assert [h["id"] for h in two["data"] + rest["data"]] == ids


async def test_patch_requires_current_etag_and_keeps_name(api: Api) -> None:
    api.app.state.runtime = runtime = RecordingRuntime()
    owner = await api.account()
    hub = await api.create_hub(owner)
    url = f"/v1/hubs/{hub['id']}"
    assert_problem(await api.http.patch(url, json={"title": "T"}, headers=owner.headers), 412, "ETag mismatch")
    stale = {**owner.headers, "If-Match": "nope"}
    assert_problem(await api.http.patch(url, json={"title": "T"}, headers=stale), 412, "ETag mismatch")
    current = {**owner.headers, "If-Match": f'W/"{hub["etag"]}"'}
    renamed = await api.http.patch(url, json={"name": "other"}, headers=current)
    assert_problem(renamed, 400, "Name cannot be changed after hub creation")
    domain = await api.http.patch(url, json={"domain": "x.example"}, headers=current)
    assert_problem(domain, 400, "Domain cannot be changed after hub creation")
    patched = await api.http.patch(
        url,
        json={"name": hub["name"], "title": "New title", "visibility": "public", "spec": {"version": "3"}},
        headers=current,
    )
    assert patched.status_code == 200
    body = patched.json()
    assert body["title"] == "New title" and body["visibility"] == "public" and body["spec"]["version"] == "3"
    assert body["etag"] != hub["etag"]
    assert runtime.changed == [hub["id"]]
    again = await api.http.patch(url, json={"title": "x"}, headers={**owner.headers, "If-Match": hub["etag"]})
    assert_problem(again, 412, "ETag mismatch")
    plain = await api.http.patch(url, json={"active": False}, headers={**owner.headers, "If-Match": body["etag"]})
    assert plain.status_code == 200 and plain.json()["active"] is False


async def test_delete_hub_deletes_its_clients(api: Api) -> None:
    api.app.state.runtime = runtime = RecordingRuntime()
    owner = await api.account()
    hub = await api.create_hub(owner)
    client = await api.create_client(owner, hub["id"])
    url = f"/v1/hubs/{hub['id']}"
    assert_problem(await api.http.delete(url, headers=owner.headers), 412, "ETag mismatch")
    deleted = await api.http.delete(url, headers={**owner.headers, "If-Match": f'"{hub["etag"]}"'})
    assert deleted.status_code == 204
    assert_problem(await api.http.get(url, headers=owner.headers), 404, "Hub not found")
    assert_problem(await api.http.get(f"/v1/clients/{client['id']}", headers=owner.headers), 404, "Client not found")
    assert runtime.revoked == [client["id"]]
    assert runtime.changed == [hub["id"]]


async def test_workspace_isolation_of_hubs(api: Api) -> None:
    alice, bob = await api.account(), await api.account()
    private = await api.create_hub(alice, name=unique("secret"))
    public = await api.create_hub(alice, name=unique("shared"), visibility="public")
    for ref in (private["id"], private["slug"]):
        assert_problem(await api.http.get(f"/v1/hubs/{ref}", headers=bob.headers), 404, "Hub not found")
    seen = (await api.http.get("/v1/hubs", headers=bob.headers)).json()["data"]
    assert seen == []
    public_view = await api.http.get(f"/v1/hubs/{public['id']}", headers=bob.headers)
    assert public_view.status_code == 200
    assert "etag" not in public_view.json() and "workspace_id" not in public_view.json()
    for hub in (private, public):
        headers = {**bob.headers, "If-Match": hub["etag"]}
        url = f"/v1/hubs/{hub['id']}"
        assert_problem(await api.http.patch(url, json={"title": "x"}, headers=headers), 404, "Hub not found")
        assert_problem(await api.http.delete(url, headers=headers), 404, "Hub not found")
    own_view: dict[str, Any] = (await api.http.get(f"/v1/hubs/{private['id']}", headers=alice.headers)).json()
    assert own_view["etag"] == private["etag"]


async def test_inactive_public_hub_is_hidden_from_other_workspaces(api: Api) -> None:
    alice, bob = await api.account(), await api.account()
    hub = await api.create_hub(alice, name=unique("sleepy"), visibility="public")
    async with api.store.session() as session:
        await session.execute(update(Hub).where(Hub.id == hub["id"]).values(active=False))
    assert_problem(await api.http.get(f"/v1/hubs/{hub['id']}", headers=bob.headers), 404, "Hub not found")
    assert (await api.http.get(f"/v1/hubs/{hub['id']}", headers=alice.headers)).status_code == 200
