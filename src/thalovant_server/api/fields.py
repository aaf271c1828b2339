"""Field types request models share, each validating exactly what its OpenAPI schema says."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, WithJsonSchema

from thalovant_server.api.auth import ALL_SCOPES

__all__ = ["IsoDatetime", "JsonInt", "Scope"]

Scope = Literal["hubs:read", "hubs:write", "hubs:inspect", "hubs:preview", "clients:read", "clients:write"]
"""One API scope (the names of :data:`thalovant_server.api.auth.ALL_SCOPES`)."""
assert set(get_args(Scope)) == set(ALL_SCOPES), "Scope must list every scope of auth.ALL_SCOPES"

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_text(value: Any) -> Any:
    """Only RFC 3339 text is a date-time here (pydantic alone would take numbers as Unix times)."""
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be an RFC 3339 date-time such as 2030-01-31T12:00:00Z")
    return value


IsoDatetime = Annotated[
    dt.datetime,
    BeforeValidator(_iso_text),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A date-time given as RFC 3339 text (a naive one is taken as UTC by the routes)."""


def _json_number(value: Any) -> Any:
    """Only JSON numbers are integers here (``5`` and ``5.0``; not ``"5"`` nor ``true``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON integer")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_number)]
"""An integer as JSON Schema counts them: any number without a fractional part."""
