"""Operations, the marketplace, runtime groups and hub skills, in process over SQLite and PostgreSQL.

These drive the routes with plain HTTP; the SDKs and the CLI drive them against a real server
in tests/e2e. The in-process runtime is the real one: a hub loaded in it (as a connected
client would load it) is observed running or no longer running a skill.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.server.conftest import Account, Api
from tests.server.test_api_auth import assert_problem

from thalovant_server.rollout import SkillRollout


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rollout(api: Api) -> SkillRollout:
    found: SkillRollout = api.app.state.skill_rollout
    return found


async def settled(api: Api, account: Account, operation_id: str) -> dict[str, Any]:
    """The operation once the rollout has driven every started operation to its end."""
    await rollout(api).wait_idle()
    response = await api.http.get(f"/v1/operations/{operation_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    operation: dict[str, Any] = response.json()
    return operation


async def hub_skills(api: Api, account: Account, hub_id: str) -> dict[str, dict[str, Any]]:
    response = await api.http.get(f"/v1/hubs/{hub_id}/skills", headers=account.headers)
    assert response.status_code == 200, response.text
    return {row["skill"]: row for row in response.json()["data"]}


# -- marketplace ---------------------------------------------------------------------------------


async def test_marketplace_lists_the_installed_skill_packages(api: Api) -> None:
    account = await api.account()
    assert (await api.http.get("/v1/marketplace/skills")).status_code == 401
    response = await api.http.get("/v1/marketplace/skills", headers=account.headers)
    assert response.status_code == 200
    entries = {entry["skill_id"]: entry for entry in response.json()["data"]}
    assert {"jokes", "trivia", "clock", "capabilities", "memory", "approvals"} <= set(entries)
    clock = entries["clock"]
    assert clock["title"] == "Clock" and clock["summary"] == "Tells the current time and date."
    assert clock["package_name"] == "thalovant-selfhosted" and re.match(r"^\d+\.\d+", clock["version"])
    assert "tell_time" in clock["intents"] or clock["intents"]
    assert clock["is_active"] is True and clock["access_tier"] == "included"
    refreshed = await api.http.get("/v1/marketplace/skills", params={"force_refresh": "true"}, headers=account.headers)
    assert {e["id"] for e in refreshed.json()["data"]} == {e["id"] for e in entries.values()}


# -- runtime groups --------------------------------------------------------------------------------


async def test_each_workspace_has_one_default_group_that_cannot_be_deleted(api: Api) -> None:
    account = await api.account()
    first = (await api.http.get("/v1/runtime-groups", headers=account.headers)).json()["data"]
    again = (await api.http.get("/v1/runtime-groups", headers=account.headers)).json()["data"]
    assert len(first) == 1 and first == again
    default = first[0]
    assert default["is_default"] is True and default["slug"] == "default"
    refused = await api.http.delete(f"/v1/runtime-groups/{default['id']}", headers=account.headers)
    assert_problem(refused, 409, "The workspace's default runtime group cannot be deleted.")


async def test_group_crud_ownership_and_removed_group(api: Api) -> None:
    owner, stranger = await api.account(), await api.account()
    created = await api.http.post(
        "/v1/runtime-groups", json={"name": "Kiosk fleet", "environment": "Staging"}, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    group = created.json()
    assert group["slug"] == "kiosk-fleet" and group["environment"] == "staging" and group["is_default"] is False
    path = f"/v1/runtime-groups/{group['id']}"
    assert (await api.http.get(path, headers=owner.headers)).json()["name"] == "Kiosk fleet"
    patched = await api.http.patch(path, json={"name": "Kiosks", "spec": {"replicas": 2}}, headers=owner.headers)
    assert patched.status_code == 200 and patched.json()["spec"]["replicas"] == 2
    bad = await api.http.patch(path, json={"spec": {"replicas": "many"}}, headers=owner.headers)
    assert bad.status_code == 422 and bad.json()["code"] == "schema_validation_failed"
    for method, sub in (("GET", ""), ("GET", "/config"), ("GET", "/inventory"), ("DELETE", "")):
        assert_problem(await api.http.request(method, path + sub, headers=stranger.headers), 403, "Ownership required")
    listed = await api.http.get("/v1/runtime-groups", params={"owner_id": owner.user_id}, headers=stranger.headers)
    assert_problem(listed, 403, "Ownership required")
    assert (await api.http.delete(path, headers=owner.headers)).status_code == 204
    for method, sub in (("GET", ""), ("GET", "/config"), ("GET", "/marketplace"), ("POST", "/skills")):
        body = {"skill_id": "clock"} if method == "POST" else None
        gone = await api.http.request(method, path + sub, json=body, headers=owner.headers)
        assert_problem(gone, 404, "Runtime group not found.")
    assert_problem(
        await api.http.get("/v1/runtime-groups/not-a-uuid", headers=owner.headers), 404, "Runtime group not found."
    )


async def test_config_revision_guards_writes(api: Api) -> None:
    account = await api.account()
    group = (await api.http.get("/v1/runtime-groups", headers=account.headers)).json()["data"][0]
    path = f"/v1/runtime-groups/{group['id']}/config"
    current = (await api.http.get(path, headers=account.headers)).json()
    assert re.fullmatch(r"[0-9a-f]{64}", current["revision"]) and current["config"] == {}
    written = await api.http.put(
        path,
        json={
            "config": {"lang": "pt-pt", "env": []},
            "personas": {"host": {"name": "Ana"}},
            "expected_revision": current["revision"],
        },
        headers=account.headers,
    )
    assert written.status_code == 200, written.text
    second = written.json()
    assert second["revision"] != current["revision"] and second["config"]["lang"] == "pt-pt"
    stale = await api.http.put(
        path, json={"config": {"lang": "en-us"}, "expected_revision": current["revision"]}, headers=account.headers
    )
    assert_problem(stale, 412, "Configuration changed")
    stale_if_match = await api.http.put(
        path,
        json={"config": {}, "expected_revision": second["revision"]},
        headers={**account.headers, "If-Match": current["revision"]},
    )
    assert_problem(stale_if_match, 412, "Configuration changed")
    replaced = await api.http.patch(path, json={"config": {"skills": {"timeout_seconds": 2}}}, headers=account.headers)
    assert replaced.status_code == 200
    assert replaced.json()["config"] == {"skills": {"timeout_seconds": 2}}
    assert replaced.json()["personas"] == {"host": {"name": "Ana"}}  # kept: not sent
    invalid = await api.http.patch(path, json={"config": {"skills": {"timeout_seconds": 0}}}, headers=account.headers)
    assert invalid.status_code == 422 and invalid.json()["code"] == "schema_validation_failed"


async def test_release_records_platform_images_and_refuses_others(api: Api) -> None:
    account = await api.account()
    group = (await api.http.get("/v1/runtime-groups", headers=account.headers)).json()["data"][0]
    path = f"/v1/runtime-groups/{group['id']}/release"
    done = await api.http.post(
        path,
        json={"channel": "stable", "images": {"core": "ghcr.io/thalovant/ovos-core:1.2.3"}},
        headers=account.headers,
    )
    assert done.status_code == 200, done.text
    release = done.json()["spec"]["release"]
    assert release["channel"] == "stable" and release["released_by"] == account.email
    refused = await api.http.post(path, json={"images": {"core": "docker.io/evil/core:1"}}, headers=account.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "platform_image_required"
    assert refused.json()["refused_images"] == ["docker.io/evil/core:1"]


async def test_desired_skills_upsert_and_uninstall(api: Api) -> None:
    account = await api.account()
    hub = await api.create_hub(account, name=unique("grp"), spec={"version": "1", "skills": ["jokes"]})
    group = (await api.http.get("/v1/runtime-groups", headers=account.headers)).json()["data"][0]
    path = f"/v1/runtime-groups/{group['id']}/skills"
    unknown = await api.http.post(path, json={"skill_id": "no-such-skill"}, headers=account.headers)
    assert_problem(unknown, 404, "Marketplace skill not found.")
    git = await api.http.post(path, json={"skill_id": "clock", "source_type": "GIT"}, headers=account.headers)
    assert git.status_code == 422
    upserted = await api.http.post(
        path, json={"skill_id": "clock", "source_type": " Catalog "}, headers=account.headers
    )
    assert upserted.status_code == 200, upserted.text
    desired = upserted.json()
    assert desired["skill_id"] == "clock" and desired["source_type"] == "catalog" and desired["active"] is True
    assert desired["state"] == "installed" and desired["runtime_group_id"] == group["id"]
    assert hub_skills_state(await hub_skills(api, account, hub["id"])) == {"jokes": "unmanaged", "clock": "installed"}
    inventory = (
        await api.http.get(
            f"/v1/runtime-groups/{group['id']}/inventory", params={"refresh": "true"}, headers=account.headers
        )
    ).json()
    assert inventory["source"] == "ovos-runtime-operator"
    assert [row["skill_id"] for row in inventory["data"]] == ["clock"] and inventory["data"][0]["total_intents"] >= 1
    market = (await api.http.get(f"/v1/runtime-groups/{group['id']}/marketplace", headers=account.headers)).json()
    clock = next(entry for entry in market["data"] if entry["skill_id"] == "clock")
    assert clock["installed"] is True and clock["active"] is True and clock["total_intents"] >= 1
    assert (await api.http.delete(f"{path}/clock", headers=account.headers)).status_code == 204
    assert_problem(
        await api.http.delete(f"{path}/clock", headers=account.headers),
        404,
        "Skill is not installed in this runtime group.",
    )
    assert hub_skills_state(await hub_skills(api, account, hub["id"])) == {"jokes": "unmanaged"}


def hub_skills_state(rows: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: row["state"] for name, row in rows.items()}


async def test_inventory_without_any_hub_is_pending_and_empty(api: Api) -> None:
    account = await api.account()
    group = (await api.http.post("/v1/runtime-groups", json={"name": "empty"}, headers=account.headers)).json()
    inventory = (await api.http.get(f"/v1/runtime-groups/{group['id']}/inventory", headers=account.headers)).json()
    assert inventory["source"] == "ovos-runtime-operator-pending" and inventory["data"] == []


# -- hub skills and operations ----------------------------------------------------------------------


async def test_install_update_remove_through_operations(api: Api) -> None:
    account = await api.account()
    hub = await api.create_hub(account, name=unique("ops"), spec={"version": "1", "skills": ["jokes"]})
    runtime = api.app.state.runtime
    assert await runtime.load(hub["id"]) is not None  # as a connecting client loads it
    listing = (await api.http.get(f"/v1/hubs/{hub['id']}/skills", headers=account.headers)).json()
    assert listing["source"] == "ovos-runtime-operator" and listing["hub_id"] == hub["id"]
    assert hub_skills_state({r["skill"]: r for r in listing["data"]}) == {"jokes": "unmanaged"}

    accepted = await api.http.post(f"/v1/hubs/{hub['id']}/skills", json={"skill": "clock"}, headers=account.headers)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["state"] == "installing" and body["skill"] == "clock" and body["version"] == "latest"
    assert body["runtime_group_id"] == listing["runtime_group_id"] and body["hub_id"] == hub["id"]
    operation = await settled(api, account, body["operation_id"])
    assert operation["status"] == "ready", operation
    assert operation["kind"] == "hub.skill.install" and operation["aggregate_type"] == "hub"
    assert operation["links"]["self"] == f"/v1/operations/{operation['id']}"
    assert operation["committed_at"] and operation["applied_at"] and operation["ready_at"] and operation["terminal_at"]
    assert "clock" in runtime.observe(hub["id"]).skills
    row = (await hub_skills(api, account, hub["id"]))["clock"]
    assert row["state"] == "installed" and row["installed_version"] == row["observed_version"] == row["latest_version"]
    assert row["update_available"] is False and row["version"] == "latest"

    again = await api.http.post(f"/v1/hubs/{hub['id']}/skills", json={"skill": "clock"}, headers=account.headers)
    assert again.status_code == 409 and again.json()["code"] == "skill_version_already_installed"
    pinned = await api.http.patch(
        f"/v1/hubs/{hub['id']}/skills/clock", json={"version": row["installed_version"]}, headers=account.headers
    )
    assert pinned.status_code == 202 and pinned.json()["state"] == "updating"
    assert (await settled(api, account, pinned.json()["operation_id"]))["status"] == "ready"
    assert (await hub_skills(api, account, hub["id"]))["clock"]["version_pin"] == row["installed_version"]

    removed = await api.http.delete(f"/v1/hubs/{hub['id']}/skills/clock", headers=account.headers)
    assert removed.status_code == 202 and removed.json()["state"] == "removing" and removed.json()["version"] is None
    assert (await settled(api, account, removed.json()["operation_id"]))["status"] == "ready"
    assert "clock" not in runtime.observe(hub["id"]).skills
    assert "clock" not in await hub_skills(api, account, hub["id"])

    history = (await api.http.get(f"/v1/hubs/{hub['id']}/skills/history", headers=account.headers)).json()
    kinds = [(entry["kind"], entry["action"]) for entry in history["data"]]
    assert kinds[:2] == [("event", "removed"), ("operation", "remove")]
    assert ("operation", "install") in kinds and ("event", "installed") in kinds
    first = next(e for e in history["data"] if e["kind"] == "operation" and e["action"] == "install")
    assert first["id"].startswith("operation:") and first["status"] == "ready" and first["actor_email"] == account.email
    limited = await api.http.get(f"/v1/hubs/{hub['id']}/skills/history", params={"limit": 1}, headers=account.headers)
    assert len(limited.json()["data"]) == 1
    assert (
        await api.http.get(f"/v1/hubs/{hub['id']}/skills/history", params={"limit": 201}, headers=account.headers)
    ).status_code == 422


async def test_install_reaches_every_hub_of_the_group(api: Api) -> None:
    account = await api.account()
    hubs = [await api.create_hub(account, name=unique("fleet"), spec={"version": "1", "skills": []}) for _ in range(2)]
    runtime = api.app.state.runtime
    for hub in hubs:
        await runtime.load(hub["id"])
    accepted = await api.http.post(
        f"/v1/hubs/{hubs[0]['id']}/skills", json={"skill": "trivia"}, headers=account.headers
    )
    assert (await settled(api, account, accepted.json()["operation_id"]))["status"] == "ready"
    assert all("trivia" in runtime.observe(hub["id"]).skills for hub in hubs)
    assert (await hub_skills(api, account, hubs[1]["id"]))["trivia"]["state"] == "installed"


async def test_hub_skill_refusals(api: Api) -> None:
    account, stranger = await api.account(), await api.account()
    hub = await api.create_hub(account, name=unique("ref"), spec={"version": "1", "skills": ["jokes"]})
    skills = f"/v1/hubs/{hub['id']}/skills"
    assert_problem(
        await api.http.post(skills, json={"skill": "nope"}, headers=account.headers),
        404,
        "Marketplace skill not found.",
    )
    invalid = await api.http.post(skills, json={"skill": "clock", "version": "v-next!"}, headers=account.headers)
    assert_problem(invalid, 422, "Version 'v-next!' is not valid.")
    assert invalid.json()["code"] == "invalid_version"
    missing = await api.http.post(skills, json={"skill": "clock", "version": "99.0.0"}, headers=account.headers)
    assert missing.status_code == 422 and missing.json()["code"] == "version_unavailable"
    assert_problem(
        await api.http.patch(f"{skills}/clock", json={"version": "latest"}, headers=account.headers),
        404,
        "Skill is not installed on this hub.",
    )
    unmanaged = await api.http.delete(f"{skills}/jokes", headers=account.headers)
    assert unmanaged.status_code == 409 and unmanaged.json()["code"] == "skill_unmanaged"
    assert_problem(await api.http.get(skills, headers=stranger.headers), 404, "Hub not found")
    assert_problem(await api.http.post(skills, json={"skill": "clock"}, headers=stranger.headers), 404, "Hub not found")
    inspect_only = await api.login(account.email, scope="hubs:inspect")
    assert (await api.http.get(skills, headers=inspect_only.headers)).status_code == 200
    assert_problem(
        await api.http.post(skills, json={"skill": "clock"}, headers=inspect_only.headers), 403, "Insufficient scopes"
    )


async def test_operations_are_private_to_their_workspace(api: Api) -> None:
    account, stranger = await api.account(), await api.account()
    hub = await api.create_hub(account, name=unique("priv"), spec={"version": "1", "skills": []})
    accepted = await api.http.post(f"/v1/hubs/{hub['id']}/skills", json={"skill": "clock"}, headers=account.headers)
    operation_id = accepted.json()["operation_id"]
    await rollout(api).wait_idle()
    assert_problem(
        await api.http.get(f"/v1/operations/{operation_id}", headers=stranger.headers), 404, "Operation not found"
    )
    bad = await api.http.get("/v1/operations/not-an-id", headers=account.headers)
    assert_problem(bad, 400, "Operation id is not valid.")
    assert bad.json()["code"] == "invalid_operation_id"
    assert_problem(
        await api.http.get(f"/v1/operations/{uuid.uuid4()}", headers=account.headers), 404, "Operation not found"
    )
    assert (await api.http.get(f"/v1/operations/{operation_id}")).status_code == 401


async def test_hubs_join_groups_of_their_own_workspace_only(api: Api) -> None:
    owner, stranger = await api.account(), await api.account()
    theirs = (await api.http.post("/v1/runtime-groups", json={"name": "theirs"}, headers=stranger.headers)).json()
    body = {"name": unique("join"), "spec": {"version": "1"}, "runtime_group_id": theirs["id"]}
    assert_problem(await api.http.post("/v1/hubs", json=body, headers=owner.headers), 403, "Ownership required")
    body["runtime_group_id"] = str(uuid.uuid4())
    assert_problem(await api.http.post("/v1/hubs", json=body, headers=owner.headers), 404, "Runtime group not found.")


async def test_moving_a_hub_to_another_group_changes_its_skills_live(api: Api) -> None:
    account = await api.account()
    group = (await api.http.post("/v1/runtime-groups", json={"name": "trivia club"}, headers=account.headers)).json()
    skills = await api.http.post(
        f"/v1/runtime-groups/{group['id']}/skills", json={"skill_id": "trivia"}, headers=account.headers
    )
    assert skills.status_code == 200
    hub = await api.create_hub(account, name=unique("move"), spec={"version": "1", "skills": []})
    assert hub["runtime_group_id"] is None  # the workspace default
    runtime = api.app.state.runtime
    assert "trivia" not in (await runtime.load(hub["id"])).skills
    moved = await api.http.patch(
        f"/v1/hubs/{hub['id']}",
        json={"runtime_group_id": group["id"]},
        headers={**account.headers, "If-Match": hub["etag"]},
    )
    assert moved.status_code == 200 and moved.json()["runtime_group_id"] == group["id"]
    assert "trivia" in runtime.observe(hub["id"]).skills
    listing = (await api.http.get(f"/v1/hubs/{hub['id']}/skills", headers=account.headers)).json()
    assert listing["runtime_group_id"] == group["id"] and [r["skill"] for r in listing["data"]] == ["trivia"]
