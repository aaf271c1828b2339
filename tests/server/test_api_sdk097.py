"""The public SDK 0.9.7, unchanged, drives the guide's control-plane calls against ``serve --demo``."""

from __future__ import annotations

import json
from collections.abc import Callable
from subprocess import CompletedProcess

import pytest
from tests.fixtures.server import RunningServer

pytestmark = pytest.mark.interop

GUIDE_CALLS = """
import json
from thalovant import ThalovantControlPlane
api = ThalovantControlPlane({api_url!r})
out = {{}}
page = api.list_public_hubs(limit=12)
out["public"] = [[h["id"], h["slug"], h["title"]] for h in page["data"]]
hub = api.get_public_hub("joke-garden")
out["public_ref"] = hub["public_ref"]
token = api.login({email!r}, {password!r})
out["login_keys"] = sorted(token)
page = api.list_hubs(limit=25)
out["hubs"] = [[h["id"], h["title"]] for h in page["data"]]
hub = api.get_hub(hub["id"])
result = api.create_client_identity(hub["id"], name="sdk097-client", preferred_protocols=("wss", "https", "mqtt"))
out["selected"] = result.selected_protocol
out["endpoint"] = result.endpoint.endpoint
out["identity"] = result.identity.as_dict(include_secrets=False)
out["has_mqtt"] = result.identity.mqtt is not None
typed = api.create_client_identity(hub["id"], name="sdk097-chat", connection_type="web_chat")
out["connection_type"] = typed.connection_type
api.delete_client(typed.client_id)
out["profile"] = api.get_profile()["email"]
print(json.dumps(out))
"""


def test_guide_control_plane_calls(server: RunningServer, run_public_sdk: Callable[..., CompletedProcess[str]]) -> None:
    code = GUIDE_CALLS.format(api_url=server.api_url, email=server.demo_email, password=server.demo_password)
    done = run_public_sdk(code, ca_file=server.ca_file)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    slugs = [entry[1] for entry in out["public"]]
    assert "joke-garden" in slugs
    assert out["public_ref"].startswith("hub_")
    assert "access_token" in out["login_keys"] and "token_id" not in out["login_keys"]
    assert [title for _id, title in out["hubs"] if title == "Joke Garden"] == ["Joke Garden"]
    assert out["selected"] == "wss"
    assert out["endpoint"].startswith(f"wss://127.0.0.1:{server.port}/hubs/")
    assert out["identity"]["default_port"] == server.port
    assert "access_key" not in out["identity"] and "password" not in out["identity"]
    assert out["has_mqtt"] is True
    assert out["connection_type"] == "web_chat"
    assert out["profile"] == server.demo_email
