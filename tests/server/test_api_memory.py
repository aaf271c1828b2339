"""Memory items (/v1/memory) and the analytics overview, in process over SQLite and PostgreSQL.

What hubs write arrives through the runtime's write-behind queue exactly as in a server: the
tests hand the runtime's memory book and request log what a hub would, then read the API.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from tests.server.conftest import Account, Api
from tests.server.test_api_auth import assert_problem

from thalovant_server.api import memory as memory_routes
from thalovant_server.hub.activity import Activity
from thalovant_server.store.models import utcnow


async def create_item(api: Api, account: Account, **body: Any) -> dict[str, Any]:
    response = await api.http.post("/v1/memory", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


async def test_items_of_each_scope_and_their_refusals(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner)
    client = await api.create_client(owner, hub["id"])
    workspace = await create_item(api, owner, scope="workspace", kind="preference", content="Answer in English")
    assert workspace["scope"] == "workspace" and workspace["hub_id"] is None and workspace["source"] == "api"
    assert workspace["retention_policy"] == "user_controlled" and workspace["expires_at"] is None
    hub_item = await create_item(api, owner, scope="hub", hub_id=hub["id"], content="Closed on Sundays")
    assert hub_item["hub_id"] == hub["id"] and hub_item["kind"] == "note"
    fact = await create_item(
        api, owner, scope="client", hub_id=hub["id"], client_id=client["id"], kind="fact", subject="pet", content="cat"
    )
    assert fact["client_id"] == client["id"] and fact["subject"] == "pet"
    headers = owner.headers
    for body in (
        {"kind": "note", "content": "no scope"},
        {"scope": "hub", "content": "no hub"},
        {"scope": "client", "hub_id": hub["id"], "content": "no client"},
        {"scope": "workspace", "content": ""},
        {"scope": "workspace", "content": "x", "kind": "Not A Kind"},
        {"scope": "workspace", "content": "x", "colour": "blue"},
        {"scope": "workspace", "content": "x", "retention_policy": "forever"},
        {"scope": "workspace", "content": "x", "expires_at": 1700000000},
    ):
        response = await api.http.post("/v1/memory", json=body, headers=headers)
        assert_problem(response, 422, "Request validation failed")
    other = await api.account()
    foreign_hub = await api.create_hub(other)
    foreign_client = await api.create_client(other, foreign_hub["id"])
    response = await api.http.post(
        "/v1/memory", json={"scope": "hub", "hub_id": foreign_hub["id"], "content": "x"}, headers=headers
    )
    assert_problem(response, 404, "Hub not found")
    response = await api.http.post(
        "/v1/memory",
        json={"scope": "client", "hub_id": hub["id"], "client_id": foreign_client["id"], "content": "x"},
        headers=headers,
    )
    assert_problem(response, 404, "Client not found")
    response = await api.http.post(
        "/v1/memory", json={"scope": "workspace", "content": "x", "owner_id": other.user_id}, headers=headers
    )
    assert_problem(response, 403, "Ownership required")
    assert_problem(
        await api.http.post("/v1/memory", json={"scope": "workspace", "content": "x"}),
        401,
        ("Could not validate credentials"),
    )


async def test_listing_filters_pages_and_summary(api: Api) -> None:
    owner = await api.account()
    made = [
        await create_item(api, owner, scope="workspace", kind="note", content=f"note {i} with 100% effort")
        for i in range(5)
    ]
    await create_item(api, owner, scope="workspace", kind="preference", content="tea")
    expired = await create_item(
        api, owner, scope="workspace", kind="note", content="old", expires_at="2001-01-01T00:00:00Z"
    )
    monthly = await create_item(api, owner, scope="workspace", kind="note", content="monthly", retention_policy="30d")
    expires = dt.datetime.fromisoformat(monthly["expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(days=29) < expires - utcnow() <= dt.timedelta(days=30)

    async def listing(**params: Any) -> dict[str, Any]:
        response = await api.http.get("/v1/memory", params=params, headers=owner.headers)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    page = await listing(kind="note", limit=2)
    assert page["meta"] == {"count": 2, "total": 6, "limit": 2, "offset": 0, "next_offset": 2}
    assert page["links"]["next"] == "/v1/memory?kind=note&limit=2&offset=2"
    assert [item["content"] for item in page["data"]] == ["monthly", "note 4 with 100% effort"]
    last = await listing(kind="note", limit=2, offset=4)
    assert last["meta"]["next_offset"] is None and last["links"]["next"] is None
    assert (await listing(q="100%"))["meta"]["total"] == 5
    assert (await listing(q="100_"))["meta"]["total"] == 0  # wildcards are literal
    assert expired["id"] not in [i["id"] for i in (await listing(limit=200))["data"]]
    with_expired = await listing(include_expired="true", limit=200)
    assert [i["expired"] for i in with_expired["data"] if i["id"] == expired["id"]] == [True]
    deleted = await api.http.delete(f"/v1/memory/{made[0]['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    assert_problem(
        await api.http.get(f"/v1/memory/{made[0]['id']}", headers=owner.headers), 404, ("Memory item not found")
    )
    assert_problem(
        await api.http.delete(f"/v1/memory/{made[0]['id']}", headers=owner.headers), 404, ("Memory item not found")
    )
    assert [i["deleted"] for i in (await listing(include_deleted="true", limit=200))["data"]].count(True) == 1
    summary = (await api.http.get("/v1/memory/summary", headers=owner.headers)).json()
    assert summary == {
        "total": 6,
        "by_scope": {"workspace": 6},
        "by_kind": {"note": 5, "preference": 1},
        "expired": 1,
        "deleted": 1,
    }
    other = await api.account()
    assert_problem(
        await api.http.get("/v1/memory", params={"owner_id": other.user_id}, headers=owner.headers),
        403,
        ("Ownership required"),
    )
    assert_problem(
        await api.http.get("/v1/memory/summary", params={"owner_id": other.user_id}, headers=owner.headers),
        403,
        "Ownership required",
    )


async def test_corrections_and_expiry_changes(api: Api) -> None:
    owner = await api.account()
    item = await create_item(
        api, owner, scope="workspace", kind="note", content="draft", expires_at="2999-01-01T00:00:00Z"
    )
    path = f"/v1/memory/{item['id']}"
    patched = await api.http.patch(path, json={"content": "final", "subject": "status"}, headers=owner.headers)
    assert patched.status_code == 200 and patched.json()["content"] == "final"
    assert patched.json()["expires_at"] == "2999-01-01T00:00:00Z"
    cleared = await api.http.patch(path, json={"clear_expires_at": True}, headers=owner.headers)
    assert cleared.json()["expires_at"] is None
    for body in ({"scope": "hub"}, {"owner_id": owner.user_id}, {"content": ""}, {"retention_policy": "never"}):
        assert_problem(await api.http.patch(path, json=body, headers=owner.headers), 422, "Request validation failed")


async def test_what_a_hub_is_told_reaches_the_api_and_corrections_reach_the_hub(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner, spec={"version": "1", "skills": ["memory"]})
    client = await api.create_client(owner, hub["id"])
    book = api.app.state.runtime.memory
    book.remember(hub["id"], client["id"], "favorite color", "blue")
    assert book.facts(client["id"]) == {"favorite color": "blue"}
    page = (await api.http.get("/v1/memory", params={"hub_id": hub["id"]}, headers=owner.headers)).json()
    assert [(i["scope"], i["kind"], i["subject"], i["content"], i["source"]) for i in page["data"]] == [
        ("client", "fact", "favorite color", "blue", "hub")
    ]
    item = page["data"][0]
    assert item["owner_id"] == owner.user_id and item["client_id"] == client["id"]
    book.remember(hub["id"], client["id"], "favorite color", "red")  # told again: the same item changes
    again = (await api.http.get("/v1/memory", params={"hub_id": hub["id"]}, headers=owner.headers)).json()
    assert [(i["id"], i["content"]) for i in again["data"]] == [(item["id"], "red")]
    await api.http.patch(
        f"/v1/memory/{item['id']}", json={"subject": "favourite colour", "content": "green"}, headers=owner.headers
    )
    assert book.facts(client["id"]) == {"favourite colour": "green"}
    await api.http.delete(f"/v1/memory/{item['id']}", headers=owner.headers)
    assert book.facts(client["id"]) == {}
    added = await create_item(
        api, owner, scope="client", hub_id=hub["id"], client_id=client["id"], subject="city", content="Lyon"
    )
    assert book.facts(client["id"]) == {"city": "Lyon"}
    await create_item(
        api,
        owner,
        scope="client",
        hub_id=hub["id"],
        client_id=client["id"],
        subject="old city",
        content="Paris",
        expires_at="2001-01-01T00:00:00Z",
    )
    assert book.facts(client["id"]) == {"city": "Lyon"}  # an expired fact is never recalled
    corrected = await api.http.patch(
        f"/v1/memory/{added['id']}", json={"expires_at": "2001-01-01T00:00:00Z"}, headers=owner.headers
    )
    assert corrected.status_code == 200 and corrected.json()["expired"] is True
    assert book.facts(client["id"]) == {}


def activity(
    hub_id: str,
    client_id: str,
    *,
    at: float,
    skill: str = "jokes",
    intent: str = "tell_joke",
    kind: str = "utterance",
    carrier: str = "wss",
    handled: bool = True,
    text: str | None = None,
) -> Activity:
    return Activity(hub_id, client_id, carrier, kind, skill, intent, handled, "en-us", text, at)


async def overview(api: Api, account: Account, **params: Any) -> dict[str, Any]:
    response = await api.http.get("/v1/analytics/overview", params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_analytics_overview_counts_the_request_log(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner)
    quiet = await api.create_hub(owner)
    client = await api.create_client(owner, hub["id"])
    now = time.time()
    sink = api.app.state.runtime.sink
    sink.record(activity(hub["id"], client["id"], at=now - 60, text="tell me a joke"))
    sink.record(activity(hub["id"], client["id"], at=now - 120, text="tell me a joke"))
    sink.record(
        activity(
            hub["id"],
            client["id"],
            at=now - 3 * 3600,
            skill="fallback",
            intent="fallback",
            handled=False,
            carrier="mqtt",
            text="what is the airspeed",
        )
    )
    sink.record(
        activity(
            hub["id"], client["id"], at=now - 30, kind="action", skill="approvals", intent="approve", carrier="http"
        )
    )
    sink.record(activity(quiet["id"], client["id"], at=now - 10 * 86400))
    week = await overview(api, owner)
    assert week["meta"]["scope"] == "workspace" and week["meta"]["range"] == "7d"
    assert week["totals"] == {"requests": 4, "utterances": 3, "handled": 3, "fallback": 1, "clients": 1, "hubs": 1}
    assert {(r["skill"], r["intent"], r["count"]) for r in week["by_intent"]} == {
        ("jokes", "tell_joke", 2),
        ("fallback", "fallback", 1),
        ("approvals", "approve", 1),
    }
    assert {r["carrier"]: r["count"] for r in week["by_carrier"]} == {"wss": 2, "mqtt": 1, "http": 1}
    assert week["top_utterances"][0] == {"utterance": "tell me a joke", "count": 2}
    assert sum(b["count"] for b in week["buckets"]) == 4 and week["meta"]["bucket"] == "1d"
    day = await overview(api, owner, range="24h", bucket="1h")
    assert len(day["buckets"]) == 25 and sum(b["count"] for b in day["buckets"]) == 4
    assert (await overview(api, owner, range="1h"))["totals"]["requests"] == 3
    assert (await overview(api, owner, message="action"))["totals"]["requests"] == 1
    assert (await overview(api, owner, intent="jokes:tell_joke"))["totals"]["requests"] == 2
    assert (await overview(api, owner, intent="approve"))["totals"]["requests"] == 1
    assert (await overview(api, owner, utterance="AIRSPEED"))["totals"]["requests"] == 1
    assert (await overview(api, owner, country="fr"))["totals"]["requests"] == 0
    hour = dt.datetime.fromtimestamp(now - 60, dt.UTC)
    assert (await overview(api, owner, weekday=hour.weekday(), hour=hour.hour))["totals"]["requests"] >= 1
    month = await overview(api, owner, range="30d", hub_id=quiet["id"])
    assert month["totals"]["requests"] == 1 and month["meta"]["filters"] == {"hub_id": quiet["id"]}
    window = await overview(
        api,
        owner,
        time_start=dt.datetime.fromtimestamp(now - 200, dt.UTC).isoformat(),
        time_end=dt.datetime.fromtimestamp(now - 50, dt.UTC).isoformat(),
    )
    assert window["totals"]["requests"] == 2
    other = await api.account()
    assert (await overview(api, other))["totals"]["requests"] == 0
    for params, detail in (({"hub_id": hub["id"]}, "Hub not found"), ({"client_id": client["id"]}, "Client not found")):
        response = await api.http.get("/v1/analytics/overview", params=params, headers=other.headers)
        assert_problem(response, 404, detail)
    for params in ({"time_start": "0.5"}, {"range": "7y"}, {"weekday": "7"}, {"message": "shout"}):
        response = await api.http.get("/v1/analytics/overview", params=params, headers=owner.headers)
        assert_problem(response, 422, "Request validation failed")


async def test_a_workspace_keeps_a_bounded_number_of_items(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_routes, "MAX_ITEMS_PER_WORKSPACE", 3)
    owner = await api.account()
    made = [await create_item(api, owner, scope="workspace", content=f"n{i}") for i in range(3)]
    full = await api.http.post("/v1/memory", json={"scope": "workspace", "content": "one more"}, headers=owner.headers)
    assert assert_problem(full, 409, "A workspace keeps at most 3 memory items; delete some first.")["code"] == (
        "memory_full"
    )
    await api.http.delete(f"/v1/memory/{made[0]['id']}", headers=owner.headers)
    still_full = await api.http.post("/v1/memory", json={"scope": "workspace", "content": "x"}, headers=owner.headers)
    assert still_full.status_code == 409  # a soft-deleted item counts until it is purged
    other = await api.account()  # the limit is per workspace
    await create_item(api, other, scope="workspace", content="mine")
