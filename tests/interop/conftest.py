"""Fixtures of the interop tests: one hivemind-core 5.3.10a1 stack (``peers.hm5``) per session.

The stack runs on free loopback ports in a state folder of this session: ws (plain), https and
mqtts (through Mosquitto), the last two with certificates of the stack's own test CA.

hivemind-core pins the first client Noise key it sees for the access key, so every test that
should be accepted shares one client key folder: :func:`hm5_noise_dir`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peers.hm5 import HM5Stack
from tests.fixtures.peers import ensure_peers


@pytest.fixture(scope="session")
def hm5_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HM5Stack]:
    ensure_peers()
    with HM5Stack(tmp_path_factory.mktemp("hm5")) as stack:
        yield stack


@pytest.fixture(scope="session")
def hm5_identity(hm5_stack: HM5Stack) -> Path:
    """The identity file of the stack's registered client (0600)."""
    return hm5_stack.identity_file()


@pytest.fixture(scope="session")
def hm5_noise_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One client Noise key for the whole session: the hub pins the first key it sees."""
    return tmp_path_factory.mktemp("hm5-noise")


@pytest.fixture(scope="session")
def hm5_ca_file(hm5_stack: HM5Stack) -> Path:
    """The test CA of the stack's https carrier and mqtts listener."""
    return hm5_stack.ca_file
