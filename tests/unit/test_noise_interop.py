"""Our Noise against an independent implementation, the ``noiseprotocol`` 0.3.1 package.

Both directions (our initiator with their responder and the reverse) for all four
pattern/suite pairs, with a PSK and a prologue, then transport messages each way; with
fixed keys the two implementations must write byte-identical handshake messages.
"""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag
from noise.connection import Keypair, NoiseConnection
from noise.exceptions import NoiseInvalidMessage

from thalovant.protocol.canonical import build_prologue
from thalovant.protocol.errors import DecryptError
from thalovant.protocol.noise import PATTERNS, SUITES, HandshakeState, KeyPair, protocol_name

PAIRS = [(pattern, suite) for pattern in PATTERNS for suite in SUITES]
PAIR_IDS = [f"{pattern}-{suite}" for pattern, suite in PAIRS]
PROLOGUE = build_prologue(
    {"node_id": "node-alpha", "pubkey": "", "site_id": "hub"},
    {"noise": {"patterns": list(PATTERNS), "suites": list(SUITES)}, "handshake": True},
    "Noise_XXpsk2_25519_ChaChaPoly_SHA256",
)
TRANSPORT_SIZES = (0, 1, 1024, 65535 - 16)


def _theirs(
    pattern: str,
    suite: str,
    *,
    initiator: bool,
    static: KeyPair,
    remote: bytes | None,
    psk: bytes,
    prologue: bytes,
    ephemeral: KeyPair | None = None,
) -> NoiseConnection:
    conn = NoiseConnection.from_name(protocol_name(pattern, suite).encode("ascii"))
    if initiator:
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_keypair_from_private_bytes(Keypair.STATIC, static.private)
    if remote is not None:
        conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote)
    if ephemeral is not None:
        conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral.private)
    conn.set_psks(psk)
    conn.set_prologue(prologue)
    conn.start_handshake()
    return conn


def _ours(
    pattern: str,
    suite: str,
    *,
    initiator: bool,
    static: KeyPair,
    remote: bytes | None,
    psk: bytes,
    prologue: bytes,
    ephemeral: KeyPair | None = None,
) -> HandshakeState:
    return HandshakeState(
        pattern,
        suite,
        initiator=initiator,
        prologue=prologue,
        psk=psk,
        static=static,
        remote_static=remote,
        ephemeral=ephemeral,
    )


def _exchange_transport(ours: HandshakeState, theirs: NoiseConnection) -> None:
    send, recv = ours.split()
    for size in TRANSPORT_SIZES:
        body = os.urandom(size)
        assert bytes(theirs.decrypt(send.encrypt(body))) == body
        back = os.urandom(size)
        assert recv.decrypt(bytes(theirs.encrypt(back))) == back
    assert send.counter == recv.counter == len(TRANSPORT_SIZES)


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_our_initiator_their_responder(pattern: str, suite: str) -> None:
    psk = os.urandom(32)
    ikey, rkey = KeyPair.generate(), KeyPair.generate()
    kk = pattern == "KKpsk0"
    theirs = _theirs(
        pattern, suite, initiator=False, static=rkey, remote=ikey.public if kk else None, psk=psk, prologue=PROLOGUE
    )
    ours = _ours(
        pattern, suite, initiator=True, static=ikey, remote=rkey.public if kk else None, psk=psk, prologue=PROLOGUE
    )
    assert bytes(theirs.read_message(ours.write_message(b'{"binarize":false,"encodings":[]}'))) == (
        b'{"binarize":false,"encodings":[]}'
    )
    assert ours.read_message(bytes(theirs.write_message(b'{"binarize":false}'))) == b'{"binarize":false}'
    if not kk:
        assert bytes(theirs.read_message(ours.write_message(b""))) == b""
    assert ours.finished and theirs.handshake_finished
    assert ours.remote_static == rkey.public
    assert ours.handshake_hash == theirs.get_handshake_hash()
    _exchange_transport(ours, theirs)


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_their_initiator_our_responder(pattern: str, suite: str) -> None:
    psk = os.urandom(32)
    ikey, rkey = KeyPair.generate(), KeyPair.generate()
    kk = pattern == "KKpsk0"
    theirs = _theirs(
        pattern, suite, initiator=True, static=ikey, remote=rkey.public if kk else None, psk=psk, prologue=PROLOGUE
    )
    ours = _ours(
        pattern, suite, initiator=False, static=rkey, remote=ikey.public if kk else None, psk=psk, prologue=PROLOGUE
    )
    assert ours.read_message(bytes(theirs.write_message(b"one"))) == b"one"
    assert bytes(theirs.read_message(ours.write_message(b"two"))) == b"two"
    if not kk:
        assert ours.read_message(bytes(theirs.write_message(b"three"))) == b"three"
    assert ours.finished and theirs.handshake_finished
    assert ours.remote_static == ikey.public
    assert ours.handshake_hash == theirs.get_handshake_hash()
    _exchange_transport(ours, theirs)


