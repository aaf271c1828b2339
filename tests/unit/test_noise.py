"""Our Noise implementation on its own: vectors, nonce layout, both roles, every refusal."""

from __future__ import annotations

import copy
import os
import pickle
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fixtures.conformance import load_vectors

from thalovant.protocol.errors import DecryptError, HandshakeError, ProtocolError
from thalovant.protocol.noise import (
    MAX_MESSAGE,
    PATTERNS,
    SUITES,
    CipherState,
    HandshakeState,
    KeyPair,
    protocol_name,
)

CHACHA, AESGCM_SUITE = "25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256"
PAIRS = [(pattern, suite) for pattern in PATTERNS for suite in SUITES]
PAIR_IDS = [f"{pattern}-{suite}" for pattern, suite in PAIRS]
KEY = bytes(range(32))


def _transport_vectors() -> dict[str, Any]:
    data = load_vectors("noise-vectors.json")
    return data["transport"]


TRANSPORT = _transport_vectors()


def _pair(
    pattern: str,
    suite: str,
    *,
    psk_i: bytes | None = None,
    psk_r: bytes | None = None,
    prologue_i: bytes = b"prologue",
    prologue_r: bytes = b"prologue",
    ikey: KeyPair | None = None,
    rkey: KeyPair | None = None,
) -> tuple[HandshakeState, HandshakeState, KeyPair, KeyPair]:
    psk = os.urandom(32)
    ikey = ikey or KeyPair.generate()
    rkey = rkey or KeyPair.generate()
    kk = pattern == "KKpsk0"
    initiator = HandshakeState(
        pattern,
        suite,
        initiator=True,
        prologue=prologue_i,
        psk=psk_i or psk,
        static=ikey,
        remote_static=rkey.public if kk else None,
    )
    responder = HandshakeState(
        pattern,
        suite,
        initiator=False,
        prologue=prologue_r,
        psk=psk_r or psk,
        static=rkey,
        remote_static=ikey.public if kk else None,
    )
    return initiator, responder, ikey, rkey


def _complete(initiator: HandshakeState, responder: HandshakeState) -> None:
    assert responder.read_message(initiator.write_message(b"first")) == b"first"
    assert initiator.read_message(responder.write_message(b"second")) == b"second"
    if initiator.pattern == "XXpsk2":
        assert responder.read_message(initiator.write_message(b"third")) == b"third"


# -- names and keys


def test_protocol_names() -> None:
    assert protocol_name("XXpsk2", CHACHA) == "Noise_XXpsk2_25519_ChaChaPoly_SHA256"
    assert protocol_name("KKpsk0", AESGCM_SUITE) == "Noise_KKpsk0_25519_AESGCM_SHA256"
    assert PATTERNS == ("XXpsk2", "KKpsk0")
    assert SUITES == (CHACHA, AESGCM_SUITE)


@pytest.mark.parametrize(
    ("pattern", "suite"),
    [("NNpsk0", CHACHA), ("XX", CHACHA), ("XXpsk2", "448_ChaChaPoly_BLAKE2b"), ("XXpsk2", "")],
)
def test_unknown_pattern_or_suite_is_refused(pattern: str, suite: str) -> None:
    with pytest.raises(HandshakeError):
        protocol_name(pattern, suite)
    with pytest.raises(HandshakeError):
        HandshakeState(pattern, suite, initiator=True, prologue=b"", psk=bytes(32), static=KeyPair.generate())


def test_keypair_matches_cryptography() -> None:
    private = X25519PrivateKey.generate()
    pair = KeyPair.from_private(private.private_bytes_raw())
    assert pair.public == private.public_key().public_bytes_raw()
    fresh = KeyPair.generate()
    assert len(fresh.private) == len(fresh.public) == 32
    assert KeyPair.from_private(fresh.private) == fresh
    assert fresh.private.hex() not in repr(fresh)
    assert fresh.public.hex() in repr(fresh)


def test_keypair_built_from_raw_fields_works_in_a_handshake() -> None:
    raw = KeyPair.generate()
    ikey = KeyPair(private=raw.private, public=raw.public)  # no cached key object
    initiator, responder, _, rkey = _pair("XXpsk2", CHACHA, ikey=ikey)
    _complete(initiator, responder)
    assert responder.remote_static == raw.public
    assert initiator.remote_static == rkey.public


def test_keypair_copies_and_pickles() -> None:
    pair = KeyPair.generate()
    for clone in (pickle.loads(pickle.dumps(pair)), copy.deepcopy(pair), copy.copy(pair)):
        assert clone == pair
        assert clone.private_key().public_key().public_bytes_raw() == pair.public


