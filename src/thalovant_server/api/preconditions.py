"""``If-Match`` and ``Idempotency-Key`` handling."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from thalovant_server.api.problems import ApiProblem

MAX_IDEMPOTENCY_KEY = 255


def etag_matches(if_match: str | None, current: str) -> bool:
    """True when any entity tag in ``If-Match`` equals ``current`` (quotes and ``W/`` ignored)."""
    if if_match is None:
        return False
    for candidate in if_match.split(","):
        tag = candidate.strip()
        if tag.startswith(("W/", "w/")):
            tag = tag[2:]
        tag = tag.strip().strip('"')
        if tag == "*" or tag == current:
            return True
    return False


def require_etag(if_match: str | None, current: str) -> None:
    """412 ``ETag mismatch`` unless ``If-Match`` names the current etag."""
    if not etag_matches(if_match, current):
        raise ApiProblem(412, "ETag mismatch")


def idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    key = raw.strip()
    if not key:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiProblem(400, "Idempotency-Key is too long", code="invalid_idempotency_key")
    return key


def request_fingerprint(payload: Any) -> str:
    """SHA-256 of the canonical JSON of ``payload``."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def key_reused() -> ApiProblem:
    return ApiProblem(
        409,
        "This Idempotency-Key was already used with a different request body.",
        code="idempotency_key_reused",
    )
