"""``thalovant-server admin ...`` through click's runner, on a throw-away data directory."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

from click.testing import CliRunner

from thalovant.protocol.psk import derive_psk
from thalovant_server.app import open_control_plane
from thalovant_server.cli import main
from thalovant_server.config import ServerConfig, save_settings


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
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
            "--password",
            "s3cret-pass",
            "--data-dir",
            str(data),
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
    run("admin", "user", "create", "--email", "a@example.com", "--password", "pw-pw-pw-pw", "--data-dir", data)
    again = runner.invoke(
        main, ["admin", "user", "create", "--email", "a@example.com", "--password", "other", "--data-dir", data]
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
