"""The public Thalovant SDK 0.9.7, unchanged, on skills, runtime groups and operations of our server.

Snippets run in the SDK's own virtual environment; its CLI (``thalovant skills ...``) runs as
the program the SDK installs. The server has a third-party skill package installed
(tests/fixtures/skill_packages).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fixtures.peers import trust_env
from tests.fixtures.server import RunningServer, new_server
from tests.fixtures.skills import skill_server_env
from tests.interop.test_public_sdk_wss import SdkRunner, snippet_runner

pytestmark = pytest.mark.interop

FALLBACK = "Sorry, I can't help with that yet. Ask what this hub can do."


@pytest.fixture(scope="module")
def skills_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = new_server(tmp_path_factory.mktemp("skills-server"), extra_env=skill_server_env())
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def sdk(run_public_sdk: SdkRunner, skills_server: RunningServer) -> Callable[..., Any]:
    return snippet_runner(run_public_sdk, skills_server, "wss")


def signed_in(server: RunningServer) -> str:
    return f"""
api = ThalovantControlPlane(os.environ["THALOVANT_API_URL"])
api.login({server.demo_email!r}, {server.demo_password!r})
"""


@pytest.fixture(scope="module")
def api_token(skills_server: RunningServer) -> str:
    """A ``tvpat_`` API token of the demo account (what the CLI takes)."""
    with httpx.Client(base_url=skills_server.api_url, verify=str(skills_server.ca_file)) as http:
        login = http.post(
            "/v1/auth/token", json={"email": skills_server.demo_email, "password": skills_server.demo_password}
        )
        session = {"authorization": f"Bearer {login.json()['access_token']}"}
        created = http.post("/v1/auth/api-tokens", json={"name": "cli"}, headers=session)
        assert created.status_code == 201, created.text
        token: str = created.json()["access_token"]
        return token


def test_install_and_remove_reach_a_connected_public_sdk_client(
    sdk: Callable[..., Any], skills_server: RunningServer
) -> None:
    code = (
        signed_in(skills_server)
        + """
group = api.create_runtime_group({"name": "public-sdk-live"})
hub = api.create_hub({"name": "live-" + os.urandom(4).hex(), "spec": {"version": "1", "skills": ["jokes"]},
                      "runtimeGroupId": group["id"]})
result = api.create_client_identity(hub["id"], name="public-sdk-live")
c = ThalovantClient(result.identity, protocol="wss", noise_state_dir="keys", reply_settle_seconds=0)
c.connect()
connected_at = c.connection_info().connected_at
before = c.ask("What time is it?").text
installed = api.install_hub_skill(hub["id"], "clock", wait=True)
during = c.ask("What time is it?").text
listing = api.list_hub_skills(hub["id"])
removed = api.remove_hub_skill(hub["id"], "clock", wait=True)
after = c.ask("What time is it?").text
same = c.connection_info().connected_at == connected_at
history = api.list_hub_skill_history(hub["id"], limit=4)
operation = api.get_operation(installed.operation_id)
c.close()
emit_result({
    "before": before, "during": during, "after": after, "same_connection": same,
    "installed": [installed.state, installed.runtime_group_id == group["id"], installed.operation.status],
    "removed": removed.state,
    "rows": {row.skill: [row.state, row.observed_version == row.installed_version] for row in listing.data},
    "source": listing.source,
    "history": [[e["kind"], e["action"]] for e in history["data"]],
    "operation": [operation.status, operation.kind, operation.aggregate_type, operation.links["self"]],
})
"""
    )
    result = sdk(code)
    assert result["before"] == FALLBACK and result["after"] == FALLBACK
    assert result["during"].startswith("It is ")
    assert result["same_connection"] is True
    assert result["installed"] == ["installed", True, "ready"] and result["removed"] == "removed"
    assert result["rows"] == {"clock": ["installed", True], "jokes": ["unmanaged", True]}
    assert result["source"] == "ovos-runtime-operator"
    assert result["history"] == [
        ["event", "removed"],
        ["operation", "remove"],
        ["event", "installed"],
        ["operation", "install"],
    ]
    status, kind, aggregate, link = result["operation"]
    assert (status, kind, aggregate) == ("ready", "hub.skill.install", "hub") and link.startswith("/v1/operations/")


def test_failure_events_reach_the_public_sdk(sdk: Callable[..., Any], skills_server: RunningServer) -> None:
    code = (
        signed_in(skills_server)
        + """
