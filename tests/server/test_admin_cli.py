"""``thalovant-server admin ...`` through click's runner, on a throw-away data directory."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from tests.fixtures.identities import new_identity, trusting
from tests.fixtures.server import RunningServer, server_command

from thalovant.client import AsyncThalovantClient
from thalovant.protocol.psk import derive_psk
from thalovant_server.app import open_control_plane
from thalovant_server.cli import main
from thalovant_server.config import ServerConfig, save_settings


def run(*args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


async def _lookup(config: ServerConfig, hub_id: str, access_key: str) -> tuple[bytes | None, str | None]:
    async with open_control_plane(config) as plane:
        directory = plane.directory()
        found = await directory.find_client(hub_id, access_key)
        keys = await directory.load_hub(hub_id)
    return (found.psk if found else None), (keys.node_id if keys else None)


def test_user_hub_and_client_create_write_a_private_identity(tmp_path: Path) -> None:
    data = tmp_path / "data"
    save_settings(ServerConfig(data_dir=data, host="127.0.0.1", port=9443))
    user = json.loads(
        run(
            "admin",
            "user",
            "create",
            "--email",
            "Ops@Example.com",
            "--password-stdin",
            "--data-dir",
            str(data),
            stdin="s3cret-pass\n",
        )
    )
    assert user["email"] == "ops@example.com"
    hub = json.loads(
        run(
            "admin",
            "hub",
            "create",
            "--slug",
            "front-desk",
            "--title",
            "Front Desk",
            "--public",
            "--skill",
            "jokes",
            "--skill",
            "clock",
            "--owner",
            "ops@example.com",
            "--data-dir",
            str(data),
        )
    )
    assert hub["slug"] == "front-desk" and hub["visibility"] == "public"
    assert hub["spec"]["skills"] == ["jokes", "clock"] and hub["owner_id"] == user["id"]
    out = tmp_path / "ids" / "kiosk.json"
    created = json.loads(
        run(
            "admin",
            "client",
            "create",
            "--hub",
            "front-desk",
            "--name",
            "kiosk",
            "--out",
            str(out),
            "--data-dir",
            str(data),
        )
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    identity = json.loads(out.read_text())
    assert identity["access_key"] and identity["password"] and identity["site_id"] == "kiosk"
    assert identity["default_master"] == "https://127.0.0.1" and identity["default_port"] == 9443
    assert identity["data_plane_endpoints"]["wss"] == f"wss://127.0.0.1:9443/hubs/{hub['id']}"
    assert identity["mqtt"]["topic_prefix"] and created["hub_id"] == hub["id"]
    assert identity["password"] not in json.dumps(created) and identity["access_key"] not in json.dumps(created)
    psk, node_id = asyncio.run(_lookup(ServerConfig(data_dir=data), hub["id"], identity["access_key"]))
    assert node_id is not None and psk == derive_psk(identity["password"], node_id)


def test_admin_refusals_are_clean_errors(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    runner = CliRunner()
    no_owner = runner.invoke(main, ["admin", "hub", "create", "--slug", "x", "--title", "X", "--data-dir", data])
    assert no_owner.exit_code == 1 and "admin user create" in no_owner.output
    run("admin", "user", "create", "--email", "a@example.com", "--password-stdin", "--data-dir", data, stdin="pw-pw\n")
    again = runner.invoke(
        main,
        ["admin", "user", "create", "--email", "a@example.com", "--password-stdin", "--data-dir", data],
        input="other",
    )
    assert again.exit_code == 1 and "already exists" in again.output and "other" not in again.output
    bad_slug = runner.invoke(main, ["admin", "hub", "create", "--slug", "Bad Slug", "--title", "X", "--data-dir", data])
    assert bad_slug.exit_code == 1 and "--slug" in bad_slug.output
    missing = runner.invoke(
        main,
        [
            "admin",
            "client",
            "create",
            "--hub",
            "nope",
            "--name",
            "n",
            "--out",
            str(tmp_path / "i.json"),
            "--data-dir",
            data,
        ],
    )
    assert missing.exit_code == 1 and "no hub nope" in missing.output
    assert not (tmp_path / "i.json").exists()


def test_passwords_are_never_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = str(tmp_path / "data")
    runner = CliRunner()
    refused = runner.invoke(
        main, ["admin", "user", "create", "--email", "b@example.com", "--password", "pw", "--data-dir", data]
    )
    assert refused.exit_code == 1 and "not taken as arguments" in refused.output
    no_input = runner.invoke(
        main, ["admin", "user", "create", "--email", "b@example.com", "--data-dir", data], input=""
    )
    assert no_input.exit_code == 1 and "--password-stdin" in no_input.output
    monkeypatch.setenv("THALOVANT_ADMIN_PASSWORD", "from-the-environment")
    created = json.loads(run("admin", "user", "create", "--email", "b@example.com", "--data-dir", data))
    assert created["email"] == "b@example.com"


def test_list_reset_and_delete_users_hubs_and_clients(server: RunningServer, tmp_path: Path) -> None:
    server.admin("user", "create", "--email", "ops@example.com", "--password-stdin", stdin="first-password\n")
    users = [json.loads(line) for line in server.admin("user", "list").stdout.splitlines()]
    assert {"demo@example.com", "ops@example.com"} <= {u["email"] for u in users}

    server.admin("user", "reset-password", "--email", "ops@example.com", "--password-stdin", stdin="second-password\n")
    with httpx.Client(base_url=server.api_url, verify=str(server.ca_file)) as http:
        for password, status in (("first-password", 401), ("second-password", 200)):
            answer = http.post("/v1/auth/token", json={"email": "ops@example.com", "password": password})
            assert answer.status_code == status

    server.admin("hub", "create", "--slug", "to-delete", "--title", "Doomed", "--owner", "ops@example.com")
    assert "to-delete" in {json.loads(line)["slug"] for line in server.admin("hub", "list").stdout.splitlines()}
    server.admin("client", "create", "--hub", "to-delete", "--name", "kiosk", "--out", str(tmp_path / "id.json"))
    [listed] = [json.loads(line) for line in server.admin("client", "list", "--hub", "to-delete").stdout.splitlines()]
    assert listed["name"] == "kiosk" and "password" not in listed and "access_key" not in listed

    refused = subprocess.run(
        [
            *server_command(),
            "admin",
            "user",
            "delete",
            "--email",
            "ops@example.com",
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        env=server.env(),
        timeout=120,
    )
    assert refused.returncode == 1 and "delete those first" in refused.stderr + refused.stdout

    server.admin("client", "delete", "--id", listed["id"])
    assert server.admin("client", "list", "--hub", "to-delete").stdout.strip() == ""
    server.admin("hub", "delete", "--hub", "to-delete")
    assert "to-delete" not in server.admin("hub", "list").stdout
    server.admin("user", "delete", "--email", "ops@example.com")
    assert "ops@example.com" not in server.admin("user", "list").stdout


async def test_an_admin_delete_ends_the_clients_live_session(server: RunningServer, tmp_path: Path) -> None:
    with trusting(server):
        identity = new_identity(server, "deleted-by-admin")
        client = AsyncThalovantClient(identity, protocol="wss", noise_state_dir=tmp_path / "n", auto_reconnect=False)
        await client.connect()
        try:
            link = client.connection_info()
            assert link.phase == "ready"
            client_id = next(
                json.loads(line)["id"]
                for line in server.admin("client", "list").stdout.splitlines()
                if json.loads(line)["name"] == "deleted-by-admin"
            )
            await asyncio.to_thread(server.admin, "client", "delete", "--id", client_id)
            async with asyncio.timeout(60):  # until the server has closed the session
                while client.connected:
                    await asyncio.sleep(0.01)
            assert client.connection_info().phase == "error"
        finally:
            await client.close()
