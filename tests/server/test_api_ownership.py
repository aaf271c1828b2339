"""Workspace ownership over the whole API: another workspace reads and writes nothing of yours.

Owner A has a private hub, a public hub, a client identity, a memory item and an API token.
Caller B, signed in with every scope, tries every route that names them: each answers as if
they did not exist (404), lists leave them out, and afterwards A's resources are unchanged.
The public hub is the one thing B may see (and rate, and connect a client to), but not change.
"""

from __future__ import annotations

from typing import Any

from tests.server.conftest import Api
from tests.server.test_api_auth import assert_problem


async def test_another_workspace_reaches_nothing_of_yours(api: Api) -> None:
    a = await api.account()
    hub = await api.create_hub(a)
    public = await api.create_hub(a, visibility="public")
    client = await api.create_client(a, hub["id"])
    item = (
        await api.http.post(
            "/v1/memory",
            json={"scope": "client", "hub_id": hub["id"], "client_id": client["id"], "subject": "pin", "content": "1"},
            headers=a.headers,
        )
    ).json()
    token = (await api.http.post("/v1/auth/api-tokens", json={"name": "a's token"}, headers=a.headers)).json()
    b = await api.account()
    h, c, m = hub["id"], client["id"], item["id"]
    etag = {"If-Match": hub["etag"]}
    refused: list[tuple[str, str, dict[str, Any], dict[str, str], str]] = [
        ("GET", f"/v1/hubs/{h}", {}, {}, "Hub not found"),
        ("PATCH", f"/v1/hubs/{h}", {"title": "mine now"}, etag, "Hub not found"),
        ("DELETE", f"/v1/hubs/{h}", {}, etag, "Hub not found"),
        ("POST", f"/v1/hubs/{h}/release", {"channel": "alpha"}, {}, "Hub not found"),
        ("PUT", f"/v1/hubs/{h}/rating", {"rating": 1}, {}, "Hub not found"),
        ("DELETE", f"/v1/hubs/{h}/rating", {}, {}, "Hub not found"),
        ("GET", f"/v1/hubs/{h}/runtime-capabilities", {}, {}, "Hub not found"),
        ("PATCH", f"/v1/hubs/{public['id']}", {"title": "mine now"}, {"If-Match": public["etag"]}, "Hub not found"),
        ("DELETE", f"/v1/hubs/{public['id']}", {}, {"If-Match": public["etag"]}, "Hub not found"),
        ("POST", f"/v1/hubs/{public['id']}/release", {"channel": "alpha"}, {}, "Hub not found"),
        ("GET", f"/v1/clients/{c}", {}, {}, "Client not found"),
        ("DELETE", f"/v1/clients/{c}", {}, {"If-Match": client["etag"]}, "Client not found"),
        ("POST", "/v1/clients", {"hub_id": h, "name": "intruder"}, {}, "Hub not found"),
        ("GET", f"/v1/memory/{m}", {}, {}, "Memory item not found"),
        ("PATCH", f"/v1/memory/{m}", {"content": "2"}, {}, "Memory item not found"),
        ("DELETE", f"/v1/memory/{m}", {}, {}, "Memory item not found"),
        ("POST", "/v1/memory", {"scope": "hub", "hub_id": h, "content": "x"}, {}, "Hub not found"),
        ("GET", f"/v1/analytics/overview?hub_id={h}", {}, {}, "Hub not found"),
        ("GET", f"/v1/analytics/overview?client_id={c}", {}, {}, "Client not found"),
        ("DELETE", f"/v1/auth/api-tokens/{token['id']}", {}, {}, "API token not found"),
    ]
    for method, path, body, headers, detail in refused:
        response = await api.http.request(
            method, path, json=body if method in ("POST", "PUT", "PATCH") else None, headers=b.headers | headers
        )
        assert_problem(response, 404, detail)
    owner_filter = {"owner_id": a.user_id}
    assert_problem(await api.http.get("/v1/memory", params=owner_filter, headers=b.headers), 403, "Ownership required")
    lists = {
        "/v1/hubs": {},
        "/v1/hubs?owner_id=" + a.user_id: {},
        "/v1/clients": {},
        f"/v1/clients?hub_id={h}": {},
        "/v1/memory": {},
        f"/v1/memory?hub_id={h}": {},
        "/v1/auth/api-tokens": {},
    }
    for path in lists:
        page = (await api.http.get(path, headers=b.headers)).json()
        ids = {entry["id"] for entry in page["data"]}
        assert ids.isdisjoint({h, public["id"], c, m, token["id"]}), path
    assert (await api.http.get("/v1/analytics/overview", headers=b.headers)).json()["totals"]["requests"] == 0
    assert (await api.http.get("/v1/memory/summary", headers=b.headers)).json()["total"] == 0
    # what B may do with A's public hub: see it, rate it, connect a client of B's own
    assert (await api.http.get(f"/v1/hubs/{public['id']}", headers=b.headers)).status_code == 200
    rated = await api.http.put(f"/v1/hubs/{public['id']}/rating", json={"rating": 4}, headers=b.headers)
    assert rated.status_code == 200
    visiting = await api.http.post("/v1/clients", json={"hub_id": public["id"], "name": "visitor"}, headers=b.headers)
    assert visiting.status_code == 201 and visiting.json()["owner_id"] == b.user_id
    # and A's resources are as they were
    assert (await api.http.get(f"/v1/hubs/{h}", headers=a.headers)).json()["etag"] == hub["etag"]
    assert (await api.http.get(f"/v1/clients/{c}", headers=a.headers)).json()["etag"] == client["etag"]
    assert (await api.http.get(f"/v1/memory/{m}", headers=a.headers)).json()["content"] == "1"
    a_tokens = (await api.http.get("/v1/auth/api-tokens", headers=a.headers)).json()["data"]
    assert token["id"] in {entry["id"] for entry in a_tokens}
