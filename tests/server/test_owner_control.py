"""Owner control in the control plane: who sees and revokes which clients, and what a private hub admits.

The end-to-end story (live sessions, the public SDK) is tests/interop/test_public_sdk_owner_control.py; here
the API and the store answer on SQLite and PostgreSQL, and the broker's accounts follow.
"""

from __future__ import annotations

import secrets
from typing import Any

from tests.server.conftest import Account, Api
from tests.server.test_api_auth import assert_problem

MQTT_SPEC = {"version": "1", "skills": ["jokes"], "protocols": {"mqtt": True}}


async def _patch(api: Api, account: Account, hub: dict[str, Any], **fields: Any) -> dict[str, Any]:
    current = (await api.http.get(f"/v1/hubs/{hub['id']}", headers=account.headers)).json()
    response = await api.http.patch(
        f"/v1/hubs/{hub['id']}", json=fields, headers={**account.headers, "If-Match": current["etag"]}
    )
    assert response.status_code == 200, response.text
    patched: dict[str, Any] = response.json()
    return patched


async def test_the_owner_lists_gets_and_deletes_every_client_of_their_hub(api: Api) -> None:
    owner, guest, stranger = await api.account(), await api.account(), await api.account()
    hub = await api.create_hub(owner, name=f"own-{secrets.token_hex(3)}", visibility="public")
    theirs = await api.create_client(guest, hub["id"])
    mine = await api.create_client(owner, hub["id"])
    listed = await api.http.get("/v1/clients", params={"hub_id": hub["id"]}, headers=owner.headers)
    assert {row["id"] for row in listed.json()["data"]} == {theirs["id"], mine["id"]}
    everything = await api.http.get("/v1/clients", headers=owner.headers)
    assert {theirs["id"], mine["id"]} <= {row["id"] for row in everything.json()["data"]}
    # the guest sees their own only; a stranger nothing
    guest_view = await api.http.get("/v1/clients", params={"hub_id": hub["id"]}, headers=guest.headers)
    assert [row["id"] for row in guest_view.json()["data"]] == [theirs["id"]]
    stranger_view = await api.http.get("/v1/clients", params={"hub_id": hub["id"]}, headers=stranger.headers)
    assert stranger_view.json()["data"] == []
    assert_problem(await api.http.get(f"/v1/clients/{mine['id']}", headers=guest.headers), 404, "Client not found")
    fetched = await api.http.get(f"/v1/clients/{theirs['id']}", headers=owner.headers)
    assert fetched.status_code == 200
    gone = await api.http.delete(
        f"/v1/clients/{theirs['id']}", headers={**owner.headers, "If-Match": fetched.json()["etag"]}
    )
    assert gone.status_code == 204
    assert await api.directory().find_client(hub["id"], theirs["initial_identify"]["access_key"]) is None


async def test_a_hub_turned_private_refuses_other_workspaces_identities_and_their_broker_accounts(api: Api) -> None:
    owner, guest = await api.account(), await api.account()
    hub = await api.create_hub(owner, name=f"flip-{secrets.token_hex(3)}", visibility="public", spec=MQTT_SPEC)
    theirs = await api.create_client(guest, hub["id"])
    mine = await api.create_client(owner, hub["id"])
    directory, broker = api.directory(), api.app.state.mqtt_broker
    usernames = {c["id"]: c["initial_identify"]["mqtt"]["username"] for c in (theirs, mine)}
    assert all(broker.access.get(name) is not None for name in usernames.values())

    await _patch(api, owner, hub, visibility="workspace")
    assert await directory.find_client(hub["id"], theirs["initial_identify"]["access_key"]) is None
    assert await directory.find_client_by_id(hub["id"], theirs["id"]) is None
    mqtt = theirs["initial_identify"]["mqtt"]
    assert await directory.find_mqtt_client(mqtt["username"], mqtt["password"]) is None
    assert broker.access.get(usernames[theirs["id"]]) is None
    assert await directory.find_client(hub["id"], mine["initial_identify"]["access_key"]) is not None
    assert broker.access.get(usernames[mine["id"]]) is not None
    # the guest can no longer provision on it; public again, the identity is served again
    refused = await api.http.post("/v1/clients", json={"hub_id": hub["id"], "name": "late"}, headers=guest.headers)
    assert_problem(refused, 404, "Hub not found")
    await _patch(api, owner, hub, visibility="public")
    assert await directory.find_client(hub["id"], theirs["initial_identify"]["access_key"]) is not None
    assert broker.access.get(usernames[theirs["id"]]) is not None


async def test_a_hub_with_every_carrier_off_loads_with_none(api: Api) -> None:
    owner = await api.account()
    off = {"version": "1", "protocols": {"wss": False, "http": False, "mqtt": False}}
    hub = await api.create_hub(owner, name=f"off-{secrets.token_hex(3)}", spec=off)
    keys = await api.directory().load_hub(hub["id"])
    assert keys is not None and keys.protocols == ()
    assert not any(keys.serves(carrier) for carrier in ("wss", "http", "mqtt"))
    assert hub["data_plane_endpoints"] == {}
