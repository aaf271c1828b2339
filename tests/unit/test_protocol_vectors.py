"""The engine's cryptography against the reference vectors and the ``noiseprotocol`` package."""

from __future__ import annotations

import os
from typing import Any

import pytest
from noise.connection import Keypair, NoiseConnection
from tests.fixtures.conformance import CONFORMANCE_DIR, load_vectors

from thalovant.protocol.canonical import build_prologue, canonical_json
from thalovant.protocol.errors import DecryptError, HandshakeError
from thalovant.protocol.noise import PATTERNS, SUITES, CipherState, HandshakeState, KeyPair
from thalovant.protocol.psk import derive_psk

VECTORS = load_vectors("noise-vectors.json")
PAIRS = [(p, s) for p in PATTERNS for s in SUITES]


@pytest.mark.parametrize("case", VECTORS["psk"]["cases"], ids=lambda c: repr(c["node_id"]))
def test_psk_matches_reference(case: dict[str, str]) -> None:
    assert derive_psk(case["password"], case["node_id"]).hex() == case["psk"]


@pytest.mark.parametrize("case", VECTORS["canonical_json"], ids=lambda c: c["output"][:20])
def test_canonical_json_matches_reference(case: dict[str, Any]) -> None:
    assert canonical_json(case["input"]).decode("utf-8") == case["output"]


def test_prologue_matches_reference() -> None:
    case = VECTORS["prologue"]
    assert build_prologue(case["hello"], case["handshake"], case["protocol_name"]).hex() == case["bytes"]


@pytest.mark.parametrize("case", VECTORS["transport"]["cases"], ids=lambda c: f"{c['suite']}-{c['counter']}")
def test_transport_ciphertexts_match_reference(case: dict[str, Any]) -> None:
    transport = VECTORS["transport"]
    plaintext = transport["plaintext_utf8"].encode("utf-8")
    sender = CipherState(case["suite"], bytes.fromhex(transport["key"]))
    sender.counter = case["counter"]
    assert sender.encrypt(plaintext).hex() == case["ciphertext"]
    receiver = CipherState(case["suite"], bytes.fromhex(transport["key"]))
    receiver.counter = case["counter"]
    assert receiver.decrypt(bytes.fromhex(case["ciphertext"])) == plaintext


def _pair(pattern: str, suite: str, psk_i: bytes, psk_r: bytes) -> tuple[HandshakeState, HandshakeState]:
    ikey, rkey = KeyPair.generate(), KeyPair.generate()
    kk = pattern == "KKpsk0"
    initiator = HandshakeState(
        pattern,
        suite,
        initiator=True,
        prologue=b"p",
        psk=psk_i,
        static=ikey,
        remote_static=rkey.public if kk else None,
    )
    responder = HandshakeState(
        pattern,
        suite,
        initiator=False,
        prologue=b"p",
        psk=psk_r,
        static=rkey,
        remote_static=ikey.public if kk else None,
    )
    return initiator, responder


@pytest.mark.parametrize(("pattern", "suite"), PAIRS)
def test_our_initiator_with_our_responder(pattern: str, suite: str) -> None:
    psk = os.urandom(32)
    initiator, responder = _pair(pattern, suite, psk, psk)
    assert responder.read_message(initiator.write_message(b"one")) == b"one"
    assert initiator.read_message(responder.write_message(b"two")) == b"two"
    if pattern == "XXpsk2":
        assert responder.read_message(initiator.write_message(b"")) == b""
    assert initiator.finished and responder.finished
    assert initiator.handshake_hash == responder.handshake_hash
    i_send, i_recv = initiator.split()
    r_send, r_recv = responder.split()
    for n in range(3):
        assert r_recv.decrypt(i_send.encrypt(b"ping %d" % n)) == b"ping %d" % n
        assert i_recv.decrypt(r_send.encrypt(b"pong %d" % n)) == b"pong %d" % n


@pytest.mark.parametrize(("pattern", "suite"), PAIRS)
def test_wrong_psk_fails_to_authenticate(pattern: str, suite: str) -> None:
    initiator, responder = _pair(pattern, suite, os.urandom(32), os.urandom(32))
    first = initiator.write_message(b"")
    with pytest.raises(DecryptError):
        responder.read_message(first)
        initiator.read_message(responder.write_message(b""))