@pytest.mark.parametrize("raw", [b"", bytes(31), bytes(33), "0" * 32])
def test_keypair_refuses_wrong_lengths(raw: Any) -> None:
    with pytest.raises(HandshakeError):
        KeyPair.from_private(raw)
    with pytest.raises(HandshakeError):
        KeyPair(private=raw, public=bytes(32))
    with pytest.raises(HandshakeError):
        KeyPair(private=bytes(32), public=raw)


# -- cipher state


@pytest.mark.parametrize("case", TRANSPORT["cases"], ids=lambda c: f"{c['suite']}-{c['counter']}")
def test_transport_vectors(case: dict[str, Any]) -> None:
    key = bytes.fromhex(TRANSPORT["key"])
    plaintext = TRANSPORT["plaintext_utf8"].encode("utf-8")
    assert TRANSPORT["associated_data"] == ""
    sender = CipherState(case["suite"], key)
    sender.counter = case["counter"]
    assert sender.encrypt(plaintext).hex() == case["ciphertext"]
    assert sender.counter == case["counter"] + 1
    receiver = CipherState(case["suite"], key)
    receiver.counter = case["counter"]
    assert receiver.decrypt(bytes.fromhex(case["ciphertext"])) == plaintext
    assert receiver.counter == case["counter"] + 1
    # the vector's nonce is the layout the raw AEAD needs
    aead = ChaCha20Poly1305(key) if case["suite"] == CHACHA else AESGCM(key)
    assert aead.encrypt(bytes.fromhex(case["nonce"]), plaintext, b"").hex() == case["ciphertext"]


@pytest.mark.parametrize("counter", [0, 1, 258, 2**32 + 7, 2**64 - 2])
def test_nonce_layout(counter: int) -> None:
    plaintext = b"layout"
    little = bytes(4) + counter.to_bytes(8, "little")
    big = bytes(4) + counter.to_bytes(8, "big")
    chacha = CipherState(CHACHA, KEY)
    chacha.counter = counter
    assert chacha.encrypt(plaintext) == ChaCha20Poly1305(KEY).encrypt(little, plaintext, b"")
    aes = CipherState(AESGCM_SUITE, KEY)
    aes.counter = counter
    assert aes.encrypt(plaintext) == AESGCM(KEY).encrypt(big, plaintext, b"")


@pytest.mark.parametrize("suite", SUITES)
def test_sequential_round_trip_and_associated_data(suite: str) -> None:
    send, recv = CipherState(suite, KEY), CipherState(suite, KEY)
    messages = [os.urandom(n) for n in (0, 1, 1024, 65535 - 16)]
    for message in messages:
        assert recv.decrypt(send.encrypt(message)) == message
    assert send.counter == recv.counter == len(messages)
    with_ad = send.encrypt(b"x", b"header")
    with pytest.raises(DecryptError):
        recv.decrypt(with_ad)  # empty AD by default
    assert recv.decrypt(with_ad, b"header") == b"x"
    assert CipherState(suite, KEY).encrypt(b"y") == CipherState(suite, KEY).encrypt(b"y", b"")


@pytest.mark.parametrize("suite", SUITES)
def test_failed_decrypt_does_not_advance_the_counter(suite: str) -> None:
    send, recv = CipherState(suite, KEY), CipherState(suite, KEY)
    first, second = send.encrypt(b"one"), send.encrypt(b"two")
    tampered = bytes([first[0] ^ 1]) + first[1:]
    for bad in (tampered, second, b"", b"short", first[:-1], first + b"\x00"):
        with pytest.raises(DecryptError):
            recv.decrypt(bad)
        assert recv.counter == 0
    assert recv.decrypt(first) == b"one"
    with pytest.raises(DecryptError):
        recv.decrypt(first)  # replay
    assert recv.decrypt(second) == b"two"


@pytest.mark.parametrize("suite", SUITES)
def test_counter_overflow_is_refused(suite: str) -> None:
    send, recv = CipherState(suite, KEY), CipherState(suite, KEY)
    send.counter = recv.counter = 2**64 - 2
    assert recv.decrypt(send.encrypt(b"last")) == b"last"
    assert send.counter == 2**64 - 1
    with pytest.raises(HandshakeError, match="exhausted"):
        send.encrypt(b"one too many")
    with pytest.raises(HandshakeError, match="exhausted"):
        recv.decrypt(bytes(20))
    assert send.counter == recv.counter == 2**64 - 1


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(33)])
def test_cipher_state_refuses_bad_keys(key: bytes) -> None:
    with pytest.raises(HandshakeError):
        CipherState(CHACHA, key)
    with pytest.raises(HandshakeError):
        CipherState("25519_Foo_SHA256", KEY)


