"""Canonical JSON and the Noise prologue (data-plane spec 3.6).

Canonical JSON is exactly Python's ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8: keys sorted, no whitespace, non-ASCII text raw,
control characters as lowercase ``\\u00xx``. Both sides of a handshake must produce the same
bytes, or the handshake fails exactly like a wrong password.

Accepted values: ``dict`` with ``str`` keys, ``list``/``tuple``, ``str``, ``int``, ``bool``,
``None`` and finite ``float`` (written as Python writes them, e.g. ``1.0``; hubs should not
send floats, spec 3.6, but the client must still reproduce what Python makes of them).
Anything else (NaN, infinity, non-string keys, other types, cycles, absurd nesting) raises
:class:`~thalovant.protocol.errors.CanonicalJSONError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from thalovant.protocol.errors import CanonicalJSONError

__all__ = ["MAX_DEPTH", "build_prologue", "canonical_json"]

MAX_DEPTH = 200
"""Deepest nesting of arrays and objects accepted (far beyond any real HELLO or offer)."""

_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)


def _check(value: Any, depth: int) -> None:
    if isinstance(value, str | bool | int) or value is None:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalJSONError("Canonical JSON cannot carry NaN or infinity")
        return
    if depth >= MAX_DEPTH:
        raise CanonicalJSONError(f"Canonical JSON nests deeper than {MAX_DEPTH} levels (or is cyclic)")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJSONError(f"Canonical JSON keys must be strings, not {type(key).__name__}")
            _check(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check(item, depth + 1)
    else:
        raise CanonicalJSONError(f"Canonical JSON cannot carry {type(value).__name__}")


def canonical_json(obj: object) -> bytes:
    """The canonical UTF-8 serialisation of ``obj`` (sorted keys, no whitespace, raw UTF-8)."""
    _check(obj, 0)
    try:
        return _encoder.encode(obj).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a string
        raise CanonicalJSONError("Canonical JSON strings must be valid Unicode (no lone surrogates)") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise CanonicalJSONError(f"Cannot serialise as canonical JSON: {exc}") from None


def build_prologue(hello_payload: Mapping[str, Any], offer_payload: Mapping[str, Any], protocol_name: str) -> bytes:
    """canonical(HELLO payload) || canonical(offer payload) || UTF-8 protocol name.

    Both payloads are the whole ``payload`` objects as sent or parsed (spec 3.6).
    """
    if not isinstance(hello_payload, Mapping) or not isinstance(offer_payload, Mapping):
        raise CanonicalJSONError("The HELLO and offer payloads must be JSON objects")
    if not isinstance(protocol_name, str):
        raise CanonicalJSONError("The Noise protocol name must be a string")
    return canonical_json(dict(hello_payload)) + canonical_json(dict(offer_payload)) + protocol_name.encode("utf-8")
