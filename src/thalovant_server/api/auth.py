"""Bearer authentication and scope gates.

``Authorization: Bearer <token>`` is the only credential (no cookies). The token's SHA-256 is
looked up among live API and session tokens. A missing, malformed, unknown, expired or revoked
token is 401 ``Could not validate credentials``; a token without the route's scope is 403
``Insufficient scopes`` (the scope is checked before anything else about the request).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.state import control
from thalovant_server.secrets import sha256_hex
from thalovant_server.store import accounts

ALL_SCOPES = ("hubs:read", "hubs:write", "hubs:inspect", "hubs:preview", "clients:read", "clients:write")
IMPLIED_SCOPES = {"hubs:read": ("hubs:inspect", "hubs:preview")}
MAX_TOKEN_LENGTH = 512

bearer_scheme = HTTPBearer(auto_error=False, description="An API token (tvpat_...) or a session token")


class UnknownScope(ValueError):
    """A requested scope is not one of :data:`ALL_SCOPES`."""


def parse_scopes(requested: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validated scopes in canonical order; None or empty means every scope."""
    if requested is None:
        return ALL_SCOPES
    items = requested.replace(",", " ").split() if isinstance(requested, str) else list(requested)
    if not items:
        return ALL_SCOPES
    unknown = [s for s in items if s not in ALL_SCOPES]
    if unknown:
        raise UnknownScope(unknown[0])
    return tuple(s for s in ALL_SCOPES if s in items)


def effective_scopes(granted: Iterable[str]) -> frozenset[str]:
    scopes = set(granted)
    for scope in list(scopes):
        scopes.update(IMPLIED_SCOPES.get(scope, ()))
    return frozenset(scopes)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    user_id: str
    email: str
    display_name: str
    role: str
    token_id: str
    token_kind: str
    expires_at: dt.datetime | None
    granted_scopes: tuple[str, ...]
    scopes: frozenset[str]
    workspace_ids: tuple[str, ...]

    @property
    def workspace_id(self) -> str:
        """The caller's personal workspace, where what they create lives."""
        return self.workspace_ids[0]


def unauthorized() -> ApiProblem:
    return ApiProblem(401, "Could not validate credentials", headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
) -> Principal:
    """The caller, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized()
    token_text = credentials.credentials.strip()
    if not token_text or len(token_text) > MAX_TOKEN_LENGTH:
        raise unauthorized()
    async with control(request).store.session() as session:
        token = await accounts.token_by_hash(session, sha256_hex(token_text))
        if token is None:
            raise unauthorized()
        user = await accounts.user_by_id(session, token.user_id)
        if user is None:
            raise unauthorized()
        workspaces = await accounts.workspace_ids(session, user.id)
    if not workspaces:
        raise unauthorized()
    granted = tuple(token.scopes)
    return Principal(
        user_id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        token_id=token.id,
        token_kind=token.kind,
        expires_at=token.expires_at,
        granted_scopes=granted,
        scopes=effective_scopes(granted),
        workspace_ids=tuple(workspaces),
    )


class RequireScopes:
    """A dependency: the authenticated caller, provided they hold every scope named."""

    def __init__(self, *scopes: str) -> None:
        self.scopes = scopes

    async def __call__(self, principal: Principal = Depends(authenticate)) -> Principal:
        if not all(scope in principal.scopes for scope in self.scopes):
            raise ApiProblem(403, "Insufficient scopes")
        return principal