def test_cipher_state_refuses_non_bytes_input() -> None:
    state = CipherState(CHACHA, KEY)
    with pytest.raises(DecryptError):
        state.decrypt("text")  # type: ignore[arg-type]
    with pytest.raises(HandshakeError):
        state.encrypt("text")  # type: ignore[arg-type]
    assert state.counter == 0


# -- handshakes between our two roles


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_our_initiator_with_our_responder(pattern: str, suite: str) -> None:
    initiator, responder, ikey, rkey = _pair(pattern, suite)
    assert not initiator.finished and not responder.finished
    _complete(initiator, responder)
    assert initiator.finished and responder.finished
    assert initiator.handshake_hash == responder.handshake_hash
    assert len(initiator.handshake_hash) == 32
    assert initiator.remote_static == rkey.public
    assert responder.remote_static == ikey.public
    i_send, i_recv = initiator.split()
    r_send, r_recv = responder.split()
    assert initiator.split() == (i_send, i_recv)  # the same states, never fresh nonces
    for n in range(5):
        body = os.urandom(n * 300)
        assert r_recv.decrypt(i_send.encrypt(body)) == body
        assert i_recv.decrypt(r_send.encrypt(body[::-1])) == body[::-1]
    # the two directions use different keys
    probe = i_send.encrypt(b"direction")
    with pytest.raises(DecryptError):
        i_recv.decrypt(probe)


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_message_sizes(pattern: str, suite: str) -> None:
    initiator, responder, _, _ = _pair(pattern, suite)
    first = initiator.write_message(b"")
    second = None
    if pattern == "XXpsk2":
        # psk modifier: e already did MixKey, so the payload carries a tag (under a public key)
        assert len(first) == 32 + 16
        responder.read_message(first)
        second = responder.write_message(b"")
        assert len(second) == 32 + 48 + 16  # e, encrypted s, tag
        initiator.read_message(second)
        assert len(initiator.write_message(b"")) == 48 + 16
    else:
        assert len(first) == 32 + 16
        responder.read_message(first)
        assert len(responder.write_message(b"")) == 32 + 16


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_fixed_ephemeral_keys_make_messages_deterministic(pattern: str, suite: str) -> None:
    ikey, rkey, ie, re_ = (KeyPair.generate() for _ in range(4))
    psk = os.urandom(32)
    kk = pattern == "KKpsk0"

    def run() -> list[bytes]:
        initiator = HandshakeState(
            pattern,
            suite,
            initiator=True,
            prologue=b"p",
            psk=psk,
            static=ikey,
            remote_static=rkey.public if kk else None,
            ephemeral=ie,
        )
        responder = HandshakeState(
            pattern,
            suite,
            initiator=False,
            prologue=b"p",
            psk=psk,
            static=rkey,
            remote_static=ikey.public if kk else None,
            ephemeral=re_,
        )
        out = [initiator.write_message(b"a")]
        responder.read_message(out[-1])
        out.append(responder.write_message(b"b"))
        initiator.read_message(out[-1])
        if not kk:
            out.append(initiator.write_message(b"c"))
            responder.read_message(out[-1])
        return out

    first = run()
    assert first == run()
    assert first[0].startswith(ie.public)
    assert first[1].startswith(re_.public)


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_wrong_psk_fails_on_the_reader(pattern: str, suite: str) -> None:
    initiator, responder, _, _ = _pair(pattern, suite, psk_i=os.urandom(32), psk_r=os.urandom(32))
    first = initiator.write_message(b"")
    if pattern == "KKpsk0":
        with pytest.raises(DecryptError):
            responder.read_message(first)  # psk0: message 1 already authenticates
    else:
        assert responder.read_message(first) == b""
        with pytest.raises(DecryptError):
            initiator.read_message(responder.write_message(b""))


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_prologue_mismatch_fails(pattern: str, suite: str) -> None:
    initiator, responder, _, _ = _pair(pattern, suite, prologue_i=b"hello A", prologue_r=b"hello B")
    with pytest.raises(DecryptError):
        responder.read_message(initiator.write_message(b""))
        initiator.read_message(responder.write_message(b""))


@pytest.mark.parametrize("suite", SUITES)
def test_kk_with_changed_responder_key_fails(suite: str) -> None:
    psk = os.urandom(32)
    ikey, rkey, stale = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    initiator = HandshakeState(
        "KKpsk0", suite, initiator=True, prologue=b"", psk=psk, static=ikey, remote_static=stale.public
    )
    responder = HandshakeState(
        "KKpsk0", suite, initiator=False, prologue=b"", psk=psk, static=rkey, remote_static=ikey.public
    )
    with pytest.raises(DecryptError):
        responder.read_message(initiator.write_message(b""))


