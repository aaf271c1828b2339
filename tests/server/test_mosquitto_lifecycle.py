"""Mosquitto never outlives ``serve``: it dies with its parent, and a start replaces a stale
broker of its own data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.identities import new_identity, trusting
from tests.fixtures.mosquitto import require_mosquitto
from tests.fixtures.server import RunningServer

from thalovant.client import ThalovantClient
from thalovant_server.hub.skills.jokes import JOKES
from thalovant_server.mqtt.mosquitto import stale_brokers

PATIENCE = 60.0


def config_file(server: RunningServer) -> Path:
    return server.data_dir / "mosquitto" / "mosquitto.conf"


def gone(pid: int) -> bool:
    deadline = time.monotonic() + PATIENCE
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def ask_over_mqtt(server: RunningServer, tmp_path: Path, name: str) -> str:
    with trusting(server):
        identity = new_identity(server, name, "mqtt")
        with ThalovantClient(identity, protocol="mqtt", noise_state_dir=tmp_path / name) as client:
            return client.ask("Tell me a short clean joke.").text


def test_kill_9_of_serve_takes_mosquitto_along(server_factory: Callable[..., RunningServer], tmp_path: Path) -> None:
    server = server_factory(mqtt_broker="mosquitto")
    [broker] = stale_brokers(config_file(server))
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=PATIENCE)
    assert gone(broker)
    server.stop()
    server.start()  # same ports: nothing holds the MQTT port any more
    assert ask_over_mqtt(server, tmp_path, "after-kill") in JOKES


def test_a_start_replaces_a_stale_broker_of_its_data_dir(
    server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = server_factory(mqtt_broker="mosquitto")
    server.stop()
    # a Mosquitto on this data directory's config that nothing will stop (as after a crash)
    stale = subprocess.Popen(
        [require_mosquitto(), "-c", str(config_file(server).resolve())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + PATIENCE
        while stale_brokers(config_file(server)) != [stale.pid]:  # until it has exec'd Mosquitto
            assert time.monotonic() < deadline and stale.poll() is None
            time.sleep(0.01)
        server.start()
        assert stale.wait(timeout=PATIENCE) is not None
        assert server.wait_for_output(f"stopping a Mosquitto (pid {stale.pid}) left running")
        assert ask_over_mqtt(server, tmp_path, "after-stale") in JOKES
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()
