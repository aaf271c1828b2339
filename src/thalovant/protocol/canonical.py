"""Canonical JSON and the Noise prologue (data-plane spec 3.6).

Canonical JSON is Python's ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8: both sides must produce the same bytes, or the
handshake fails exactly like a wrong password.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from thalovant.protocol.errors import CanonicalJSONError

_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJSONError(f"Canonical JSON keys must be strings, not {type(key).__name__}")
            _check(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check(item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise CanonicalJSONError("Canonical JSON cannot carry NaN or infinity")
    elif not isinstance(value, str | int | float | bool) and value is not None:
        raise CanonicalJSONError(f"Canonical JSON cannot carry {type(value).__name__}")


def canonical_json(obj: object) -> bytes:
    """The canonical UTF-8 serialisation of ``obj`` (sorted keys, no whitespace, raw UTF-8)."""
    _check(obj)
    try:
        return _encoder.encode(obj).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise CanonicalJSONError(str(exc)) from None


def build_prologue(
    hello_payload: Mapping[str, Any], offer_payload: Mapping[str, Any], protocol_name: str
) -> bytes:
    """canonical(HELLO payload) || canonical(offer payload) || protocol name."""
    return (
        canonical_json(dict(hello_payload))
        + canonical_json(dict(offer_payload))
        + protocol_name.encode("utf-8")
    )
