"""Problem+JSON (RFC 7807) for every error the API answers.

Every refusal is ``application/problem+json`` with ``type`` ``about:blank``, ``title``,
``status``, ``instance`` (``urn:problem:<uuid>``), ``detail`` and optionally ``code`` plus
structured extras at the top level. Validation failures carry ``errors`` with secret inputs
replaced by ``"[omitted]"``; unexpected exceptions become a 500 problem and are logged by
type and stack only (never their message, which may quote SQL parameters or secrets).
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("thalovant_server.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
OMITTED = "[omitted]"
SECRET_KEYS = frozenset(
    {
        "password",
        "apikey",
        "accesskey",
        "accesstoken",
        "token",
        "refreshtoken",
        "secret",
        "clientsecret",
        "apisecret",
        "secretkey",
        "privatekey",
        "cryptokey",
        "otpcode",
        "recoverycode",
        "authorization",
        "credentials",
        "initialidentify",
        "psk",
    }
)


def is_secret_key(name: object) -> bool:
    return isinstance(name, str) and name.lower().replace("_", "").replace("-", "") in SECRET_KEYS


def scrub(value: Any) -> Any:
    """A deep copy of ``value`` with every secret-named member replaced by ``"[omitted]"``."""
    if isinstance(value, Mapping):
        return {k: (OMITTED if is_secret_key(k) else scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class ApiProblem(Exception):
    """Raise to answer with a problem: ``ApiProblem(404, "Hub not found")``."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extras: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.headers = dict(headers or {})
        self.extras = extras


def problem_body(status: int, detail: str | None, *, title: str = "HTTPException", **extras: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "instance": f"urn:problem:{uuid.uuid4()}",
        "detail": detail,
    }
    body.update({k: v for k, v in extras.items() if v is not None})
    return body


def problem_response(
    status: int,
    detail: str | None,
    *,
    title: str = "HTTPException",
    headers: Mapping[str, str] | None = None,
    **extras: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, title=title, **extras),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_CONTENT_TYPE,
    )


def _validation_entry(error: Mapping[str, Any]) -> dict[str, Any]:
    loc = [part if isinstance(part, str | int) else str(part) for part in error.get("loc", ())]
    secret_field = any(is_secret_key(part) for part in loc)
    return {
        "type": str(error.get("type", "value_error")),
        "loc": loc,
        "msg": str(error.get("msg", "")),
        "input": OMITTED if secret_field else scrub(error.get("input")),
    }


async def _on_api_problem(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return problem_response(exc.status, exc.detail, headers=exc.headers, code=exc.code, **exc.extras)


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _template_matches(template: str, path: str) -> bool:
    """Whether ``path`` is an instance of the OpenAPI path ``template`` (``{name}`` = one segment)."""
    wanted, given = template.strip("/").split("/"), path.strip("/").split("/")
    if len(wanted) != len(given):
        return False
    return all(
        (part.startswith("{") and part.endswith("}") and bool(seg)) or part == seg
        for part, seg in zip(wanted, given, strict=True)
    )


def allowed_methods(request: Request) -> list[str]:
    """The methods of the resource this request's path names.

    For a documented path, the resource is the most specific template of the OpenAPI document
    that matches (literal segments before parameters, as OpenAPI resolves ``/skills/history``
    before ``/skills/{skill}``), and its documented methods are the answer. Other paths (the
    data plane, the pages) list every method some route serves there."""
    path = request.url.path
    documented = [template for template in request.app.openapi().get("paths", {}) if _template_matches(template, path)]
    if documented:
        template = max(documented, key=lambda t: sum(not part.startswith("{") for part in t.strip("/").split("/")))
        operations = request.app.openapi()["paths"][template]
        return [method for method in HTTP_METHODS if method.lower() in operations]
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of one route; a path has one route per method
        headers["Allow"] = ", ".join(allowed_methods(request))
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=headers)
    return problem_response(exc.status_code, detail, headers=headers)


async def _on_validation_error(_request: Request, exc: Exception) -> Response:
    """422 ``Request validation failed`` with ``errors``; a body whose ``spec`` (of a hub or a
    client) does not validate is ``Schema validation failed: ... at spec.<path>`` with code
    ``schema_validation_failed``, as the API has always answered bad specs."""
    errors = [_validation_entry(error) for error in exc.errors()] if isinstance(exc, RequestValidationError) else []
    in_spec = [error for error in errors if error["loc"][:2] == ["body", "spec"]]
    if in_spec:
        where = ".".join(str(part) for part in in_spec[0]["loc"][1:])
        detail = f"Schema validation failed: {in_spec[0]['msg']} at {where}"
        return problem_response(
            422, detail, title="RequestValidationError", code="schema_validation_failed", errors=errors
        )
    return problem_response(422, "Request validation failed", title="RequestValidationError", errors=errors)


def _log_unexpected(scope: Scope, exc: BaseException) -> None:
    stack = "".join(traceback.format_tb(exc.__traceback__))
    logger.error(
        "Unhandled %s while serving %s %s\n%s",
        type(exc).__name__,
        scope.get("method", "?"),
        scope.get("path", "?"),
        stack,
    )


class ProblemGuard:
    """ASGI middleware: an exception escaping a route becomes a 500 problem, logged safely.

    Unlike Starlette's server-error middleware it neither re-raises nor logs the exception's
    message, so no secret quoted in an error message reaches the logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            _log_unexpected(scope, exc)
            if started:
                return
            response = problem_response(500, "Internal Server Error", title="Internal Server Error")
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register the problem handlers and the guard on ``app``."""
    app.add_exception_handler(ApiProblem, _on_api_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_middleware(ProblemGuard)


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "instance"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "instance": {"type": "string"},
        "detail": {"type": ["string", "null"]},
        "code": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "retry_after_seconds": {"type": "integer"},
    },
    "additionalProperties": True,
}

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": "A refusal, as Problem+JSON",
        "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_SCHEMA}},
    },
    "5XX": {
        "description": "A server failure, as Problem+JSON",
        "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_SCHEMA}},
    },
}
