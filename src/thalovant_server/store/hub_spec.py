"""The hub ``spec`` document: validation and normal form.

Normal form (what is stored and served)::

    {"version": "1",
     "protocols": {"wss": {"enabled": true}, "http": {"enabled": true}, "mqtt": {"enabled": false}},
     "skills": ["jokes", ...],
     ...any other keys, passed through}

Protocol values may arrive as a bool, a string (``true``/``yes``/``on``/``1`` ...) or an object
with ``enabled``; ``websocket`` is an alias of ``wss`` and ``https`` of ``http``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

PROTOCOLS = ("wss", "http", "mqtt")
PROTOCOL_ALIASES = {"wss": "wss", "websocket": "wss", "http": "http", "https": "http", "mqtt": "mqtt"}
DEFAULT_PROTOCOLS = {"wss": True, "http": True, "mqtt": False}
#: the largest spec accepted, as compact JSON (it is stored and served whole)
MAX_SPEC_BYTES = 64 * 1024
SKILL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_TRUE = {"true", "yes", "on", "1", "enabled"}
_FALSE = {"false", "no", "off", "0", "disabled", ""}
FLAG_WORDS = tuple(sorted(_TRUE | _FALSE))
"""Every string accepted as a protocol flag (any case, surrounding blanks ignored)."""


class SpecError(ValueError):
    """The spec does not validate; the message names the offending path."""


def _flag(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, Mapping):
        return _flag(value.get("enabled", True), f"{path}.enabled")
    raise SpecError(f"{value!r} is not a boolean at {path}")


def normalise_protocols(raw: Any, defaults: Mapping[str, bool] = DEFAULT_PROTOCOLS) -> dict[str, dict[str, bool]]:
    flags = dict(defaults)
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise SpecError("protocols must be an object at spec.protocols")
        for key, value in raw.items():
            name = PROTOCOL_ALIASES.get(str(key).lower())
            if name is None:
                raise SpecError(f"{key!r} is not one of {list(PROTOCOLS)} at spec.protocols")
            flags[name] = _flag(value, f"spec.protocols.{key}")
    return {name: {"enabled": flags[name]} for name in PROTOCOLS}


def normalise_spec(raw: Any) -> dict[str, Any]:
    """Validate a hub spec and return its normal form; raise :class:`SpecError` otherwise."""
    if not isinstance(raw, Mapping):
        raise SpecError("spec must be an object")
    try:
        size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError):
        raise SpecError("spec must be plain JSON") from None
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"spec is {size} bytes as JSON; the limit is {MAX_SPEC_BYTES}")
    version = raw.get("version")
    if not isinstance(version, str) or not version.strip():
        raise SpecError("spec.version must be a non-empty string")
    skills_raw = raw.get("skills", [])
    if not isinstance(skills_raw, list) or not all(isinstance(s, str) for s in skills_raw):
        raise SpecError("spec.skills must be a list of skill names")
    skills: list[str] = []
    for skill in skills_raw:
        if not SKILL_NAME.match(skill):
            raise SpecError(f"{skill!r} is not a valid skill name at spec.skills")
        if skill not in skills:
            skills.append(skill)
    spec = {str(k): v for k, v in raw.items()}
    spec["version"] = version
    spec["protocols"] = normalise_protocols(raw.get("protocols"))
    spec["skills"] = skills
    return spec


def enabled_protocols(spec: Mapping[str, Any]) -> dict[str, bool]:
    """The three flags of a stored (normal form) spec."""
    protocols = spec.get("protocols") or {}
    return {name: bool((protocols.get(name) or {}).get("enabled", False)) for name in PROTOCOLS}
