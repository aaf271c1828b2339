"""Canonical JSON and the prologue (spec 3.6) against the reference outputs and Python's json."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fixtures.conformance import load_vectors

from thalovant.protocol.canonical import MAX_DEPTH, build_prologue, canonical_json
from thalovant.protocol.errors import CanonicalJSONError, ProtocolError
from thalovant.protocol.noise import PATTERNS, SUITES, protocol_name

VECTORS = load_vectors("noise-vectors.json")


@pytest.mark.parametrize("case", VECTORS["canonical_json"], ids=lambda c: c["output"][:24])
def test_reference_cases(case: dict[str, Any]) -> None:
    assert canonical_json(case["input"]) == case["output"].encode("utf-8")


def test_reference_prologue() -> None:
    case = VECTORS["prologue"]
    name = protocol_name(case["pattern"], case["suite"])
    assert name == case["protocol_name"]
    prologue = build_prologue(case["hello"], case["handshake"], name)
    assert prologue.hex() == case["bytes"]
    assert prologue.endswith(name.encode("ascii"))


def test_client_message_one_payload() -> None:
    assert canonical_json({"encodings": [], "binarize": False}) == b'{"binarize":false,"encodings":[]}'


def test_escaping_rules() -> None:
    assert canonical_json("\x00\x1f\x7f") == b'"\\u0000\\u001f\x7f"'
    assert canonical_json("\u00e9\u4e2d\U0001f600") == '"\u00e9\u4e2d\U0001f600"'.encode()
    assert canonical_json('"\\/\b\f\n\r\t') == b'"\\"\\\\/\\b\\f\\n\\r\\t"'
    assert canonical_json("\u2028") == '"\u2028"'.encode()


def test_scalars_and_containers() -> None:
    assert canonical_json(None) == b"null"
    assert canonical_json(True) == b"true"
    assert canonical_json(-12345678901234567890) == b"-12345678901234567890"
    assert canonical_json(1.0) == b"1.0"  # Python's float form, as the reference writes it
    assert canonical_json(0.1) == b"0.1"
    assert canonical_json((1, [2, ()])) == b"[1,[2,[]]]"
    assert canonical_json(OrderedDict([("b", 1), ("a", 2)])) == b'{"a":2,"b":1}'
    assert canonical_json({"B": 1, "a": 2, "_": 3, "\u00e9": 4}) == '{"B":1,"_":3,"a":2,"\u00e9":4}'.encode()


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        {"x": [float("-inf")]},
        {1: "int key"},
        {None: 1},
        {("a",): 1},
        {"nested": {2: 3}},
        {"set"},
        b"bytes",
        object(),
        {"s": "lone \ud800 surrogate"},
        {"\udfff": 1},
    ],
    ids=repr,
)
def test_refusals(value: Any) -> None:
    with pytest.raises(CanonicalJSONError):
        canonical_json(value)


def test_cycles_and_deep_nesting_are_refused() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(CanonicalJSONError):
        canonical_json(cyclic)
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(CanonicalJSONError):
        canonical_json(looped)
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(CanonicalJSONError):
        canonical_json(deep)
    fine: Any = "leaf"
    for _ in range(MAX_DEPTH - 1):
        fine = {"k": fine}
    assert canonical_json(fine).count(b"{") == MAX_DEPTH - 1


def test_prologue_refuses_non_objects() -> None:
    with pytest.raises(CanonicalJSONError):
        build_prologue([], {}, "Noise_XXpsk2_25519_ChaChaPoly_SHA256")  # type: ignore[arg-type]
    with pytest.raises(CanonicalJSONError):
        build_prologue({}, {"x": float("nan")}, "Noise_XXpsk2_25519_ChaChaPoly_SHA256")
    with pytest.raises(CanonicalJSONError):
        build_prologue({}, {}, b"Noise_XXpsk2_25519_ChaChaPoly_SHA256")  # type: ignore[arg-type]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("suite", SUITES)
def test_prologue_layout(pattern: str, suite: str) -> None:
    hello = {"node_id": "n", "pubkey": "", "site_id": "hub"}
    offer = {"noise": {"suites": list(SUITES), "patterns": list(PATTERNS)}, "handshake": True}
    name = protocol_name(pattern, suite)
    assert build_prologue(hello, offer, name) == canonical_json(hello) + canonical_json(offer) + name.encode()
    # one changed byte anywhere changes the prologue
    assert build_prologue({**hello, "site_id": "hu b"}, offer, name) != build_prologue(hello, offer, name)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=6), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(_json_values)
def test_matches_python_json_dumps(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    produced = canonical_json(value)
    assert produced == expected
    # canonical form is a fixed point of parse + re-serialise (what the client does to the hub's payloads)
    assert canonical_json(json.loads(produced)) == produced


@settings(max_examples=200, deadline=None)
@given(st.from_type(object))
def test_anything_is_serialised_or_refused_typed(value: object) -> None:
    try:
        produced = canonical_json(value)
    except ProtocolError:
        return
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert produced == expected.encode("utf-8")
