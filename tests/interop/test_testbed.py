"""``python -m peers testbed``: the command other languages' suites run under sees a live demo server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from peers.hm5 import Ports
from peers.processes import free_ports

REPO = Path(__file__).resolve().parents[2]

CHECK = textwrap.dedent(
    """
    import json, os, ssl, urllib.request
    bed = json.load(open(os.environ["THALOVANT_TESTBED"]))
    bundle = os.environ["SSL_CERT_FILE"]
    assert bundle == os.environ["NODE_EXTRA_CA_CERTS"] == os.environ["REQUESTS_CA_BUNDLE"] == bed["ca_bundle"]
    assert os.environ["THALOVANT_API_URL"] == bed["demo"]["api_url"]
    context = ssl.create_default_context(cafile=bundle)
    url = bed["demo"]["api_url"] + "/v1/public/hubs/" + bed["demo"]["hub_slug"]
    with urllib.request.urlopen(url, context=context) as answer:
        print(json.dumps({"hub": json.load(answer), "bed": bed}))
    """
)


@pytest.mark.interop
def test_the_command_reaches_the_demo_hub_through_the_bundle() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "peers", "testbed", "--", sys.executable, "-c", CHECK],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["hub"]["slug"] == "joke-garden"
    assert seen["bed"]["hm5"] is None
    assert seen["bed"]["demo"]["email"] == "demo@example.com"
    # everything the testbed made is gone with it
    assert not Path(seen["bed"]["ca_bundle"]).exists()


@pytest.mark.interop
def test_the_command_status_is_the_testbed_status() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "peers", "testbed", "--", sys.executable, "-c", "raise SystemExit(7)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 7, done.stdout + done.stderr


def test_ports_chosen_together_are_all_different_and_free() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports:  # nothing holds them once chosen
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    stack_ports = Ports.free()
    assert len({stack_ports.bus, stack_ports.ws, stack_ports.https, stack_ports.mqtt, stack_ports.mqtts}) == 5
