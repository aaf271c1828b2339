"""Transport framing (spec 3.11): markers, chunking, reassembly and every sequencing rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thalovant.protocol.errors import FramingError
from thalovant.protocol.framing import (
    CHUNK_SIZE,
    MAX_REASSEMBLY,
    Frame,
    Marker,
    Reassembler,
    split_plaintext,
)


def test_marker_values() -> None:
    assert [m.value for m in Marker] == [0, 1, 2, 3, 4, 5]
    assert Marker.JSON_FIRST == 0x02 and Marker.LAST == 0x05


def test_small_body_is_one_complete_frame() -> None:
    assert split_plaintext(b'{"a":1}', binary=False) == [b'\x00{"a":1}']
    assert split_plaintext(b"\x01\x02", binary=True) == [b"\x01\x01\x02"]
    assert split_plaintext(b"", binary=False) == [b"\x00"]


def test_exact_chunk_size_is_not_chunked() -> None:
    parts = split_plaintext(b"x" * CHUNK_SIZE, binary=False)
    assert len(parts) == 1 and len(parts[0]) == CHUNK_SIZE + 1


def test_140000_bytes_make_first_middle_last() -> None:
    body = bytes(range(256)) * 547  # 140 032 bytes
    parts = split_plaintext(body, binary=False)
    assert [p[0] for p in parts] == [Marker.JSON_FIRST, Marker.MIDDLE, Marker.LAST]
    assert [len(p) for p in parts] == [CHUNK_SIZE + 1, CHUNK_SIZE + 1, len(body) - 2 * CHUNK_SIZE + 1]
    assert b"".join(p[1:] for p in parts) == body


def test_one_byte_over_gives_first_and_last() -> None:
    parts = split_plaintext(b"y" * (CHUNK_SIZE + 1), binary=True)
    assert [p[0] for p in parts] == [Marker.BINARY_FIRST, Marker.LAST]
    assert len(parts[1]) == 2


def test_reassembler_returns_complete_frames() -> None:
    r = Reassembler()
    assert r.feed(b"\x00{}") == Frame(False, b"{}")
    assert r.feed(b"\x01\xab") == Frame(True, b"\xab")
    assert r.feed(b"\x00") == Frame(False, b"")


def test_reassembler_chunked_sequence() -> None:
    r = Reassembler()
    assert r.feed(b"\x03ab") is None
    assert r.in_sequence
    assert r.feed(b"\x04cd") is None
    assert r.feed(b"\x04") is None
    assert r.feed(b"\x05e") == Frame(True, b"abcde")
    assert not r.in_sequence
    assert r.feed(b"\x02x") is None
    assert r.feed(b"\x05y") == Frame(False, b"xy")


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=3 * 1024 * 1024),
    binary=st.booleans(),
    seed=st.binary(min_size=1, max_size=64),
)
def test_chunking_round_trip(size: int, binary: bool, seed: bytes) -> None:
    body = (seed * (size // len(seed) + 1))[:size]
    parts = split_plaintext(body, binary=binary)
    assert all(len(p) <= CHUNK_SIZE + 1 for p in parts)
    r = Reassembler()
    results = [r.feed(p) for p in parts]
    assert results[:-1] == [None] * (len(parts) - 1)
    assert results[-1] == Frame(binary, body)


@settings(max_examples=50, deadline=None)
@given(body=st.binary(max_size=2000), chunk=st.integers(min_value=1, max_value=300), binary=st.booleans())
def test_chunking_round_trip_small_chunks(body: bytes, chunk: int, binary: bool) -> None:
    parts = split_plaintext(body, binary=binary, chunk_size=chunk)
    r = Reassembler()
    frames = [f for f in (r.feed(p) for p in parts) if f is not None]
    assert frames == [Frame(binary, body)]


def test_invalid_chunk_size() -> None:
    with pytest.raises(ValueError):
        split_plaintext(b"x", binary=False, chunk_size=0)


@pytest.mark.parametrize(
    ("sequence", "reason"),
    [
        ([b""], "empty"),
        ([b"\x06x"], "unknown marker"),
        ([b"\xffx"], "unknown marker"),
        ([b"\x02a", b"\x00{}"], "complete frame inside a chunked sequence"),
        ([b"\x03a", b"\x01b"], "complete frame inside a chunked sequence"),
        ([b"\x02a", b"\x02b"], "first chunk inside another"),
        ([b"\x02a", b"\x04b", b"\x03c"], "first chunk inside another"),
        ([b"\x04a"], "without a first chunk"),
        ([b"\x05a"], "without a first chunk"),
        ([b"\x00{}", b"\x05a"], "without a first chunk"),
        ([b"\x02a", b"\x05b", b"\x04c"], "without a first chunk"),
    ],
)
def test_every_sequencing_violation_raises(sequence: list[bytes], reason: str) -> None:
    r = Reassembler()
    for plaintext in sequence[:-1]:
        r.feed(plaintext)
    with pytest.raises(FramingError, match=reason):
        r.feed(sequence[-1])
    # The stream is dead afterwards.
    with pytest.raises(FramingError):
        r.feed(b"\x00{}")


def test_reassembly_over_32_mib_raises() -> None:
    r = Reassembler()
    chunk = b"\x04" + bytes(CHUNK_SIZE)
    assert r.feed(b"\x02" + bytes(CHUNK_SIZE)) is None
    fed = CHUNK_SIZE
    while fed + CHUNK_SIZE <= MAX_REASSEMBLY:
        assert r.feed(chunk) is None
        fed += CHUNK_SIZE
    with pytest.raises(FramingError, match="exceeds"):
        r.feed(chunk)


def test_reassembly_of_exactly_32_mib_is_accepted() -> None:
    r = Reassembler()
    body_left = MAX_REASSEMBLY
    assert r.feed(b"\x03" + bytes(CHUNK_SIZE)) is None
    body_left -= CHUNK_SIZE
    middle = b"\x04" + bytes(CHUNK_SIZE)
    while body_left > CHUNK_SIZE:
        assert r.feed(middle) is None
        body_left -= CHUNK_SIZE
    frame = r.feed(b"\x05" + bytes(body_left))
    assert frame is not None and frame.binary and len(frame.body) == MAX_REASSEMBLY