@pytest.mark.parametrize("suite", SUITES)
def test_kk_with_changed_initiator_key_fails(suite: str) -> None:
    psk = os.urandom(32)
    ikey, rkey, stale = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    initiator = HandshakeState(
        "KKpsk0", suite, initiator=True, prologue=b"", psk=psk, static=ikey, remote_static=rkey.public
    )
    responder = HandshakeState(
        "KKpsk0", suite, initiator=False, prologue=b"", psk=psk, static=rkey, remote_static=stale.public
    )
    with pytest.raises(DecryptError):
        responder.read_message(initiator.write_message(b""))


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_every_tampered_byte_is_detected(pattern: str, suite: str) -> None:
    """Flip each byte of the last handshake message: the reader must refuse it."""
    for position in range(0, 96, 7):
        initiator, responder, _, _ = _pair(pattern, suite)
        first = initiator.write_message(b"")
        responder.read_message(first)
        second = responder.write_message(b"")
        if pattern == "KKpsk0":
            reader, message = initiator, second
        else:
            initiator.read_message(second)
            reader, message = responder, initiator.write_message(b"")
        if position >= len(message):
            continue
        tampered = bytearray(message)
        tampered[position] ^= 0x40
        with pytest.raises(HandshakeError):
            reader.read_message(bytes(tampered))
        assert not reader.finished


def test_tampered_xx_first_message_is_refused() -> None:
    initiator, responder, _, _ = _pair("XXpsk2", CHACHA)
    first = bytearray(initiator.write_message(b"payload"))
    first[3] ^= 1  # the key sealing message 1 comes from public values, but the tag still binds e
    with pytest.raises(DecryptError):
        responder.read_message(bytes(first))


# -- state machine refusals


def test_kk_without_remote_static_is_refused() -> None:
    for initiator in (True, False):
        with pytest.raises(HandshakeError, match="remote static"):
            HandshakeState(
                "KKpsk0", CHACHA, initiator=initiator, prologue=b"", psk=bytes(32), static=KeyPair.generate()
            )


@pytest.mark.parametrize("psk", [b"", bytes(31), bytes(33), "x" * 32, None])
def test_bad_psk_is_refused(psk: Any) -> None:
    with pytest.raises(HandshakeError, match="pre-shared key"):
        HandshakeState("XXpsk2", CHACHA, initiator=True, prologue=b"", psk=psk, static=KeyPair.generate())


@pytest.mark.parametrize("remote", [b"", bytes(31), bytes(64), "k" * 32])
def test_bad_remote_static_is_refused(remote: Any) -> None:
    with pytest.raises(HandshakeError):
        HandshakeState(
            "KKpsk0",
            CHACHA,
            initiator=True,
            prologue=b"",
            psk=bytes(32),
            static=KeyPair.generate(),
            remote_static=remote,
        )


def test_bad_static_prologue_or_payload_types_are_refused() -> None:
    with pytest.raises(HandshakeError):
        HandshakeState("XXpsk2", CHACHA, initiator=True, prologue=b"", psk=bytes(32), static=b"k" * 32)  # type: ignore[arg-type]
    with pytest.raises(HandshakeError):
        HandshakeState("XXpsk2", CHACHA, initiator=True, prologue="p", psk=bytes(32), static=KeyPair.generate())  # type: ignore[arg-type]
    initiator, _, _, _ = _pair("XXpsk2", CHACHA)
    with pytest.raises(HandshakeError):
        initiator.write_message("payload")  # type: ignore[arg-type]
    assert len(initiator.write_message(b"")) == 48  # refused before touching the state


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_turns_are_enforced(pattern: str, suite: str) -> None:
    initiator, responder, _, _ = _pair(pattern, suite)
    with pytest.raises(HandshakeError, match="turn"):
        responder.write_message(b"")
    with pytest.raises(HandshakeError, match="turn"):
        initiator.read_message(bytes(100))
    first = initiator.write_message(b"")
    with pytest.raises(HandshakeError, match="turn"):
        initiator.write_message(b"")
    responder.read_message(first)
    with pytest.raises(HandshakeError, match="turn"):
        responder.read_message(first)
    with pytest.raises(HandshakeError, match="not finished"):
        responder.split()


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_nothing_after_the_end(pattern: str, suite: str) -> None:
    initiator, responder, _, _ = _pair(pattern, suite)
    _complete(initiator, responder)
    for side in (initiator, responder):
        with pytest.raises(HandshakeError, match="finished"):
            side.write_message(b"")
        with pytest.raises(HandshakeError, match="finished"):
            side.read_message(bytes(64))


