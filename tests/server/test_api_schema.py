"""Schemathesis over /v1/openapi.json against a real uvicorn on 127.0.0.1.

Every operation is fuzzed anonymously and with a valid token: no 5xx, declared status codes,
content types and response schemas (Problem+JSON for refusals) must hold.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.server.conftest import password_hash

from thalovant_server.app import create_app, open_control_plane
from thalovant_server.config import ServerConfig
from thalovant_server.secrets import new_api_token, sha256_hex
from thalovant_server.store import accounts, hubs
from thalovant_server.store.hub_spec import normalise_spec

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


async def _seed(config: ServerConfig) -> str:
    """A user with an all-scopes API token and one public hub; returns the token."""
    token = new_api_token()
    async with open_control_plane(config) as plane, plane.store.session() as session:
        user = await accounts.create_user(session, email="fuzz@example.com", password_hash=password_hash())
        await accounts.add_token(
            session,
            user_id=user.id,
            kind="api",
            token_hash=sha256_hex(token),
            scopes=("hubs:read", "hubs:write", "clients:read", "clients:write"),
            expires_at=None,
        )
        workspace = (await accounts.workspace_ids(session, user.id))[0]
        await hubs.create_hub(
            session,
            slug="fuzz-garden",
            name="fuzz-garden",
            title="Fuzz Garden",
            owner_id=user.id,
            workspace_id=workspace,
            spec=normalise_spec({"version": "1", "skills": ["jokes"]}),
            visibility="public",
        )
    return token


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    config = ServerConfig(data_dir=Path(tmp_path_factory.mktemp("fuzz")), mqtt_port=0)
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


def _fuzz(base_url: str, headers: dict[str, str]) -> int:
    """Run every operation's strategy; returns how many operations were exercised."""
    schema = schemathesis.openapi.from_url(f"{base_url}/v1/openapi.json")
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: Any) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

        exercise()
        operations += 1
    return operations


def test_fuzz_anonymous(live_server: tuple[str, str]) -> None:
    assert _fuzz(live_server[0], {}) >= 10


def test_fuzz_with_token(live_server: tuple[str, str]) -> None:
    assert _fuzz(live_server[0], {"Authorization": f"Bearer {live_server[1]}"}) >= 10
