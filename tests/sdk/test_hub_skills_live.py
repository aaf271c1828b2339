"""Skills on hubs with our SDK against a real server that has a third-party skill package installed.

A connected client is answered by a skill installed after it connected, and no longer once the
skill is removed, without reconnecting; an ``async`` skill that waits on a web service never
holds up another session; a slow or failing skill gets the failure event; a skill that cannot
start fails its operation; everything survives a restart.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.identities import trusting
from tests.fixtures.server import RunningServer
from tests.fixtures.skills import WeatherService, skill_server_env, weather_service

from thalovant import (
    AsyncThalovantControlPlane,
    HubSkillList,
    OperationResource,
    ThalovantAPIError,
    ThalovantBinary,
    ThalovantClient,
    ThalovantControlPlane,
    ThalovantIdentity,
    ThalovantRuntimeError,
)
from thalovant_server.hub.skills.jokes import JOKES

FALLBACK = "Sorry, I can't help with that yet. Ask what this hub can do."


@pytest.fixture(scope="module")
def weather(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WeatherService]:
    with weather_service() as service:
        yield service


@pytest.fixture(scope="module")
def skills_server(tmp_path_factory: pytest.TempPathFactory, weather: WeatherService) -> Iterator[RunningServer]:
    from tests.fixtures.server import new_server

    running = new_server(tmp_path_factory.mktemp("skills-server"), extra_env=skill_server_env(weather.url))
    running.start()
    try:
        with trusting(running):
            yield running
    finally:
        running.stop()


@pytest.fixture
def api(skills_server: RunningServer) -> Iterator[ThalovantControlPlane]:
    with ThalovantControlPlane(skills_server.api_url) as plane:
        plane.login(skills_server.demo_email, skills_server.demo_password)
        yield plane


def new_hub(api: ThalovantControlPlane, *skills: str, group: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f"hub-{uuid.uuid4().hex[:8]}", "spec": {"version": "1", "skills": list(skills)}}
    if group is not None:
        body["runtime_group_id"] = group
    return api.create_hub(body)


def identity_of(api: ThalovantControlPlane, hub: dict[str, Any]) -> ThalovantIdentity:
    return api.create_client_identity(hub["id"], name=f"client-{uuid.uuid4().hex[:8]}").identity


@pytest.fixture
def connect(tmp_path: Path) -> Iterator[Callable[[ThalovantIdentity], ThalovantClient]]:
    opened: list[ThalovantClient] = []

    def make(identity: ThalovantIdentity) -> ThalovantClient:
        client = ThalovantClient(identity, protocol="wss", noise_state_dir=tmp_path / uuid.uuid4().hex)
        client.connect()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def test_marketplace_lists_the_third_party_package(api: ThalovantControlPlane) -> None:
    entries = {e["skill_id"]: e for e in api.list_marketplace_skills()["data"]}
    weather = entries["weather"]
    assert weather["package_name"] == "thalovant-test-skills" and weather["version"] == "1.0.0"
    assert weather["title"] == "Weather" and weather["summary"] == "Reads the forecast from a web service."
    assert weather["intents"] == ["forecast"] and weather["is_active"] is True
    assert {"jokes", "clock", "sleepy", "grumpy"} <= set(entries)
    assert {e["skill_id"] for e in api.list_marketplace_skills(force_refresh=True)["data"]} == set(entries)


def test_install_and_remove_change_what_a_connected_client_hears(
    api: ThalovantControlPlane, connect: Callable[[ThalovantIdentity], ThalovantClient]
) -> None:
    group = api.create_runtime_group({"name": f"live-{uuid.uuid4().hex[:6]}"})
    first, second = new_hub(api, "jokes", group=group["id"]), new_hub(api, group=group["id"])
    client, neighbour = connect(identity_of(api, first)), connect(identity_of(api, second))
    session = client.connection_info().session_id
    assert client.ask("What time is it?").text == FALLBACK

    installed = api.install_hub_skill(first["id"], "clock", wait=True)
    assert installed.state == "installed" and installed.operation is not None
    assert installed.operation.status == "ready" and installed.runtime_group_id == group["id"]
    assert client.ask("What time is it?").text.startswith("It is ")
    assert neighbour.ask("What time is it?").text.startswith("It is ")  # every hub of the group
    assert client.connection_info().session_id == session  # the same connection throughout

    listing = api.list_hub_skills(first["id"])
    assert isinstance(listing, HubSkillList) and listing.source == "ovos-runtime-operator"
    rows = {row.skill: row for row in listing.data}
    assert rows["clock"].state == "installed" and rows["clock"].observed_version == rows["clock"].installed_version
    assert rows["jokes"].state == "unmanaged"

    removed = api.remove_hub_skill(first["id"], "clock", wait=True)
    assert removed.state == "removed"
    assert client.ask("What time is it?").text == FALLBACK
    assert client.ask("Tell me a short clean joke.").text == JOKES[0]
    assert client.connection_info().session_id == session
    history = api.list_hub_skill_history(first["id"], limit=10)["data"]
    assert [(e["kind"], e["action"]) for e in history[:4]] == [
        ("event", "removed"),
        ("operation", "remove"),
        ("event", "installed"),
        ("operation", "install"),
    ]


def test_an_async_skill_never_holds_up_other_sessions(
    api: ThalovantControlPlane, weather: WeatherService, connect: Callable[[ThalovantIdentity], ThalovantClient]
) -> None:
    hub = new_hub(api, "jokes", group=api.create_runtime_group({"name": "weather"})["id"])
    api.install_hub_skill(hub["id"], "weather", wait=True)
    asker, other = connect(identity_of(api, hub)), connect(identity_of(api, hub))
    weather.release.clear()
    weather.asked.clear()
    answers: list[str] = []
    waiting = threading.Thread(target=lambda: answers.append(asker.ask("What is the weather like?", timeout=60).text))
    waiting.start()
    try:
        assert weather.asked.wait(30), "the skill never called the web service"
        assert other.ask("Tell me a short clean joke.").text == JOKES[0]  # answered while the forecast is held
        assert answers == [] and waiting.is_alive()
    finally:
        weather.release.set()
        waiting.join(60)
    assert answers == ["The forecast says sunny."]


def test_a_file_a_skill_sends_reaches_on_binary(
    api: ThalovantControlPlane, connect: Callable[[ThalovantIdentity], ThalovantClient]
) -> None:
    hub = new_hub(api, group=api.create_runtime_group({"name": "till"})["id"])
    api.install_hub_skill(hub["id"], "receipt", wait=True)
    client = connect(identity_of(api, hub))
    got: list[ThalovantBinary] = []
    arrived = threading.Event()
    stop = client.on_binary(lambda binary: (got.append(binary), arrived.set()))
    assert client.ask("Print my receipt.").text == "Here is your receipt."
    assert arrived.wait(10)
    [receipt] = got
    assert receipt.kind == "file" and receipt.file_name == "receipt.txt"
    assert receipt.data == b"RECEIPT\nitem: 1 coffee\ntotal: 2.50\n"
    assert receipt.utterance == "Here is your receipt." and receipt.lang == "en-us"
    stop()


def test_slow_and_failing_skills_get_the_failure_event(
    api: ThalovantControlPlane, connect: Callable[[ThalovantIdentity], ThalovantClient]
) -> None:
    group = api.create_runtime_group({"name": "fragile"})
    api.update_runtime_group_config(group["id"], {"skills": {"timeout_seconds": 0.5}})
    hub = new_hub(api, "jokes", group=group["id"])
    for skill in ("sleepy", "grumpy"):
        api.install_hub_skill(hub["id"], skill, wait=True)
    client = connect(identity_of(api, hub))
    with pytest.raises(ThalovantRuntimeError, match=r"did not answer within 0\.5 s"):
        client.ask("Take a long nap.", timeout=10)
    with pytest.raises(ThalovantRuntimeError, match="failed while handling"):
        client.ask("Cheer me up.", timeout=10)
    assert client.ask("Tell me a short clean joke.").text == JOKES[0]  # the hub and the session carry on
    for _ in range(4):  # five failures in a row quarantine grumpy on this hub
        with pytest.raises(ThalovantRuntimeError):
            client.ask("Cheer me up.", timeout=10)
    assert client.ask("Cheer me up.").text == FALLBACK
    row = {r.skill: r for r in api.list_hub_skills(hub["id"]).data}["grumpy"]
    assert row.state == "quarantined" and row.operator_last_error and "5 faults in a row" in row.operator_last_error
    api.install_hub_skill(hub["id"], "grumpy", wait=True)  # installing it again gives it another chance
    with pytest.raises(ThalovantRuntimeError, match="failed while handling"):
        client.ask("Cheer me up.", timeout=10)


def test_a_skill_that_cannot_start_fails_its_operation(api: ThalovantControlPlane) -> None:
    hub = new_hub(api, group=api.create_runtime_group({"name": "broken"})["id"])
    with pytest.raises(ThalovantAPIError, match="unstartable failed to start"):
        api.install_hub_skill(hub["id"], "unstartable", wait=True)
    accepted = api.install_hub_skill(hub["id"], "unstartable")
    with pytest.raises(ThalovantAPIError) as waited:
        api.wait_for_operation(accepted.operation_id, poll_interval=0.1)
    assert waited.value.code == "install_failed"
    failed = api.get_operation(accepted.operation_id)
    assert failed.status == "failed" and failed.error_code == "install_failed" and failed.terminal_at
    row = {r.skill: r for r in api.list_hub_skills(hub["id"]).data}["unstartable"]
    assert row.state == "failed" and row.operator_last_error and "failed to start" in row.operator_last_error


def test_documented_errors(api: ThalovantControlPlane) -> None:
    hub = new_hub(api, "jokes")
    with pytest.raises(ThalovantAPIError) as unknown:
        api.install_hub_skill(hub["id"], "no-such-skill")
    assert unknown.value.status_code == 404 and unknown.value.detail == "Marketplace skill not found."
    group = api.create_runtime_group({"name": "short-lived"})
    config = api.get_runtime_group_config(group["id"])
    api.update_runtime_group_config(group["id"], {"lang": "de-de"}, merge=False)
    with pytest.raises(ThalovantAPIError) as stale:
        api.request(
            "PUT",
            f"/v1/runtime-groups/{group['id']}/config",
            json_body={"config": {}, "expected_revision": config["revision"]},
        )
    assert stale.value.status_code == 412 and stale.value.detail == "Configuration changed"
    api.delete_runtime_group(group["id"])
    with pytest.raises(ThalovantAPIError) as removed:
        api.get_runtime_group(group["id"])
    assert removed.value.status_code == 404 and removed.value.detail == "Runtime group not found."
    with pytest.raises(ValueError):
        api.list_hub_skill_history(hub["id"], limit=0)


def test_runtime_groups_end_to_end(api: ThalovantControlPlane) -> None:
    groups = api.list_runtime_groups()["data"]
    default = next(g for g in groups if g["is_default"])
    assert api.get_runtime_group(default["id"])["slug"] == "default"
    group = api.create_runtime_group({"name": "Lobby kiosks", "description": "front desk"})
    assert api.update_runtime_group(group["id"], {"description": "lobby"})["description"] == "lobby"
    api.update_runtime_group_config(group["id"], {"lang": "en-gb", "skills": {"timeout_seconds": 5}})
    merged = api.update_runtime_group_config(group["id"], {"skills": {"extra": True}}, personas={"p": {}})
    assert merged["config"] == {"lang": "en-gb", "skills": {"timeout_seconds": 5, "extra": True}}
    assert merged["personas"] == {"p": {}}
    desired = api.install_runtime_group_skill(group["id"], "trivia")
    assert desired["skill_id"] == "trivia" and desired["source_type"] == "catalog" and desired["active"] is True
    hub = new_hub(api, group=group["id"])
    inventory = api.list_runtime_group_inventory(group["id"], refresh=True)
    assert inventory["source"] == "ovos-runtime-operator" and [r["skill_id"] for r in inventory["data"]] == ["trivia"]
    cached = api.list_runtime_group_marketplace(group["id"])
    trivia = next(e for e in cached["data"] if e["skill_id"] == "trivia")
    assert trivia["installed"] is True and trivia["total_intents"] >= 1
    released = api.release_runtime_group(group["id"], channel="stable", version="1.0.0")
    assert released["spec"]["release"]["version"] == "1.0.0"
    api.uninstall_runtime_group_skill(group["id"], "trivia")
    assert [r.skill for r in api.list_hub_skills(hub["id"]).data] == []
    with pytest.raises(ThalovantAPIError) as in_use:
        api.delete_runtime_group(group["id"])
    assert in_use.value.status_code == 409


def test_operations_and_admission_waits(api: ThalovantControlPlane) -> None:
    hub = new_hub(api, group=api.create_runtime_group({"name": "ops"})["id"])
    accepted = api.install_hub_skill(hub["id"], "clock")
    done = api.wait_for_operation(accepted.operation_id, poll_interval=0.1)
    assert isinstance(done, OperationResource) and done.status == "ready" and done.kind == "hub.skill.install"
    assert api.wait_for_operation({"links": {"self": f"/v1/operations/{done.id}"}}).id == done.id
    api.wait_for_admission(done, poll_interval=0.1)
    api.wait_for_admission(None)
    with pytest.raises(ThalovantAPIError, match="outside the Thalovant API"):
        api.wait_for_operation({"links": {"self": f"https://elsewhere.example/v1/operations/{done.id}"}})


def test_async_control_plane(skills_server: RunningServer) -> None:
    async def scenario() -> tuple[str, str]:
        async with AsyncThalovantControlPlane(skills_server.api_url) as plane:
            await plane.login(skills_server.demo_email, skills_server.demo_password)
            group = await plane.create_runtime_group({"name": "async"})
            hub = await plane.create_hub(
                {"name": f"hub-{uuid.uuid4().hex[:8]}", "spec": {"version": "1"}, "runtime_group_id": group["id"]}
            )
            accepted = await plane.install_hub_skill(hub["id"], "trivia", wait=True)
            listing = await plane.list_hub_skills(hub["id"])
            return accepted.state, listing.data[0].state

    assert asyncio.run(scenario()) == ("installed", "installed")


def test_installed_skills_survive_a_restart(server_factory: Callable[..., RunningServer], tmp_path: Path) -> None:
    server = server_factory(extra_env=skill_server_env())
    with trusting(server), ThalovantControlPlane(server.api_url) as api:
        api.login(server.demo_email, server.demo_password)
        hub = api.get_public_hub("joke-garden")
        api.install_hub_skill(hub["id"], "clock", wait=True)
        identity = identity_of(api, hub)
        server.restart()
        assert {r.skill: r.state for r in api.list_hub_skills(hub["id"]).data}["clock"] == "installed"
        with ThalovantClient(identity, protocol="wss", noise_state_dir=tmp_path / "noise") as client:
            assert client.ask("What time is it?").text.startswith("It is ")
