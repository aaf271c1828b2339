"""What device and native sign-in share: OAuth-style errors and the API tokens they issue.

Their token endpoints answer refusals the OAuth way (RFC 6749 5.2, RFC 8628 3.5): status 400,
``application/json``, a top-level ``error`` code and an ``error_description`` sentence (also
under ``detail``, where Problem+JSON readers look). Successful answers are never cached.
"""

from __future__ import annotations

import datetime as dt
import secrets as _random
from collections.abc import Sequence
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_SCHEMA
from thalovant_server.api.views import timestamp
from thalovant_server.secrets import sha256_hex
from thalovant_server.store import accounts
from thalovant_server.store.models import ApiToken, utcnow

__all__ = [
    "APP_TOKEN_LIFETIME",
    "APP_TOKEN_PREFIX",
    "NO_STORE",
    "OAUTH_ERROR_RESPONSES",
    "IssuedToken",
    "OAuthError",
    "issue_app_token",
    "oauth_error",
]

APP_TOKEN_PREFIX = "tvt_"
APP_TOKEN_LIFETIME = dt.timedelta(days=365)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(BaseModel):
    error: str
    error_description: str
    detail: str
    interval: int | None = None


class IssuedToken(BaseModel):
    access_token: str
    token_type: str
    scopes: list[str]
    expires_in: int
    expires_at: str
    token_id: str


OAUTH_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "An OAuth error (RFC 6749 5.2); a body that is not JSON is a Problem+JSON refusal",
        "model": OAuthError,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_SCHEMA}},
    },
}


def oauth_error(error: str, description: str, **extra: Any) -> JSONResponse:
    """A 400 OAuth error answer."""
    body = {"error": error, "error_description": description, "detail": description, **extra}
    return JSONResponse(body, status_code=400, headers=NO_STORE)


async def issue_app_token(
    session: AsyncSession, *, user_id: str, scopes: Sequence[str], name: str
) -> tuple[str, ApiToken, dict[str, Any]]:
    """A new long-lived API token (``tvt_...``): the secret, its row and the token answer."""
    secret = APP_TOKEN_PREFIX + _random.token_urlsafe(32)
    expires_at = utcnow() + APP_TOKEN_LIFETIME
    token = await accounts.add_token(
        session,
        user_id=user_id,
        kind="api",
        token_hash=sha256_hex(secret),
        scopes=list(scopes),
        expires_at=expires_at,
        name=name[:200],
    )
    answer = {
        "access_token": secret,
        "token_type": "bearer",
        "scopes": list(token.scopes),
        "expires_in": int(APP_TOKEN_LIFETIME.total_seconds()),
        "expires_at": timestamp(expires_at),
        "token_id": token.id,
    }
    return secret, token, answer
