"""Running the server as a person does: a second start on a running data directory leaves it
alone, the demo password is chosen once and kept (never in clear on disk), and the banner
names the API docs and every variable a client needs."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from peers.processes import free_port
from tests.fixtures.server import RunningServer, new_server, server_command


def login_status(server: RunningServer, password: str) -> int:
    with httpx.Client(verify=str(server.ca_file)) as http:
        response = http.post(f"{server.api_url}/v1/auth/token", json={"email": server.demo_email, "password": password})
    return response.status_code


def test_a_second_start_on_a_running_data_dir_leaves_it_alone(server_factory: Callable[..., RunningServer]) -> None:
    server = server_factory()
    env = {**server.env(), "THALOVANT_DEMO_PASSWORD": "another-password-entirely"}
    second = subprocess.run(
        [*server_command(), "serve", "--data-dir", str(server.data_dir), "--port", str(free_port()), "--demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already running" in second.stdout and "nothing was changed" in second.stdout
    assert login_status(server, server.demo_password) == 200
    assert login_status(server, "another-password-entirely") == 401
    assert server.process is not None and server.process.poll() is None


@pytest.fixture
def unnamed_password(tmp_path: Path) -> Iterator[RunningServer]:
    server = new_server(tmp_path / "data")
    server.demo_password = ""  # no THALOVANT_DEMO_PASSWORD: the server chooses
    try:
        yield server
    finally:
        server.stop()


def printed_password(server: RunningServer) -> str:
    line = server.wait_for_output("Demo password: ")
    return line.split("Demo password: ", 1)[1].strip()


def test_the_demo_password_is_chosen_once_and_kept(unnamed_password: RunningServer) -> None:
    server = unnamed_password
    server.start()
    chosen = printed_password(server)
    assert chosen and "(" not in chosen
    server.stop()
    server.output.clear()
    server.start()
    assert printed_password(server) == chosen
    server.demo_password = chosen
    assert login_status(server, chosen) == 200
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            assert chosen.encode() not in path.read_bytes(), f"the demo password is in clear in {path}"


def test_the_banner_names_the_docs_and_the_client_variables(server: RunningServer) -> None:
    base = server.api_url
    assert server.wait_for_output(f"API docs: {base}/v1/docs")
    assert server.wait_for_output(f"export THALOVANT_API_URL={base}")
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        assert server.wait_for_output(f"export {variable}={server.ca_file}")
