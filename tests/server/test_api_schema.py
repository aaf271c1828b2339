"""Schemathesis over the whole API (/v1/openapi.json), every check, against a real uvicorn.

``schemathesis run`` (the CLI, as anyone would run it) fuzzes every operation in all its phases
(examples, coverage, fuzzing, stateful) with a valid all-scopes token, and checks: no server
error; status codes, content types, headers and bodies as the schema declares; schema-valid
requests accepted and schema-violating ones refused; a missing required header refused; auth
not ignored; deleted resources gone; ``405`` with a full ``Allow``. The per-operation
allowances for answers a schema cannot express are in schemathesis.toml beside this file,
each with its reason. The run is bounded (``MAX_EXAMPLES`` per operation and phase) and its
seed fixed (``THALOVANT_FUZZ_SEED`` picks another), so it is repeatable and about a minute.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from tests.server.conftest import password_hash

from thalovant_server.app import create_app, open_control_plane
from thalovant_server.config import ServerConfig
from thalovant_server.secrets import new_api_token, sha256_hex
from thalovant_server.store import accounts, hubs
from thalovant_server.store.hub_spec import normalise_spec

CONFIG_FILE = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 10
SEED = int(os.environ.get("THALOVANT_FUZZ_SEED", "20261206"))


async def _seed(config: ServerConfig) -> str:
    """An all-scopes token of a user who owns a hub, and another user's public hub (to rate)."""
    token = new_api_token()
    async with open_control_plane(config) as plane, plane.store.session() as session:
        for email, slug, visibility in (
            ("fuzz@example.com", "fuzz-garden", "workspace"),
            ("neighbour@example.com", "neighbour-garden", "public"),
        ):
            user = await accounts.create_user(session, email=email, password_hash=password_hash())
            workspace = (await accounts.workspace_ids(session, user.id))[0]
            await hubs.create_hub(
                session,
                slug=slug,
                name=slug,
                title=slug.replace("-", " ").title(),
                owner_id=user.id,
                workspace_id=workspace,
                spec=normalise_spec({"version": "1", "skills": ["jokes", "memory"]}),
                visibility=visibility,
            )
            if email == "fuzz@example.com":
                await accounts.add_token(
                    session,
                    user_id=user.id,
                    kind="api",
                    token_hash=sha256_hex(token),
                    scopes=("hubs:read", "hubs:write", "clients:read", "clients:write"),
                    expires_at=None,
                )
    return token


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    config = ServerConfig(data_dir=Path(tmp_path_factory.mktemp("fuzz")), mqtt_broker="off")
    token = asyncio.run(_seed(config))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning", access_log=False, lifespan="on"))
    ready = threading.Event()

    async def run() -> None:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        ready.set()
        await serving

    thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
    thread.start()
    assert ready.wait(60) and server.started
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_schemathesis_finds_nothing(live_server: tuple[str, str], tmp_path: Path) -> None:
    base_url, token = live_server
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG_FILE),
        "run",
        f"{base_url}/v1/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--report-dir",
        str(tmp_path),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    summary = done.stdout[-6000:]
    assert done.returncode == 0, f"schemathesis found failures (seed {SEED}):\n{done.stdout[-20000:]}{done.stderr}"
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested is not None and int(tested.group(1)) >= 30, summary
    assert "No issues found" in summary or "0 failures" in summary or "passed" in summary, summary
