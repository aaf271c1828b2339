"""Shared fixtures: a real server process, a real PostgreSQL, the peers' virtual environments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.fixtures.peers import ensure_peers, run_python, trust_env
from tests.fixtures.postgres import PostgresServer, start_postgres
from tests.fixtures.server import RunningServer, new_server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    yield from start_postgres()


@pytest.fixture(scope="module")
def postgres_url(postgres_server: PostgresServer) -> str:
    """An asyncpg URL of a fresh, empty database (one per test module)."""
    return postgres_server.url(postgres_server.create_database())


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One ``thalovant-server serve --demo`` for the session, on a free 127.0.0.1 port."""
    running = new_server(tmp_path_factory.mktemp("server"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningServer]]:
    """Start servers of a test's own (for restarts or isolation); all stopped afterwards."""
    started: list[RunningServer] = []

    def make(
        extra_args: list[str] | None = None, *, mqtt_broker: str = "embedded", extra_env: dict[str, str] | None = None
    ) -> RunningServer:
        folder = tmp_path_factory.mktemp("server")
        running = new_server(folder, extra_args, mqtt_broker=mqtt_broker, extra_env=extra_env)
        running.start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def public_sdk_python() -> Path:
    """Interpreter of the public Thalovant SDK 0.9.7 venv (built by ``python -m peers setup``)."""
    return ensure_peers()


@pytest.fixture
def run_public_sdk(public_sdk_python: Path, tmp_path: Path) -> Callable[..., CompletedProcess[str]]:
    """Run a Python snippet with the public SDK; ``ca_file`` adds trust, XDG dirs are private."""

    def run(
        code: str, *, env: dict[str, str] | None = None, ca_file: Path | None = None, timeout: float = 180
    ) -> CompletedProcess[str]:
        full_env = {
            "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
            "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
            "HOME": str(tmp_path / "home"),
            **trust_env(ca_file),
            **(env or {}),
        }
        return run_python(public_sdk_python, code, env=full_env, cwd=tmp_path, timeout=timeout)

    return run
