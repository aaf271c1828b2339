"""What ``/v1/openapi.json`` says beyond what the route declarations give FastAPI.

- ``If-Match`` is required wherever it is the only guard (hub PATCH and DELETE, client DELETE):
  without it the route answers 412 ``ETag mismatch``, as a stale etag does (controlplane.md 1.5).
  The routes declare it optional only so that they, not the validator, give that answer. A route
  guarded by its body (``expected_revision``) marks itself with :data:`IF_MATCH_OPTIONAL`.
- The ``client_id`` of a device authorization is one of the apps this server registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from thalovant_server.api.apps import AppRegistry

__all__ = ["IF_MATCH_OPTIONAL", "install"]

PRECONDITION_HEADERS = frozenset({"if-match"})
IF_MATCH_OPTIONAL = {"x-if-match-optional": True}
"""``openapi_extra`` of a route whose ``If-Match`` is an optional second guard."""


def _require_preconditions(schema: dict[str, Any]) -> None:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or operation.pop("x-if-match-optional", False):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and str(parameter.get("name", "")).lower() in PRECONDITION_HEADERS:
                    parameter["required"] = True
                    parameter["schema"] = {"type": "string", "minLength": 1}


def _registered_apps(schema: dict[str, Any], registry: AppRegistry) -> None:
    model = schema.get("components", {}).get("schemas", {}).get("DeviceAuthorizeRequest")
    if model is not None:
        model["properties"]["client_id"] = {
            "anyOf": [{"type": "string", "enum": registry.ids}, {"type": "null"}],
            "title": "Client Id",
            "description": "A registered app id; leave it out for a device that is not a registered app",
        }


def install(app: FastAPI, registry: AppRegistry) -> None:
    """Make ``app.openapi()`` answer the adjusted document (built once, then cached)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _require_preconditions(schema)
            _registered_apps(schema, registry)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
