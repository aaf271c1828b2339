"""HiveMind JSON envelopes and bus messages (spec 5.1)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thalovant.protocol.envelope import (
    MESSAGE_TYPES,
    NESTED_TYPES,
    BusMessage,
    HiveMessage,
    message_type_name,
    message_type_number,
    parse_envelope,
    parse_json_object,
)
from thalovant.protocol.errors import EnvelopeError

FIELDS = ["msg_type", "payload", "metadata", "route", "node", "target_site_id", "target_pubkey", "source_peer"]


def test_to_bytes_always_has_eight_fields() -> None:
    obj = json.loads(HiveMessage("ping").to_bytes())
    assert list(obj) == FIELDS
    assert obj == {
        "msg_type": "ping",
        "payload": {},
        "metadata": {},
        "route": [],
        "node": None,
        "target_site_id": None,
        "target_pubkey": None,
        "source_peer": None,
    }


def test_bus_constructor_and_round_trip() -> None:
    msg = HiveMessage.bus("speak", {"utterance": "héllo"}, {"session": {"session_id": "s1"}})
    parsed = parse_envelope(msg.to_bytes())
    assert parsed == msg
    bus = parsed.bus_message()
    assert bus == BusMessage("speak", {"utterance": "héllo"}, {"session": {"session_id": "s1"}})
    assert bus.to_dict() == {
        "type": "speak",
        "data": {"utterance": "héllo"},
        "context": {"session": {"session_id": "s1"}},
    }


def test_missing_fields_default() -> None:
    msg = parse_envelope(b'{"msg_type":"bus"}')
    assert msg == HiveMessage("bus", {}, {}, [], None, None, None, None)


def test_wrongly_typed_fields_default() -> None:
    msg = parse_envelope(b'{"msg_type":"bus","payload":[1],"metadata":"x","route":{},"node":"n1"}')
    assert (msg.payload, msg.metadata, msg.route, msg.node) == ({}, {}, [], "n1")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, BusMessage("", {}, {})),
        ({"type": 5, "data": [], "context": "c"}, BusMessage("", {}, {})),
        ({"type": "a", "data": {"k": 1}}, BusMessage("a", {"k": 1}, {})),
        ({"type": "a", "context": {"x": None}}, BusMessage("a", {}, {"x": None})),
    ],
)
def test_bus_message_is_lenient(payload: dict[str, object], expected: BusMessage) -> None:
    assert HiveMessage("bus", payload).bus_message() == expected


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe",
        b"not json",
        b"[1,2]",
        b'"text"',
        b"null",
        b"{}",
        b'{"msg_type": 3}',
        b'{"msg_type": null}',
        b"",
        b"[" * 100000,
        '{"msg_type":"bus"}'.encode("utf-16"),
    ],
)
def test_invalid_envelopes_raise(body: bytes) -> None:
    with pytest.raises(EnvelopeError):
        parse_envelope(body)


def test_message_type_numbers() -> None:
    names = [
        "shake",
        "bus",
        "shared_bus",
        "broadcast",
        "propagate",
        "escalate",
        "hello",
        "query",
        "cascade",
        "ping",
        "rendezvous",
        "3rdparty",
        "bin",
    ]
    assert [MESSAGE_TYPES[n] for n in range(13)] == names
    assert all(message_type_number(name) == n for n, name in enumerate(names))
    assert message_type_number("handshake") == 0
    assert message_type_number("intercom") is None
    assert message_type_number("nonsense") is None
    assert message_type_name(13) == "3rdparty"
    assert message_type_name(31) == "3rdparty"


@pytest.mark.parametrize("kind", sorted(NESTED_TYPES))
def test_nested_envelopes(kind: str) -> None:
    inner = HiveMessage.bus("speak", {"utterance": "hi"})
    outer = HiveMessage(kind, inner.to_dict(), target_site_id="kitchen")
    parsed = parse_envelope(outer.to_bytes())
    assert parsed.inner() == inner
    assert parsed.target_site_id == "kitchen"


def test_nested_needs_string_msg_type_and_nesting_kind() -> None:
    assert HiveMessage("broadcast", {"msg_type": 1}).inner() is None
    assert HiveMessage("broadcast", {"type": "x"}).inner() is None
    assert HiveMessage("bus", {"msg_type": "bus"}).inner() is None
    assert {
        "broadcast",
        "propagate",
        "escalate",
        "intercom",
        "rendezvous",
        "query",
        "cascade",
        "shared_bus",
    } == NESTED_TYPES


def test_to_bytes_refuses_unserialisable_values() -> None:
    with pytest.raises(EnvelopeError):
        HiveMessage("bus", {"x": object()}).to_bytes()
    with pytest.raises(EnvelopeError):
        HiveMessage("bus", {"x": {(1, 2): "tuple key"}}).to_bytes()


def test_to_bytes_writes_non_finite_floats_as_null() -> None:
    body = HiveMessage("bus", {"x": float("nan"), "y": float("-inf"), "z": 1.5}).to_bytes()
    assert json.loads(body)["payload"] == {"x": None, "y": None, "z": 1.5}


def test_to_bytes_keeps_what_only_the_standard_library_writes() -> None:
    payload = {"big": 2**70, "lone": "\ud800", "deep": nested(300)}
    assert json.loads(HiveMessage("bus", payload).to_bytes())["payload"] == payload


def test_to_bytes_writes_non_ascii_text_as_utf8() -> None:
    body = HiveMessage("bus", {"text": "Ünïcödé ☃"}).to_bytes()
    assert "Ünïcödé ☃".encode() in body
    assert json.loads(body)["payload"] == {"text": "Ünïcödé ☃"}


def nested(depth: int) -> list[object]:
    """A list nested ``depth`` levels deep."""
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_envelope_error(body: bytes) -> None:
    try:
        msg = parse_envelope(body)
    except EnvelopeError:
        return
    assert isinstance(msg.msg_type, str)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(obj=st.dictionaries(st.sampled_from([*FIELDS, "extra"]), json_values, max_size=9))
def test_arbitrary_json_objects(obj: dict[str, object]) -> None:
    try:
        msg = parse_envelope(json.dumps(obj).encode())
    except EnvelopeError:
        assert not isinstance(obj.get("msg_type"), str)
        return
    assert msg.msg_type == obj["msg_type"]
    assert isinstance(msg.payload, dict) and isinstance(msg.metadata, dict) and isinstance(msg.route, list)
    assert parse_envelope(msg.to_bytes()) == msg
    msg.bus_message()
    msg.inner()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, ascii_only=st.booleans())
def test_parsing_reads_what_the_standard_library_reads(value: object, ascii_only: bool) -> None:
    text = json.dumps({"v": value}, ensure_ascii=ascii_only)
    expected = json.loads(text)
    assert parse_json_object(text.encode()) == expected
    assert parse_json_object(text) == expected


def test_parsing_keeps_integers_beyond_64_bits_exact() -> None:
    assert parse_json_object(b'{"n":123456789012345678901234567890}') == {"n": 123456789012345678901234567890}
    assert parse_json_object(b'{"n":-9223372036854775809}') == {"n": -9223372036854775809}


def test_parsing_reads_what_only_the_standard_library_accepts() -> None:
    assert parse_json_object(b'{"s":"\\ud800"}') == {"s": "\ud800"}
    assert parse_json_object(b'{"big":1e400}') == {"big": float("inf")}
    assert parse_json_object('{"s":"\ud800"}') == {"s": "\ud800"}
    assert parse_json_object(memoryview(b'{"n":12345678901234567890123}')) == {"n": 12345678901234567890123}


@pytest.mark.parametrize(
    ("body", "message"),
    [(b'{"a":"\xff"}', "not valid UTF-8"), (b'{"a":', "not valid JSON"), (b"[1]", "not a JSON object")],
)
def test_parsing_errors_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        parse_json_object(body)