from thalovant import ThalovantRuntimeError
group = api.create_runtime_group({"name": "public-sdk-fragile"})
config = api.update_runtime_group_config(group["id"], {"skills": {"timeout_seconds": 0.5}})
hub = api.create_hub({"name": "fragile-" + os.urandom(4).hex(), "spec": {"version": "1", "skills": ["jokes"]},
                      "runtimeGroupId": group["id"]})
for skill in ("sleepy", "grumpy"):
    api.install_hub_skill(hub["id"], skill, wait=True)
result = api.create_client_identity(hub["id"], name="public-sdk-fragile")
outcomes = []
with ThalovantClient(result.identity, protocol="wss", noise_state_dir="keys", reply_settle_seconds=0) as c:
    for text in ("Take a long nap.", "Cheer me up."):
        try:
            outcomes.append(["answered", c.ask(text, timeout=10).text])
        except ThalovantRuntimeError as exc:
            outcomes.append([type(exc).__name__, str(exc)])
    outcomes.append(["answered", c.ask("Tell me a short clean joke.").text])
emit_result({"config": config["config"], "outcomes": outcomes})
"""
    )
    result = sdk(code)
    assert result["config"] == {"skills": {"timeout_seconds": 0.5}}
    nap, grump, joke = result["outcomes"]
    assert nap[0] == "ThalovantRuntimeError" and "did not answer within 0.5 s" in nap[1]
    assert grump[0] == "ThalovantRuntimeError" and "failed while handling" in grump[1]
    assert joke[0] == "answered" and joke[1]


def test_a_skills_file_reaches_the_public_sdks_on_binary(sdk: Callable[..., Any], skills_server: RunningServer) -> None:
    code = (
        signed_in(skills_server)
        + """
group = api.create_runtime_group({"name": "public-sdk-till"})
hub = api.create_hub({"name": "till-" + os.urandom(4).hex(), "spec": {"version": "1"}, "runtimeGroupId": group["id"]})
api.install_hub_skill(hub["id"], "receipt", wait=True)
result = api.create_client_identity(hub["id"], name="public-sdk-till")
got, arrived = [], threading.Event()
with ThalovantClient(result.identity, protocol="wss", noise_state_dir="keys", reply_settle_seconds=0) as c:
    c.on_binary(lambda binary: (got.append(binary), arrived.set()))
    text = c.ask("Print my receipt.").text
    arrived.wait(10)
emit_result({"text": text, "binaries": [[b.kind, b.file_name, b.utterance, b.data.decode()] for b in got]})
"""
    )
    result = sdk(code)
    assert result["text"] == "Here is your receipt."
    assert result["binaries"] == [
        ["file", "receipt.txt", "Here is your receipt.", "RECEIPT\nitem: 1 coffee\ntotal: 2.50\n"]
    ]


def test_runtime_groups_marketplace_and_operations(sdk: Callable[..., Any], skills_server: RunningServer) -> None:
    code = (
        signed_in(skills_server)
        + """
from thalovant import ThalovantAPIError
out = {}
def refusal(call):
    try:
        call()
    except ThalovantAPIError as exc:
        return [exc.status_code, exc.detail, exc.code]
    return None
