"""The secure channel: Noise transport messages carrying framed bodies (spec 3.11)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.errors import DecryptError, FramingError
from thalovant.protocol.framing import CHUNK_SIZE, MAX_TRANSPORT_MESSAGE, Frame
from thalovant.protocol.noise import SUITES, CipherState, HandshakeState, KeyPair


def _pair(suite: str) -> tuple[SecureChannel, SecureChannel]:
    """Two channels over one pair of fixed keys (initiator, responder)."""
    k1, k2 = os.urandom(32), os.urandom(32)
    a = SecureChannel(CipherState(suite, k1), CipherState(suite, k2))
    b = SecureChannel(CipherState(suite, k2), CipherState(suite, k1))
    return a, b


def _open_all(channel: SecureChannel, messages: list[bytes]) -> list[Frame]:
    frames = [channel.open(m) for m in messages]
    assert all(f is None for f in frames[:-1])
    return [f for f in frames if f is not None]


@pytest.mark.parametrize("suite", SUITES)
def test_json_and_binary_round_trip(suite: str) -> None:
    a, b = _pair(suite)
    assert _open_all(b, a.seal_json(b'{"msg_type":"bus"}')) == [Frame(False, b'{"msg_type":"bus"}')]
    assert _open_all(b, a.seal_binary(b"\x0c\x05")) == [Frame(True, b"\x0c\x05")]
    assert _open_all(a, b.seal_json(b"{}")) == [Frame(False, b"{}")]


@pytest.mark.parametrize("suite", SUITES)
def test_single_message_overhead(suite: str) -> None:
    a, _ = _pair(suite)
    (message,) = a.seal_json(b"x" * CHUNK_SIZE)
    assert len(message) == CHUNK_SIZE + 1 + 16 <= MAX_TRANSPORT_MESSAGE


@pytest.mark.parametrize("suite", SUITES)
def test_140000_byte_payload_is_chunked_and_reassembled(suite: str) -> None:
    a, b = _pair(suite)
    body = os.urandom(140_000)
    messages = a.seal_json(body)
    assert len(messages) == 3
    assert all(len(m) <= MAX_TRANSPORT_MESSAGE for m in messages)
    assert _open_all(b, messages) == [Frame(False, body)]
    messages = a.seal_binary(body)
    assert _open_all(b, messages) == [Frame(True, body)]


@settings(max_examples=15, deadline=None)
@given(size=st.integers(min_value=0, max_value=2 * 1024 * 1024), binary=st.booleans())
def test_any_size_round_trips(size: int, binary: bool) -> None:
    a, b = _pair(SUITES[0])
    body = bytes(size)
    messages = a.seal_binary(body) if binary else a.seal_json(body)
    assert all(len(m) <= MAX_TRANSPORT_MESSAGE for m in messages)
    assert _open_all(b, messages) == [Frame(binary, body)]


def test_tamper_replay_and_reorder_fail_to_decrypt() -> None:
    a, b = _pair(SUITES[1])
    m1, m2 = a.seal_json(b"{}")[0], a.seal_json(b"[]")[0]
    tampered = bytes([m1[0] ^ 1]) + m1[1:]
    with pytest.raises(DecryptError):
        b.open(tampered)
    with pytest.raises(DecryptError):
        b.open(m2)  # out of order
    assert b.open(m1) == Frame(False, b"{}")
    with pytest.raises(DecryptError):
        b.open(m1)  # replay
    assert b.open(m2) == Frame(False, b"[]")


def test_oversize_message_is_refused() -> None:
    _, b = _pair(SUITES[0])
    with pytest.raises(FramingError):
        b.open(bytes(MAX_TRANSPORT_MESSAGE + 1))


@pytest.mark.parametrize(
    "plaintexts",
    [[b""], [b"\x09"], [b"\x02a", b"\x00{}"], [b"\x03a", b"\x03b"], [b"\x04a"], [b"\x05a"]],
)
def test_framing_violations_inside_valid_ciphertexts(plaintexts: list[bytes]) -> None:
    key = os.urandom(32)
    sender = CipherState(SUITES[0], key)
    channel = SecureChannel(CipherState(SUITES[0], os.urandom(32)), CipherState(SUITES[0], key))
    messages = [sender.encrypt(p) for p in plaintexts]
    for m in messages[:-1]:
        channel.open(m)
    with pytest.raises(FramingError):
        channel.open(messages[-1])


@pytest.mark.parametrize("suite", SUITES)
def test_channels_from_a_real_handshake(suite: str) -> None:
    psk = bytes(range(32))
    initiator = HandshakeState("XXpsk2", suite, initiator=True, prologue=b"p", psk=psk, static=KeyPair.generate())
    responder = HandshakeState("XXpsk2", suite, initiator=False, prologue=b"p", psk=psk, static=KeyPair.generate())
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    responder.read_message(initiator.write_message())
    client = SecureChannel(*initiator.split())
    hub = SecureChannel(*responder.split())
    assert _open_all(hub, client.seal_json(b'{"a":1}')) == [Frame(False, b'{"a":1}')]
    assert _open_all(client, hub.seal_binary(b"\x01\x02")) == [Frame(True, b"\x01\x02")]