def test_kk_with_changed_responder_key_fails() -> None:
    psk = os.urandom(32)
    ikey, rkey, stale = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    initiator = HandshakeState(
        "KKpsk0", SUITES[0], initiator=True, prologue=b"", psk=psk, static=ikey, remote_static=stale.public
    )
    responder = HandshakeState(
        "KKpsk0", SUITES[0], initiator=False, prologue=b"", psk=psk, static=rkey, remote_static=ikey.public
    )
    with pytest.raises(DecryptError):
        responder.read_message(initiator.write_message(b""))


def _noiseprotocol(
    name: bytes, *, initiator: bool, static: KeyPair, remote: bytes | None, psk: bytes, prologue: bytes
) -> NoiseConnection:
    conn = NoiseConnection.from_name(name)
    if initiator:
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_keypair_from_private_bytes(Keypair.STATIC, static.private)
    if remote is not None:
        conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote)
    conn.set_psks(psk)
    conn.set_prologue(prologue)
    conn.start_handshake()
    return conn


@pytest.mark.parametrize(("pattern", "suite"), PAIRS)
def test_interop_our_initiator_their_responder(pattern: str, suite: str) -> None:
    psk, prologue = os.urandom(32), b"prologue bytes"
    ikey, rkey = KeyPair.generate(), KeyPair.generate()
    kk = pattern == "KKpsk0"
    theirs = _noiseprotocol(
        f"Noise_{pattern}_{suite}".encode(),
        initiator=False,
        static=rkey,
        remote=ikey.public if kk else None,
        psk=psk,
        prologue=prologue,
    )
    ours = HandshakeState(
        pattern,
        suite,
        initiator=True,
        prologue=prologue,
        psk=psk,
        static=ikey,
        remote_static=rkey.public if kk else None,
    )
    assert theirs.read_message(ours.write_message(b"hello")) == b"hello"
    assert ours.read_message(theirs.write_message(b"world")) == b"world"
    if not kk:
        theirs.read_message(ours.write_message())
    assert ours.finished and theirs.handshake_finished
    assert ours.remote_static == rkey.public
    send, recv = ours.split()
    for n in range(3):
        assert theirs.decrypt(send.encrypt(b"a%d" % n)) == b"a%d" % n
        assert recv.decrypt(theirs.encrypt(b"b%d" % n)) == b"b%d" % n


@pytest.mark.parametrize(("pattern", "suite"), PAIRS)
def test_interop_their_initiator_our_responder(pattern: str, suite: str) -> None:
    psk, prologue = os.urandom(32), b"prologue bytes"
    ikey, rkey = KeyPair.generate(), KeyPair.generate()
    kk = pattern == "KKpsk0"
    theirs = _noiseprotocol(
        f"Noise_{pattern}_{suite}".encode(),
        initiator=True,
        static=ikey,
        remote=rkey.public if kk else None,
        psk=psk,
        prologue=prologue,
    )
    ours = HandshakeState(
        pattern,
        suite,
        initiator=False,
        prologue=prologue,
        psk=psk,
        static=rkey,
        remote_static=ikey.public if kk else None,
    )
    assert ours.read_message(theirs.write_message(b"hello")) == b"hello"
    assert theirs.read_message(ours.write_message(b"world")) == b"world"
    if not kk:
        ours.read_message(theirs.write_message(b""))
    assert ours.finished and theirs.handshake_finished
    assert ours.remote_static == ikey.public
    send, recv = ours.split()
    for n in range(3):
        assert theirs.decrypt(send.encrypt(b"a%d" % n)) == b"a%d" % n
        assert recv.decrypt(theirs.encrypt(b"b%d" % n)) == b"b%d" % n


def test_out_of_turn_and_truncated_messages_are_typed_errors() -> None:
    _initiator, responder = _pair("XXpsk2", SUITES[0], bytes(32), bytes(32))
    with pytest.raises(HandshakeError):
        responder.write_message(b"")
    with pytest.raises(HandshakeError):
        responder.read_message(b"short")
    with pytest.raises(HandshakeError):
        HandshakeState("KKpsk0", SUITES[0], initiator=True, prologue=b"", psk=bytes(32), static=KeyPair.generate())
    with pytest.raises(HandshakeError):
        HandshakeState("NNpsk0", SUITES[0], initiator=True, prologue=b"", psk=bytes(32), static=KeyPair.generate())


def test_conformance_vectors_carry_their_licence_notice() -> None:
    assert "MIT License" in (CONFORMANCE_DIR / "LICENSE-thalovant-sdk").read_text(encoding="utf-8")
