"""WIRE-1 binary frames (spec 5.2) against binary-frames.json and binary-vectors.json."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fixtures.conformance import load_vectors

from thalovant.protocol.errors import Wire1Error
from thalovant.protocol.wire1 import (
    MAX_INFLATED,
    PAYLOAD_TYPES,
    Wire1Frame,
    decode_frame,
    encode_binary,
    encode_json,
    payload_type_name,
)

FRAMES = load_vectors("binary-frames.json")
KINDS = load_vectors("binary-vectors.json")


@pytest.mark.parametrize("case", FRAMES["cases"], ids=lambda c: c["name"])
def test_reference_frames_decode(case: dict[str, Any]) -> None:
    frame = decode_frame(base64.b64decode(case["frame"]))
    assert frame.msg_type == "bin"
    assert frame.kind == case["expected_kind"]
    assert frame.metadata == case["expected_metadata"]
    assert frame.payload == base64.b64decode(case["expected_payload"])


@pytest.mark.parametrize("case", FRAMES["cases"], ids=lambda c: c["name"])
def test_reference_frames_encode_byte_exactly(case: dict[str, Any]) -> None:
    wire = base64.b64decode(case["frame"])
    bin_type = decode_frame(wire).bin_type
    assert bin_type is not None
    encoded = encode_binary(
        base64.b64decode(case["expected_payload"]), bin_type=bin_type, metadata=case["expected_metadata"]
    )
    assert encoded == wire


def test_long_metadata_is_compressed() -> None:
    case = next(c for c in FRAMES["cases"] if "compressed" in c["name"])
    frame = decode_frame(base64.b64decode(case["frame"]))
    assert frame.compressed
    # The clip is not a zlib stream and is returned as sent.
    assert frame.payload == base64.b64decode(case["expected_payload"])


def test_reference_bus_frame() -> None:
    wire = base64.b64decode(FRAMES["bus_frame"])
    assert wire[:5] == bytes.fromhex("c042027b7d")
    frame = decode_frame(wire)
    assert frame.msg_type == "bus" and frame.version == 1 and not frame.compressed
    assert frame.metadata == {}
    assert frame.payload == {"type": "speak", "data": {"utterance": "Pfffft."}}
    assert frame.kind is None
    assert frame.to_envelope().bus_message().data == {"utterance": "Pfffft."}
    assert encode_json("bus", {"type": "speak", "data": {"utterance": "Pfffft."}}, metadata={}) == wire


@pytest.mark.parametrize("case", KINDS["cases"], ids=lambda c: c["name"])
def test_binary_vector_cases(case: dict[str, Any]) -> None:
    wire = encode_binary(b"\x00\x01audio", bin_type=case["bin_type"], metadata=case["metadata"])
    frame = decode_frame(wire)
    expected = case["expected"]
    assert frame.kind == expected["kind"]
    assert frame.utterance == expected["utterance"]
    assert frame.lang == expected["lang"]
    assert frame.file_name == expected["file_name"]
    assert frame.payload == b"\x00\x01audio"


def test_payload_type_names() -> None:
    assert {str(k): v for k, v in PAYLOAD_TYPES.items()} == KINDS["payload_kinds"]
    for number, name in KINDS["unnamed_kind_names"].items():
        assert payload_type_name(int(number)) == name


def test_fake_hub_layout_decodes() -> None:
    """The simplest encoder: no version, no left padding, payload shifted with 4 tail bits."""
    meta = b'{"utterance": "hi"}'
    payload = bytes(range(20))
    # 4-bit type 6, then the payload, then 4 zero bits.
    shifted = ((6 << (8 * len(payload))) | int.from_bytes(payload, "big")) << 4
    body = shifted.to_bytes(len(payload) + 1, "big")
    wire = bytes([0x80 | (12 << 1), len(meta)]) + meta + body
    frame = decode_frame(wire)
    assert (frame.version, frame.kind, frame.utterance, frame.payload) == (None, "tts_audio", "hi", payload)


def test_unversioned_encoding_round_trips() -> None:
    wire = encode_binary(b"abc", bin_type=3, metadata={"file_name": "x"}, versioned=False)
    frame = decode_frame(wire)
    assert frame.version is None and frame.payload == b"abc" and frame.file_name == "x"
    wire = encode_json("query", {"a": [1]}, metadata={"query_id": "q"}, versioned=False)
    assert wire[0] == 0x80 | (7 << 1)
    assert decode_frame(wire).to_envelope().metadata == {"query_id": "q"}


def test_json_frame_with_compression_round_trips() -> None:
    metadata = {"note": "x" * 400}
    wire = encode_json("broadcast", {"msg_type": "bus", "payload": {}}, metadata=metadata)
    frame = decode_frame(wire)
    assert frame.compressed and frame.metadata == metadata
    assert frame.to_envelope().inner() is not None


def test_extra_left_padding_is_skipped() -> None:
    wire = encode_binary(b"pay", bin_type=1, metadata={})
    assert decode_frame(b"\x00\x00" + wire).payload == b"pay"


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "start bit"),
        (b"\x00\x00", "start bit"),
        (bytes([0xC1, 0x00]), "version"),  # version 4 after the versioned bit
        (b"\x80", "truncated"),
        (bytes([0x98, 0x05]) + b"{}", "truncated"),  # metadata shorter than its length
        (bytes([0x98, 0x02]) + b"{}", "truncated"),  # bin without its 4-bit type
        (bytes([0x98, 0x02]) + b"[]" + b"\x00", "object"),
        (bytes([0x98, 0x02]) + b"\xff\xfe" + b"\x00", "UTF-8"),
        (bytes([0x82, 0x02]) + b"{}" + b"not json", "JSON"),
        (bytes([0x82, 0x02]) + b"{}", "JSON"),
        (bytes([0x83, 0x02]) + b"xx" + b"{}", "zlib"),
        (bytes([0x83, 0x04]) + zlib.compress(b"{}")[:4] + b"{}", "zlib"),
    ],
)
def test_malformed_frames_raise(wire: bytes, reason: str) -> None:
    with pytest.raises(Wire1Error, match=reason):
        decode_frame(wire)


def test_inflation_is_capped() -> None:
    bomb = zlib.compress(b'{"a":"' + b"x" * (MAX_INFLATED + 10) + b'"}', 9)
    meta = zlib.compress(b"{}")
    wire = bytes([0x83, len(meta)]) + meta + bomb
    with pytest.raises(Wire1Error, match="exceeds"):
        decode_frame(wire)


def test_encoder_refusals() -> None:
    with pytest.raises(Wire1Error):
        encode_binary(b"", bin_type=16)
    with pytest.raises(Wire1Error):
        encode_json("intercom", {})
    with pytest.raises(Wire1Error):
        encode_json("bin", {})
    with pytest.raises(Wire1Error):
        encode_binary(b"", bin_type=1, metadata={"x": object()})
    with pytest.raises(Wire1Error, match="even when compressed"):
        encode_binary(b"", bin_type=1, metadata={"k": base64.b64encode(bytes(range(256)) * 4).decode()})
    with pytest.raises(Wire1Error):
        Wire1Frame("bin", {}, b"x", 1).to_envelope()


@settings(max_examples=100, deadline=None)
@given(
    payload=st.binary(max_size=3000),
    bin_type=st.integers(min_value=0, max_value=15),
    meta=st.dictionaries(st.text(max_size=8), st.text(max_size=60), max_size=6),
    versioned=st.booleans(),
)
def test_binary_round_trip(payload: bytes, bin_type: int, meta: dict[str, str], versioned: bool) -> None:
    try:
        wire = encode_binary(payload, bin_type=bin_type, metadata=meta, versioned=versioned)
    except Wire1Error:
        assert len(zlib.compress(json.dumps(meta).encode())) > 255
        return
    frame = decode_frame(wire)
    assert (frame.payload, frame.bin_type, frame.metadata) == (payload, bin_type, meta)


@settings(max_examples=300, deadline=None)
@given(wire=st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_wire1_error(wire: bytes) -> None:
    try:
        frame = decode_frame(wire)
    except Wire1Error:
        return
    assert isinstance(frame.metadata, dict)


def test_conformance_frames_present() -> None:
    assert len(FRAMES["cases"]) == 11