def test_a_failed_handshake_stays_dead() -> None:
    initiator, responder, _, _ = _pair("KKpsk0", CHACHA, psk_i=os.urandom(32), psk_r=os.urandom(32))
    first = initiator.write_message(b"")
    with pytest.raises(DecryptError):
        responder.read_message(first)
    with pytest.raises(HandshakeError, match="failed"):
        responder.read_message(first)
    with pytest.raises(HandshakeError, match="failed"):
        responder.write_message(b"")


@pytest.mark.parametrize(("pattern", "suite"), PAIRS, ids=PAIR_IDS)
def test_wrong_lengths_are_refused(pattern: str, suite: str) -> None:
    _, responder, _, _ = _pair(pattern, suite)
    minimum = 48
    for size in (0, 1, 31, minimum - 1):
        with pytest.raises(HandshakeError):
            _pair(pattern, suite)[1].read_message(bytes(size))
    with pytest.raises(HandshakeError, match="length"):
        responder.read_message(bytes(MAX_MESSAGE + 1))
    with pytest.raises(HandshakeError):
        responder.read_message("text")  # type: ignore[arg-type]


def test_oversize_payload_is_refused_before_any_change() -> None:
    initiator, responder, _, _ = _pair("XXpsk2", AESGCM_SUITE)
    with pytest.raises(HandshakeError, match="65535"):
        initiator.write_message(bytes(MAX_MESSAGE - 47))
    largest = bytes(MAX_MESSAGE - 48)
    first = initiator.write_message(largest)
    assert len(first) == MAX_MESSAGE
    assert responder.read_message(first) == largest


def test_low_order_ephemeral_key_is_a_handshake_error() -> None:
    zero = KeyPair(private=bytes(range(32)), public=bytes(32))  # the all-zero point as "e"
    psk = os.urandom(32)
    initiator = HandshakeState(
        "XXpsk2", CHACHA, initiator=True, prologue=b"", psk=psk, static=KeyPair.generate(), ephemeral=zero
    )
    responder = HandshakeState("XXpsk2", CHACHA, initiator=False, prologue=b"", psk=psk, static=KeyPair.generate())
    responder.read_message(initiator.write_message(b""))  # accepted as bytes ...
    with pytest.raises(HandshakeError, match="X25519"):
        responder.write_message(b"")  # ... but the ee DH refuses it


def test_memoryview_and_bytearray_messages_are_accepted() -> None:
    initiator, responder, _, _ = _pair("XXpsk2", CHACHA)
    assert responder.read_message(memoryview(initiator.write_message(b"m1"))) == b"m1"
    assert initiator.read_message(bytearray(responder.write_message(bytearray(b"m2")))) == b"m2"


# -- arbitrary input never escapes as anything but a ProtocolError

_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fresh(pattern: str, suite: str, *, initiator: bool) -> HandshakeState:
    a, b, _, _ = _pair(pattern, suite)
    return a if initiator else b


@_FUZZ
@given(st.sampled_from(PAIRS), st.booleans(), st.binary(max_size=300))
def test_fuzz_fresh_sides(pair: tuple[str, str], initiator: bool, data: bytes) -> None:
    side = _fresh(*pair, initiator=initiator)
    with pytest.raises(ProtocolError):
        side.read_message(data)


@_FUZZ
@given(st.sampled_from(PAIRS), st.binary(max_size=300))
def test_fuzz_second_message(pair: tuple[str, str], data: bytes) -> None:
    initiator, _, _, _ = _pair(*pair)
    initiator.write_message(b"")
    with pytest.raises(ProtocolError):
        initiator.read_message(data)


@_FUZZ
@given(st.sampled_from(SUITES), st.binary(max_size=300))
def test_fuzz_third_message(suite: str, data: bytes) -> None:
    initiator, responder, _, _ = _pair("XXpsk2", suite)
    responder.read_message(initiator.write_message(b""))
    initiator.read_message(responder.write_message(b""))
    with pytest.raises(ProtocolError):
        responder.read_message(data)


@_FUZZ
@given(st.sampled_from(SUITES), st.binary(max_size=200), st.integers(min_value=0, max_value=2**64 - 2))
def test_fuzz_transport_decrypt(suite: str, data: bytes, counter: int) -> None:
    state = CipherState(suite, KEY)
    state.counter = counter
    with pytest.raises(DecryptError):
        state.decrypt(data)
    assert state.counter == counter
