"""A hub's release, ratings and runtime capabilities, in process over SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.server.conftest import Account, Api, password_hash
from tests.server.test_api_auth import assert_problem

from thalovant_server import __version__
from thalovant_server.store import accounts

LISTENER = "ghcr.io/thalovant/hivemind-listener"


async def release(api: Api, account: Account, hub_id: str, **body: Any) -> dict[str, Any]:
    response = await api.http.post(f"/v1/hubs/{hub_id}/release", json=body, headers=account.headers)
    assert response.status_code == 200, response.text
    hub: dict[str, Any] = response.json()
    return hub


async def test_release_modes_and_the_platform_image_rule(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner)
    beta = await release(api, owner, hub["id"], channel="beta", reason="try it")
    record = beta["spec"]["release"]
    assert (record["channel"], record["mode"], record["version"], record["reason"]) == (
        "beta",
        "channel",
        None,
        "try it",
    )
    assert beta["spec"]["image"] == f"{LISTENER}:beta" and beta["etag"] != hub["etag"]
    pinned = await release(api, owner, hub["id"], mode="pinned")
    assert pinned["spec"]["release"]["version"] == __version__
    assert pinned["spec"]["image"] == f"{LISTENER}:{__version__}"
    assert pinned["spec"]["release"]["channel"] == "beta"  # what was not named is kept
    digest = f"{LISTENER}@sha256:{'a' * 64}"
    custom = await release(api, owner, hub["id"], images={"listener": digest})
    assert custom["spec"]["release"]["mode"] == "custom" and custom["spec"]["image"] == digest
    refused = await api.http.post(
        f"/v1/hubs/{hub['id']}/release",
        json={
            "images": {
                "listener": "docker.io/someone/listener:1",
                "preview_bridge": "ghcr.io/thalovant/preview-bridge:2",
            }
        },
        headers=owner.headers,
    )
    problem = assert_problem(
        refused, 403, "Only an administrator can run an image the platform does not release: listener"
    )
    assert problem["code"] == "platform_image_required"
    assert problem["refused_images"] == {"listener": "docker.io/someone/listener:1"}
    assert problem["allowed_repositories"] == {
        "listener": LISTENER,
        "preview_bridge": "ghcr.io/thalovant/preview-bridge",
    }
    for body in ({"channel": "nightly"}, {"mode": "yolo"}, {"version": "v1"}, {"images": {"core": f"{LISTENER}:1"}}):
        response = await api.http.post(f"/v1/hubs/{hub['id']}/release", json=body, headers=owner.headers)
        assert_problem(response, 422, "Request validation failed")
    # the same rule guards a spec PATCH
    current = (await api.http.get(f"/v1/hubs/{hub['id']}", headers=owner.headers)).json()
    spec = dict(current["spec"], image="docker.io/someone/listener:1")
    patched = await api.http.patch(
        f"/v1/hubs/{hub['id']}", json={"spec": spec}, headers=owner.headers | {"If-Match": current["etag"]}
    )
    assert (
        assert_problem(patched, 403, "Only an administrator can run an image the platform does not release: listener")[
            "code"
        ]
        == "platform_image_required"
    )
    # an administrator may run any image
    async with api.store.session() as session:
        admin = await accounts.create_user(
            session, email=f"admin-{hub['id'][:8]}@example.com", password_hash=password_hash(), role="admin"
        )
    admin_account = await api.login(admin.email)
    admin_hub = await api.create_hub(admin_account)
    mine = await release(api, admin_account, admin_hub["id"], images={"listener": "registry.example/listener:7"})
    assert mine["spec"]["image"] == "registry.example/listener:7"
    stranger = await api.account()
    response = await api.http.post(f"/v1/hubs/{hub['id']}/release", json={}, headers=stranger.headers)
    assert_problem(response, 404, "Hub not found")
    reader = await api.login(owner.email, scope="hubs:read")
    response = await api.http.post(f"/v1/hubs/{hub['id']}/release", json={}, headers=reader.headers)
    assert_problem(response, 403, "Insufficient scopes")


async def test_ratings_of_public_hubs(api: Api) -> None:
    owner = await api.account()
    public = await api.create_hub(owner, visibility="public")
    private = await api.create_hub(owner)
    assert public["rating_average"] is None and public["rating_count"] == 0
    own = await api.http.put(f"/v1/hubs/{public['id']}/rating", json={"rating": 5}, headers=owner.headers)
    assert assert_problem(own, 403, "You cannot rate a hub of your own workspace.")["code"] == "own_hub"
    first, second = await api.account(), await api.account()
    for account, rating in ((first, 5), (second, 4), (first, 3)):
        response = await api.http.put(
            f"/v1/hubs/{public['id']}/rating", json={"rating": rating}, headers=account.headers
        )
        assert response.status_code == 200, response.text
    rated = response.json()
    assert (rated["rating_average"], rated["rating_count"], rated["my_rating"]) == (3.5, 2, 3)
    assert "etag" not in rated  # a rater sees the public view
    listed = (await api.http.get("/v1/public/hubs", params={"limit": 100})).json()["data"]
    assert [(h["rating_average"], h["rating_count"]) for h in listed if h["id"] == public["id"]] == [(3.5, 2)]
    mine = (await api.http.get(f"/v1/hubs/{public['id']}", headers=owner.headers)).json()
    assert (mine["rating_average"], mine["rating_count"]) == (3.5, 2)
    cleared = await api.http.delete(f"/v1/hubs/{public['id']}/rating", headers=second.headers)
    assert cleared.status_code == 200
    assert (cleared.json()["rating_average"], cleared.json()["rating_count"], cleared.json()["my_rating"]) == (
        3.0,
        1,
        None,
    )
    response = await api.http.put(f"/v1/hubs/{private['id']}/rating", json={"rating": 4}, headers=first.headers)
    assert_problem(response, 404, "Hub not found")
    for value in (0, 6, "5", 4.5):
        response = await api.http.put(f"/v1/hubs/{public['id']}/rating", json={"rating": value}, headers=first.headers)
        assert_problem(response, 422, "Request validation failed")
    reader = await api.login(first.email, scope="hubs:read")
    response = await api.http.put(f"/v1/hubs/{public['id']}/rating", json={"rating": 4}, headers=reader.headers)
    assert_problem(response, 403, "Insufficient scopes")


async def test_runtime_capabilities(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner, visibility="public", spec={"version": "1", "skills": ["jokes", "clock"]})
    response = await api.http.get(f"/v1/hubs/{hub['id']}/runtime-capabilities", headers=owner.headers)
    assert response.status_code == 200, response.text
    caps = response.json()
    assert caps["hub_id"] == hub["id"] and caps["source"] == "ovos-runtime"
    assert [skill["id"] for skill in caps["skills"]] == ["jokes", "clock"]
    counts = caps["counts"]
    assert counts["skills"] == 2 and counts["total_intents"] == len(caps["intents"]) > 0
    assert counts["adapt_intents"] + counts["padatious_intents"] == counts["total_intents"]
    assert {intent["skill_id"] for intent in caps["intents"]} == {"jokes", "clock"}
    assert all(intent["id"] == f"{intent['skill_id']}:{intent['name']}" for intent in caps["intents"])
    # another workspace may inspect a public hub (read-only scope is enough)
    visitor = await api.login(await api.new_user(), scope="hubs:read")
    assert (
        await api.http.get(f"/v1/hubs/{hub['id']}/runtime-capabilities", headers=visitor.headers)
    ).status_code == 200
    # an inactive hub is not loaded by the runtime: the answer comes from its spec
    off = await api.create_hub(owner, active=False, spec={"version": "1", "skills": ["trivia"]})
    stale = (await api.http.get(f"/v1/hubs/{off['id']}/runtime-capabilities", headers=owner.headers)).json()
    assert stale["source"] == "ovos-runtime-unavailable" and [s["id"] for s in stale["skills"]] == ["trivia"]
    empty = await api.create_hub(owner, spec={"version": "1", "skills": []})
    response = await api.http.get(f"/v1/hubs/{empty['id']}/runtime-capabilities", headers=owner.headers)
    assert assert_problem(response, 409, "This hub runs no skills.")["code"] == "hub_without_skills"
    private = await api.create_hub(owner)
    response = await api.http.get(f"/v1/hubs/{private['id']}/runtime-capabilities", headers=visitor.headers)
    assert_problem(response, 404, "Hub not found")


async def test_runtime_capabilities_are_rate_limited_per_caller_and_hub(api: Api) -> None:
    owner = await api.account()
    hub = await api.create_hub(owner)
    other_hub = await api.create_hub(owner)
    path = f"/v1/hubs/{hub['id']}/runtime-capabilities"
    statuses = [(await api.http.get(path, headers=owner.headers)).status_code for _ in range(60)]
    assert statuses == [200] * 60
    limited = await api.http.get(path, headers=owner.headers)
    problem = assert_problem(limited, 429, "Too many runtime capability reads for this hub. Retry later.")
    assert int(limited.headers["retry-after"]) >= 1 and problem["retry_after_seconds"] >= 1
    other = await api.http.get(f"/v1/hubs/{other_hub['id']}/runtime-capabilities", headers=owner.headers)
    assert other.status_code == 200
