"""Fixtures of the interop tests: one hivemind-core 5.3.10a1 stack (shared/peers hm5) per session.

The stack runs from ``shared/peers/hm5.sh`` with its own ``THALOVANT_PEERS`` folder (the venvs
built by ``setup.sh`` are linked in; the hub state and the client identity are private to this
session) on free loopback ports: ws (plain), https (the carrier's own self-signed certificate),
mqtts through mosquitto (a test CA, ``hm5-state/tls/ca.pem``).

hivemind-core pins the first client Noise key it sees for the access key, so every test that
should be accepted shares one client key folder: :func:`hm5_noise_dir`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.fixtures.peers import ensure_peers, peers_dir, shared_dir
from tests.fixtures.server import free_port


@dataclass(frozen=True)
class HM5Stack:
    """A running hm5 stack: the client identity file and the CA of its mosquitto TLS listener."""

    identity_file: Path
    ca_file: Path


@pytest.fixture(scope="session")
def hm5_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HM5Stack]:
    ensure_peers()
    peers = tmp_path_factory.mktemp("hm5-peers")
    (peers / "hm5").symlink_to(peers_dir() / "hm5")
    script = shared_dir() / "peers" / "hm5.sh"
    env = {
        **os.environ,
        "THALOVANT_PEERS": str(peers),
        "HM5_TTL": "900",
        "HM5_BUS_PORT": str(free_port()),
        "HM5_WS_PORT": str(free_port()),
        "HM5_HTTPS_PORT": str(free_port()),
        "HM5_MQTT_PORT": str(free_port()),
        "HM5_MQTTS_PORT": str(free_port()),
    }
    started = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True, timeout=300)
    try:
        if started.returncode != 0:
            raise RuntimeError(f"hm5.sh start failed:\n{started.stdout}\n{started.stderr}")
        yield HM5Stack(peers / "hm5-client" / "identity.json", peers / "hm5-state" / "tls" / "ca.pem")
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def hm5_identity(hm5_stack: HM5Stack) -> Path:
    """The identity file the stack issued (0600)."""
    return hm5_stack.identity_file


@pytest.fixture(scope="session")
def hm5_noise_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One client Noise key for the whole session: the hub pins the first key it sees."""
    return tmp_path_factory.mktemp("hm5-noise")


@pytest.fixture(scope="session")
def hm5_ca_file(hm5_stack: HM5Stack) -> Path:
    """The test CA of the stack's mosquitto TLS listener (the https carrier is self-signed)."""
    return hm5_stack.ca_file
