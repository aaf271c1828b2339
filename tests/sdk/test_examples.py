"""Every guide example in examples/ runs against our hub and prints what the guide promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fixtures.peers import trust_env
from tests.fixtures.server import RunningServer

from thalovant_server.hub.skills.jokes import JOKES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."


@pytest.fixture(scope="module")
def example_env(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("examples-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("THALOVANT_")}
    env.update(trust_env(server.ca_file))
    env.update(
        {
            "THALOVANT_API_URL": server.api_url,
            "THALOVANT_EMAIL": server.demo_email,
            "THALOVANT_PASSWORD": server.demo_password,
            "XDG_CONFIG_HOME": str(home / "config"),
            "HOME": str(home),
        }
    )
    return env


def run(script: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=str(EXAMPLES.parent),
    )
    assert done.returncode == 0, f"{script} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def identity_file(example_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The quickstart itself provisions the identity the other examples load."""
    folder = tmp_path_factory.mktemp("example-identity")
    path = folder / "identity.json"
    out = run("quickstart.py", example_env, "--save", str(path), "--name", "examples-client")
    assert out.strip().splitlines()[-1] == JOKE
    yield path


def test_quickstart(example_env: dict[str, str]) -> None:
    # a name of its own: the session server is shared with other tests that use the guide's name
    name = f"python-demo-client-{uuid.uuid4().hex[:8]}"
    assert run("quickstart.py", example_env, "--name", name).strip() == JOKE


def test_quickstart_without_credentials_explains(example_env: dict[str, str]) -> None:
    env = {k: v for k, v in example_env.items() if k not in ("THALOVANT_EMAIL", "THALOVANT_PASSWORD")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 2
    assert "THALOVANT_EMAIL" in done.stderr


def test_discover_hubs(example_env: dict[str, str]) -> None:
    out = run("discover_hubs.py", example_env)
    assert "joke-garden" in out
    lines = out.splitlines()
    assert any(line.split()[1:2] == ["joke-garden"] for line in lines if len(line.split()) >= 3)


def test_identity_protocols(example_env: dict[str, str], identity_file: Path) -> None:
    out = run("identity_protocols.py", example_env, "--identity", str(identity_file)).splitlines()
    data = json.loads(identity_file.read_text())
    assert out[0].startswith("[") and "wss" in out[0]
    assert out[1] == data["data_plane_endpoints"]["wss"]
    assert out[4] == "True"


def test_runtime_basics(example_env: dict[str, str], identity_file: Path) -> None:
    out = run("runtime_basics.py", example_env, "--identity", str(identity_file)).splitlines()
    assert "ok" in out[0].lower()
    assert len(out) >= 2 and out[1].strip()


def test_emit_and_inputs(example_env: dict[str, str], identity_file: Path) -> None:
    out = run("emit_and_inputs.py", example_env, "--identity", str(identity_file))
    assert out.splitlines() == [
        "emitted thalovant.client.status",
        "sent utterance",
        "sent action",
        "sent code",
    ]


def test_conversation(example_env: dict[str, str], identity_file: Path) -> None:
    out = run("conversation.py", example_env, "--identity", str(identity_file)).splitlines()
    assert len(out) == 2
    assert "blue" in out[1].lower()


def test_events(example_env: dict[str, str], identity_file: Path) -> None:
    out = run("events.py", example_env, "--identity", str(identity_file)).splitlines()
    assert out[0] == "handled: ovos.utterance.handled"
    assert len(out) == 4
    assert out[1] in JOKES
    assert all(line.strip() for line in out[2:])


def test_context(example_env: dict[str, str], identity_file: Path) -> None:
    out = run("context.py", example_env, "--identity", str(identity_file))
    assert out.strip()


def test_doctor(example_env: dict[str, str], identity_file: Path) -> None:
    out = run("doctor.py", example_env, "--identity", str(identity_file))
    for name in ("identity", "endpoint", "tls", "handshake", "round trip"):
        assert name in out


def test_identity_from_env(example_env: dict[str, str], identity_file: Path) -> None:
    data = json.loads(identity_file.read_text())
    env = dict(example_env)
    env.update(
        {
            "THALOVANT_ACCESS_KEY": data["access_key"],
            "THALOVANT_PASSWORD": data["password"],
            "THALOVANT_SITE_ID": data["site_id"],
            "THALOVANT_HUB_HTTP_HOST": data["default_master"],
            "THALOVANT_HUB_HTTP_PORT": str(data["default_port"]),
            "THALOVANT_HUB_WSS_HOST": data["data_plane_endpoints"]["wss"],
        }
    )
    env["XDG_CONFIG_HOME"] = str(identity_file.parent)  # same Noise key: the hub pinned it
    out = run("conversation.py", env).splitlines()
    assert "blue" in out[1].lower()