market = api.list_marketplace_skills()
out["market"] = sorted(e["skill_id"] for e in market["data"])
weather = next(e for e in market["data"] if e["skill_id"] == "weather")
out["weather"] = [weather["version"], weather["package_name"], weather["intents"]]
out["refreshed"] = len(api.list_marketplace_skills(force_refresh=True, include_inactive=True)["data"])
groups = api.list_runtime_groups()["data"]
out["default"] = [g["slug"] for g in groups if g["is_default"]]
group = api.create_runtime_group({"name": "Public SDK group", "description": "made by 0.9.7"})
out["created"] = [group["name"], group["is_default"], api.get_runtime_group(group["id"])["id"] == group["id"]]
out["patched"] = api.update_runtime_group(group["id"], {"description": "changed"})["description"]
before = api.get_runtime_group_config(group["id"])
merged = api.update_runtime_group_config(group["id"], {"lang": "en-gb", "skills": {"timeout_seconds": 3}})
merged = api.update_runtime_group_config(group["id"], {"skills": {"note": "kept"}}, personas={"host": {"name": "Io"}})
replaced = api.update_runtime_group_config(group["id"], {"lang": "fr-fr"}, merge=False)
out["config"] = [len(before["revision"]), merged["config"], merged["personas"]]
out["config"] += [replaced["config"], replaced["personas"]]
desired = api.install_runtime_group_skill(group["id"], "trivia")
out["desired"] = [desired["skill_id"], desired["source_type"], desired["active"]]
hub = api.create_hub({"name": "grp-" + os.urandom(4).hex(), "spec": {"version": "1"}, "runtimeGroupId": group["id"]})
inventory = api.list_runtime_group_inventory(group["id"], refresh=True)
out["inventory"] = [inventory["source"], [r["skill_id"] for r in inventory["data"]]]
view = api.list_runtime_group_marketplace(group["id"])
out["group_market"] = next([e["installed"], e["active"]] for e in view["data"] if e["skill_id"] == "trivia")
out["release"] = api.release_runtime_group(group["id"], channel="stable", version="1.0.0")["spec"]["release"]["channel"]
api.uninstall_runtime_group_skill(group["id"], "trivia")
out["after_uninstall"] = [r.skill for r in api.list_hub_skills(hub["id"]).data]
accepted = api.install_hub_skill(hub["id"], "clock")
done = api.wait_for_operation(accepted.operation_id, poll_interval=0.2)
out["waited"] = [done.status, done.id == accepted.operation_id]
api.wait_for_admission(done, poll_interval=0.2)
updated = api.update_hub_skill(hub["id"], "clock", version=done.details["resolved_version"], wait=True)
out["updated"] = updated.state
out["unknown_skill"] = refusal(lambda: api.install_hub_skill(hub["id"], "no-such-skill"))
out["bad_version"] = refusal(lambda: api.install_hub_skill(hub["id"], "trivia", version="not a version"))
resolved = done.details["resolved_version"]
out["same_version"] = refusal(lambda: api.install_hub_skill(hub["id"], "clock", version=resolved))
out["in_use"] = refusal(lambda: api.delete_runtime_group(group["id"]))
empty = api.create_runtime_group({"name": "to delete"})
api.delete_runtime_group(empty["id"])
out["removed_group"] = refusal(lambda: api.get_runtime_group(empty["id"]))
out["removed_group_config"] = refusal(lambda: api.get_runtime_group_config(empty["id"]))
out["bad_operation"] = refusal(lambda: api.get_operation("not-an-operation"))
emit_result(out)
"""
    )
    out = sdk(code)
    assert {"clock", "jokes", "trivia", "weather", "sleepy", "grumpy"} <= set(out["market"])
    assert out["weather"] == ["1.0.0", "thalovant-test-skills", ["forecast"]]
    assert out["refreshed"] == len(out["market"])
    assert out["default"] == ["default"]
    assert out["created"] == ["Public SDK group", False, True] and out["patched"] == "changed"
    revision_length, merged, personas, replaced, kept_personas = out["config"]
    assert revision_length == 64
    assert merged == {"lang": "en-gb", "skills": {"timeout_seconds": 3, "note": "kept"}}
    assert personas == kept_personas == {"host": {"name": "Io"}} and replaced == {"lang": "fr-fr"}
    assert out["desired"] == ["trivia", "catalog", True]
    assert out["inventory"] == ["ovos-runtime-operator", ["trivia"]]
    assert out["group_market"] == [True, True] and out["release"] == "stable"
    assert out["after_uninstall"] == []
    assert out["waited"] == ["ready", True]
    assert out["updated"] == "installed"
    assert out["unknown_skill"] == [404, "Marketplace skill not found.", None]
    assert out["bad_version"] == [422, "Version 'not a version' is not valid.", "invalid_version"]
    assert out["same_version"] == [409, "Skill version already installed.", "skill_version_already_installed"]
    assert out["in_use"][0] == 409
    assert out["removed_group"] == [404, "Runtime group not found.", None] == out["removed_group_config"]
    assert out["bad_operation"] == [400, "Operation id is not valid.", "invalid_operation_id"]


def cli(
    public_sdk_python: Path, server: RunningServer, token: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """The public SDK's own ``thalovant`` program, with the API URL and token from the environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("THALOVANT_", "PYTHON"))}
    env = {**base, **trust_env(server.ca_file), "THALOVANT_API_URL": server.api_url, "THALOVANT_API_TOKEN": token}
    program = public_sdk_python.parent / "thalovant"
    return subprocess.run([str(program), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=180)


def test_the_public_sdk_cli_manages_hub_skills(
    public_sdk_python: Path, skills_server: RunningServer, api_token: str, tmp_path: Path
) -> None:
    with httpx.Client(base_url=skills_server.api_url, verify=str(skills_server.ca_file)) as http:
        headers = {"authorization": f"Bearer {api_token}"}
        group = http.post("/v1/runtime-groups", json={"name": "cli"}, headers=headers).json()
        hub = http.post(
            "/v1/hubs",
            json={
                "name": f"cli-{uuid.uuid4().hex[:8]}",
                "spec": {"version": "1", "skills": ["jokes"]},
                "runtime_group_id": group["id"],
            },
            headers=headers,
        ).json()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(public_sdk_python, skills_server, api_token, "skills", *args, "--hub", hub["id"], cwd=tmp_path)

    listed = run("list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["jokes\t0.1.0\tunmanaged"]
    accepted = run("add", "clock")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("accepted: installing clock") and "(operation " in accepted.stdout
    added = run("add", "trivia", "--wait")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip().startswith("installed: trivia")
    listing = cli(
        public_sdk_python, skills_server, api_token, "--json", "skills", "list", "--hub", hub["id"], cwd=tmp_path
    )
    as_json = json.loads(listing.stdout)
    states = {row["skill"]: row["state"] for row in as_json["data"]}
    assert states["trivia"] == "installed" and states["jokes"] == "unmanaged" and "clock" in states
    version = next(row["installed_version"] for row in as_json["data"] if row["skill"] == "trivia")
    pinned = run("update", "trivia", "--version", version, "--wait")  # from "latest" to a pinned version
    assert pinned.returncode == 0 and pinned.stdout.strip() == f"installed: trivia@{version}", pinned.stderr
    same = run("update", "trivia", "--version", version, "--wait")
    assert same.returncode == 1 and "Skill version already installed." in same.stderr
    removed = run("remove", "trivia", "--wait")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip().startswith("removed: trivia")
    unknown = run("add", "no-such-skill")
    assert unknown.returncode == 1 and "Marketplace skill not found." in unknown.stderr
    broken = run("add", "unstartable", "--wait")
    assert broken.returncode == 1 and "failed to start" in broken.stderr
    final = run("list")
    lines = dict(line.split("\t", 1) for line in final.stdout.splitlines())
    assert "trivia" not in lines and lines["clock"].endswith("installed")
    assert "failed" in lines["unstartable"] and "error=" in lines["unstartable"]
