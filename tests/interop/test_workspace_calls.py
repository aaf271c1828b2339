"""Memory, analytics, release, rating and runtime capabilities through each SDK, end to end.

The same snippet runs with the public SDK 0.9.7 (its venv, unchanged) and with ours, against
``serve --demo``: a client asks the hub to remember something over WSS; the owner finds it
with the memory API, corrects it, and the hub recalls the correction; deletes it, and the hub
forgets; the analytics overview counts what the hub answered (with the utterance text only
once the owner turned recording on); a release, a platform-image refusal, the hub's live
capabilities, and another user's rating of the public hub.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from tests.fixtures.peers import OUR_PYTHON, run_python, trust_env
from tests.fixtures.server import RunningServer

pytestmark = pytest.mark.interop

SNIPPET = """
import json
import thalovant
from thalovant import ThalovantClient, ThalovantControlPlane
api = ThalovantControlPlane({api_url!r})
api.login({email!r}, {password!r})
out = {{}}
hub = api.create_hub({{"name": {hub_name!r}, "visibility": "public",
                      "spec": {{"version": "1", "skills": ["jokes", "memory", "capabilities"]}}}})
caps = api.get_hub_runtime_capabilities(hub["id"])
out["caps"] = [caps["source"], sorted(s["id"] for s in caps["skills"]), caps["counts"]["total_intents"]]
result = api.create_client_identity(hub["id"], name="memory-client")
def ask(text):
    with ThalovantClient(result.identity, protocol="wss") as client:
        return client.ask(text).text
out["told"] = ask("Remember that my favorite drink is tea.")
out["recalled"] = ask("What is my favorite drink?")
page = api.list_memory_items(scope="client", hub_id=hub["id"], query="drink")
item = page["data"][0]
out["item"] = [item["scope"], item["kind"], item["subject"], item["content"], item["client_id"] == result.client_id,
               page["meta"]["total"]]
out["got"] = api.get_memory_item(item["id"])["content"]
out["patched"] = api.update_memory_item(item["id"], {{"content": "coffee"}})["content"]
out["recalled_after_patch"] = ask("What is my favorite drink?")
api.delete_memory_item(item["id"])
out["recalled_after_delete"] = ask("What is my favorite drink?")
try:
    api.get_memory_item(item["id"])
except thalovant.ThalovantAPIError as exc:
    out["deleted_get"] = [exc.status_code, exc.detail]
deleted = api.list_memory_items(hub_id=hub["id"], include_deleted=True)["data"]
out["listed_deleted"] = [entry["deleted"] for entry in deleted]
note = api.create_memory_item({{"scope": "workspace", "kind": "preference", "content": "Answer in English",
                                "consentScope": "dashboard", "retention_policy": "30d"}})
out["note"] = [note["scope"], note["consent_scope"], note["retention_policy"], note["expires_at"] is not None]
summary = api.get_memory_summary()
out["summary"] = [summary["by_kind"].get("preference", 0) >= 1, summary["deleted"] >= 1]
overview = api.get_analytics_overview(range="1d", hub_id=hub["id"])
out["overview"] = [overview["meta"]["scope"], overview["totals"]["requests"],
                   sorted((row["skill"], row["intent"], row["count"]) for row in overview["by_intent"]),
                   overview["by_carrier"], overview["top_utterances"]]
spec = dict(hub["spec"], analytics={{"record_utterances": True}})
hub = api.update_hub(hub["id"], {{"spec": spec}}, etag=hub["etag"])
ask("Tell me a joke")
recorded = api.get_analytics_overview(range="1d", hub_id=hub["id"], message="utterance")
out["recorded"] = recorded["top_utterances"]
out["by_intent_filter"] = api.get_analytics_overview(range="1d", hub_id=hub["id"], intent="memory:recall")["totals"]
released = api.release_hub(hub["id"], channel="beta", reason="try the beta")
out["release"] = [released["spec"]["release"]["channel"], released["spec"]["image"]]
try:
    api.release_hub(hub["id"], images={{"listener": "docker.io/someone/listener:1"}})
except thalovant.ThalovantAPIError as exc:
    out["foreign_image"] = [exc.status_code, exc.code, sorted((exc.problem or {{}}).get("refused_images", {{}}))]
try:
    api.set_hub_rating(hub["id"], 5)
except thalovant.ThalovantAPIError as exc:
    out["own_rating"] = [exc.status_code, exc.code]
rater = ThalovantControlPlane({api_url!r})
rater.login({rater_email!r}, {rater_password!r})
out["rated"] = [rater.set_hub_rating(hub["id"], 4)[key] for key in ("rating_average", "rating_count", "my_rating")]
public = [h for h in rater.list_public_hubs(limit=100)["data"] if h["id"] == hub["id"]][0]
out["public_average"] = public["rating_average"]
out["cleared"] = [rater.clear_hub_rating(hub["id"])[key] for key in ("rating_average", "rating_count")]
print(json.dumps(out))
"""


def _run(python: Path, server: RunningServer, tmp_path: Path) -> dict[str, Any]:
    rater_email = f"rater-{uuid.uuid4().hex[:8]}@example.com"
    rater_password = secrets.token_urlsafe(12)
    server.admin("user", "create", "--email", rater_email, "--password-stdin", stdin=rater_password)
    code = SNIPPET.format(
        api_url=server.api_url,
        email=server.demo_email,
        password=server.demo_password,
        hub_name=f"parity-{uuid.uuid4().hex[:8]}",
        rater_email=rater_email,
        rater_password=rater_password,
    )
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), **trust_env(server.ca_file)}
    done: CompletedProcess[str] = run_python(python, code, env=env, cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("sdk", ["sdk097", "ours"])
def test_workspace_calls_through_each_sdk(
    sdk: str, server: RunningServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    python = request.getfixturevalue("public_sdk_python") if sdk == "sdk097" else OUR_PYTHON
    out = _run(python, server, tmp_path)
    assert out["caps"] == ["ovos-runtime", ["capabilities", "jokes", "memory"], out["caps"][2]]
    assert out["caps"][2] >= 5
    assert out["told"] == "Okay, I will remember that your favorite drink is tea."
    assert out["recalled"] == "You mentioned that your favorite drink is tea."
    assert out["item"] == ["client", "fact", "favorite drink", "tea", True, 1]
    assert out["got"] == "tea" and out["patched"] == "coffee"
    assert out["recalled_after_patch"] == "You mentioned that your favorite drink is coffee."
    assert out["recalled_after_delete"] == "You have not told me anything to remember yet."
    assert out["deleted_get"] == [404, "Memory item not found"]
    assert out["listed_deleted"] == [True]
    assert out["note"] == ["workspace", "dashboard", "30d", True]
    assert out["summary"] == [True, True]
    scope, requests, by_intent, by_carrier, texts = out["overview"]
    assert scope == "workspace" and requests == 4
    assert by_intent == [["memory", "recall", 3], ["memory", "remember", 1]]
    assert by_carrier == [{"carrier": "wss", "count": 4}]
    assert texts == []  # recording is off until the owner turns it on
    assert out["recorded"] == [{"utterance": "Tell me a joke", "count": 1}]
    assert out["by_intent_filter"]["requests"] == 3
    assert out["release"] == ["beta", "ghcr.io/thalovant/hivemind-listener:beta"]
    assert out["foreign_image"] == [403, "platform_image_required", ["listener"]]
    assert out["own_rating"] == [403, "own_hub"]
    assert out["rated"] == [4.0, 1, 4]
    assert out["public_average"] == 4.0
    assert out["cleared"] == [None, 0]