@pytest.mark.filterwarnings("ignore:One of ephemeral keypairs is already set")
@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("we_initiate", [True, False], ids=["ours-initiator", "ours-responder"])
def test_messages_are_byte_identical_with_fixed_keys(pattern: str, suite: str, we_initiate: bool) -> None:
    """Replace one side by the other implementation: every message must be the same bytes."""
    psk = os.urandom(32)
    ikey, rkey, ie, re_ = (KeyPair.generate() for _ in range(4))
    kk = pattern == "KKpsk0"
    i_args = {"static": ikey, "remote": rkey.public if kk else None, "ephemeral": ie}
    r_args = {"static": rkey, "remote": ikey.public if kk else None, "ephemeral": re_}
    payloads = [b"m1", b"m2", b"m3"][: 2 if kk else 3]

    their_i = _theirs(pattern, suite, initiator=True, psk=psk, prologue=PROLOGUE, **i_args)  # type: ignore[arg-type]
    their_r = _theirs(pattern, suite, initiator=False, psk=psk, prologue=PROLOGUE, **r_args)  # type: ignore[arg-type]
    if we_initiate:
        our = _ours(pattern, suite, initiator=True, psk=psk, prologue=PROLOGUE, **i_args)  # type: ignore[arg-type]
    else:
        our = _ours(pattern, suite, initiator=False, psk=psk, prologue=PROLOGUE, **r_args)  # type: ignore[arg-type]

    for index, payload in enumerate(payloads):
        initiator_turn = index % 2 == 0
        writer = their_i if initiator_turn else their_r
        reference = bytes(writer.write_message(payload))
        if initiator_turn == we_initiate:
            assert our.write_message(payload) == reference
        else:
            assert our.read_message(reference) == payload
        (their_r if initiator_turn else their_i).read_message(reference)
    assert our.finished
    assert our.handshake_hash == their_i.get_handshake_hash() == their_r.get_handshake_hash()
    send, _ = our.split()
    peer_twin = their_i if we_initiate else their_r
    assert send.encrypt(b"transport") == bytes(peer_twin.encrypt(b"transport"))


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_wrong_psk_is_a_decrypt_error_on_our_side(pattern: str, suite: str) -> None:
    ikey, rkey = KeyPair.generate(), KeyPair.generate()
    kk = pattern == "KKpsk0"
    if kk:  # KKpsk0: message 1 is already keyed with the psk; we read it as the responder
        theirs = _theirs(
            pattern, suite, initiator=True, static=ikey, remote=rkey.public, psk=os.urandom(32), prologue=PROLOGUE
        )
        ours = _ours(
            pattern, suite, initiator=False, static=rkey, remote=ikey.public, psk=os.urandom(32), prologue=PROLOGUE
        )
        with pytest.raises(DecryptError):
            ours.read_message(bytes(theirs.write_message(b"")))
    else:  # XXpsk2: the psk enters with message 2; we read it as the initiator
        theirs = _theirs(
            pattern, suite, initiator=False, static=rkey, remote=None, psk=os.urandom(32), prologue=PROLOGUE
        )
        ours = _ours(pattern, suite, initiator=True, static=ikey, remote=None, psk=os.urandom(32), prologue=PROLOGUE)
        theirs.read_message(ours.write_message(b""))
        with pytest.raises(DecryptError):
            ours.read_message(bytes(theirs.write_message(b"")))


@pytest.mark.parametrize("suite", SUITES)
def test_kk_with_a_changed_responder_key_fails(suite: str) -> None:
    """Our KK initiator pinned a key the responder no longer has: the responder cannot read us."""
    psk = os.urandom(32)
    ikey, rkey, stale = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    theirs = _theirs("KKpsk0", suite, initiator=False, static=rkey, remote=ikey.public, psk=psk, prologue=PROLOGUE)
    ours = _ours("KKpsk0", suite, initiator=True, static=ikey, remote=stale.public, psk=psk, prologue=PROLOGUE)
    first = ours.write_message(b"")
    with pytest.raises((InvalidTag, NoiseInvalidMessage)):  # their library leaks cryptography's InvalidTag
        theirs.read_message(first)
    # and the reverse: their initiator with a stale pin for our responder's key
    theirs_i = _theirs("KKpsk0", suite, initiator=True, static=ikey, remote=stale.public, psk=psk, prologue=PROLOGUE)
    ours_r = _ours("KKpsk0", suite, initiator=False, static=rkey, remote=ikey.public, psk=psk, prologue=PROLOGUE)
    with pytest.raises(DecryptError):
        ours_r.read_message(bytes(theirs_i.write_message(b"")))


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_prologue_mismatch_is_a_decrypt_error(pattern: str, suite: str) -> None:
    psk = os.urandom(32)
    ikey, rkey = KeyPair.generate(), KeyPair.generate()
    kk = pattern == "KKpsk0"
    theirs = _theirs(
        pattern, suite, initiator=True, static=ikey, remote=rkey.public if kk else None, psk=psk, prologue=PROLOGUE
    )
    ours = _ours(
        pattern,
        suite,
        initiator=False,
        static=rkey,
        remote=ikey.public if kk else None,
        psk=psk,
        prologue=PROLOGUE + b"!",
    )
    with pytest.raises(DecryptError):
        ours.read_message(bytes(theirs.write_message(b"")))
