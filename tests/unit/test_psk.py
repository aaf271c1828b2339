"""The pre-shared key derivation (spec 3.5) against the reference outputs."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fixtures.conformance import load_vectors

from thalovant.protocol import psk as psk_module
from thalovant.protocol.errors import HandshakeError
from thalovant.protocol.psk import derive_psk


def _cases() -> list[dict[str, str]]:
    data = load_vectors("noise-vectors.json")
    cases: list[dict[str, str]] = data["psk"]["cases"]
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: repr(c["node_id"]))
def test_reference_psks(case: dict[str, str]) -> None:
    derived = derive_psk(case["password"], case["node_id"])
    assert isinstance(derived, bytes)
    assert len(derived) == 32
    assert derived.hex() == case["psk"]


def test_reference_cases_cover_empty_and_non_ascii_inputs() -> None:
    assert any(case["password"] == "" and case["node_id"] == "" for case in CASES)
    assert any(not case["node_id"].isascii() for case in CASES)
    assert len({case["psk"] for case in CASES}) == len(CASES)


def test_parameters_are_the_specified_ones() -> None:
    assert psk_module.ARGON2_ITERATIONS == 3
    assert psk_module.ARGON2_MEMORY_KIB == 65536
    assert psk_module.ARGON2_LANES == 1
    assert psk_module.PSK_LENGTH == 32


@pytest.mark.parametrize(("password", "node_id"), [(b"pw", "node"), ("pw", None), (None, "node")])
def test_non_strings_are_refused(password: Any, node_id: Any) -> None:
    with pytest.raises(TypeError):
        derive_psk(password, node_id)


def test_invalid_unicode_is_refused() -> None:
    with pytest.raises(HandshakeError):
        derive_psk("pass\ud800", "node")
    with pytest.raises(HandshakeError):
        derive_psk("pass", "node\udfff")
