"""The small defences: escaped log values, exclusive temporary files, the pid check, quiet 409s.

Each runs against the real thing: a ``serve`` process and its log, the ``admin`` command in a
process of its own, the control-plane app.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import ssl
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import websockets
from tests.fixtures.server import RunningServer, server_command
from tests.server.conftest import Api

from thalovant import files as sdk_files
from thalovant_server import files
from thalovant_server.app import open_control_plane
from thalovant_server.config import ServerConfig
from thalovant_server.logs import escape_control
from thalovant_server.reload import PID_FILE, process_start_time
from thalovant_server.store import accounts, hubs
from thalovant_server.store.hub_spec import normalise_spec

EVIL = "x\nFAKE 2026-01-01 INFO thalovant_server: admin logged in\x1b[2J\u202e"


def _authorization(access_key: str) -> str:
    return base64.b64encode(f"evil\nagent:{access_key}".encode()).decode()


def test_control_characters_in_client_supplied_values_are_escaped_in_the_log(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory(["--log-level", "debug"])
    mark = len(server.output)
    path = quote(EVIL, safe="")
    with httpx.Client(base_url=server.api_url, verify=str(server.ca_file), timeout=30) as http:
        refused = http.post(f"/hubs/{path}/connect", params={"authorization": _authorization("k" * 43)})
        assert refused.status_code == 401

    async def dial() -> None:
        context = ssl.create_default_context(cafile=str(server.ca_file))
        url = f"wss://127.0.0.1:{server.port}/hubs/{path}?authorization={quote(_authorization('k' * 43))}"
        async with websockets.connect(url, ssl=context) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()

    asyncio.run(dial())
    escaped = escape_control(EVIL)
    server.wait_for_output(f"WSS refused for hub {escaped}")
    lines = server.output[mark:]
    # the HTTPS carrier looks hubs up by their lowercased (canonical) spelling
    assert any(f"HTTPS refused for hub {escape_control(EVIL.lower())}" in line for line in lines)
    assert not any(line.startswith("FAKE") for line in lines)
    assert not any(ch in line for line in lines for ch in "\x1b\u202e")


def test_escape_control_keeps_printable_text() -> None:
    assert escape_control("hub été 中文 ok") == "hub été 中文 ok"
    assert escape_control("a\r\nb\x00\x7f\x85") == "a\\r\\nb\\x00\\x7f\\x85"


# -- temporary files -------------------------------------------------------------------------------


async def _data_dir_with_hub(data_dir: Path) -> str:
    config = ServerConfig(data_dir=data_dir, mqtt_broker="off")
    async with open_control_plane(config) as plane, plane.store.session() as session:
        user = await accounts.create_user(session, email="owner@example.com", password_hash="x")
        workspace = (await accounts.workspace_ids(session, user.id))[0]
        hub = await hubs.create_hub(
            session, slug="garden", name="garden", title="Garden", owner_id=user.id, workspace_id=workspace,
            spec=normalise_spec({"version": "1", "skills": ["jokes"]}),
        )  # fmt: skip
        return hub.id


def _admin(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THALOVANT_")}
    return subprocess.run(
        [*server_command(), "admin", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    asyncio.run(_data_dir_with_hub(data))
    return data


def test_an_identity_file_never_goes_through_a_planted_temporary_name(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "identity.json"
    out.parent.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    (out.parent / "identity.json.tmp").symlink_to(victim)  # the name writers used to pick
    result = _admin(data_dir, "client", "create", "--hub", "garden", "--name", "device", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert victim.read_text() == "untouched\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["access_key"]


def test_write_private_creates_its_temporary_file_exclusively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "secret.json"
    names = iter(["taken", "taken", "free"])
    monkeypatch.setattr(sdk_files.secrets, "token_hex", lambda _n: next(names))
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / ".secret.json.taken.tmp").symlink_to(victim)
    files.write_private(target, "s3cret")
    assert victim.read_text() == "untouched" and target.read_text() == "s3cret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not (tmp_path / ".secret.json.free.tmp").exists()


# -- the pid check -----------------------------------------------------------------------------------


@pytest.fixture
def impostor() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line names thalovant but that is no server (SIGHUP would kill it)."""
    process = subprocess.Popen(["bash", "-c", "exec -a thalovant-server-impostor sleep 600"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("record", ["{pid}\n", "{pid} {wrong}\n"])
def test_a_stale_pid_file_never_signals_a_process_that_reused_the_id(
    data_dir: Path, tmp_path: Path, impostor: subprocess.Popen[bytes], record: str
) -> None:
    started = process_start_time(impostor.pid)
    assert started is not None
    (data_dir / PID_FILE).write_text(record.format(pid=impostor.pid, wrong=started + 1))
    out = tmp_path / "identity.json"
    result = _admin(data_dir, "client", "create", "--hub", "garden", "--name", f"d-{secrets.token_hex(3)}",
                    "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert impostor.poll() is None, "the impostor got SIGHUP"


def test_the_running_server_records_its_start_time(server: RunningServer) -> None:
    pid, started = (int(part) for part in (server.data_dir / PID_FILE).read_text().split())
    assert server.process is not None and pid == server.process.pid
    assert process_start_time(pid) == started


# -- 409 answers -------------------------------------------------------------------------------------


async def test_a_409_names_no_client_of_another_workspace(api: Api) -> None:
    owner, guest = await api.account(), await api.account()
    hub = await api.create_hub(owner, name=f"ha-{secrets.token_hex(3)}", visibility="public")
    linked = await api.create_client(owner, hub["id"], spec={"version": "1", "connection_type": "home_assistant"})
    body = {"hub_id": hub["id"], "name": "second", "spec": {"version": "1", "connection_type": "home_assistant"}}
    foreign = await api.http.post("/v1/clients", json=body, headers=guest.headers)
    assert foreign.status_code == 409 and foreign.json()["code"] == "home_assistant_already_linked"
    assert linked["id"] not in foreign.text
    own = await api.http.post("/v1/clients", json=body, headers=owner.headers)
    assert own.status_code == 409 and own.json()["client_id"] == linked["id"]
