"""Native sign-in (authorization code with PKCE, RFC 7636): ``POST /v1/auth/native/token``.

The browser half is the server's ``/authorize`` page (:mod:`thalovant_server.pages.authorize`):
it hands the app a single-use code bound to the app id, the exact redirect URI and the S256
challenge. Here the app exchanges the code and its verifier for a 365-day API token. Any
mismatch, an unknown or expired code, or a wrong verifier is ``invalid_grant``. A code
presented a second time is refused and the token its first exchange gave is revoked (RFC 9700
4.2.4: a replayed code means it leaked).
"""

from __future__ import annotations

import base64
import hashlib

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import delete, update

from thalovant_server.api.apps import app_registry
from thalovant_server.api.oauth import NO_STORE, OAUTH_ERROR_RESPONSES, IssuedToken, issue_app_token, oauth_error
from thalovant_server.api.state import control
from thalovant_server.secrets import constant_time_equal, sha256_hex
from thalovant_server.store import signin
from thalovant_server.store.models import ApiToken, utcnow
from thalovant_server.store.signin import AuthorizationCode

__all__ = ["VERIFIER_PATTERN", "router", "s256_challenge"]

router = APIRouter(prefix="/v1/auth/native", tags=["auth"])

VERIFIER_PATTERN = r"^[A-Za-z0-9._~-]{43,128}$"


class NativeTokenRequest(BaseModel):
    code: str = Field(min_length=1, max_length=512)
    code_verifier: str = Field(pattern=VERIFIER_PATTERN)
    client_id: str = Field(min_length=1, max_length=64)
    redirect_uri: str = Field(min_length=1, max_length=2048)
    grant_type: str | None = Field(default=None, max_length=200)


def s256_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(verifier))`` without padding (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@router.post(
    "/token",
    response_model=None,
    responses={200: {"model": IssuedToken}, **OAUTH_ERROR_RESPONSES},
    openapi_extra={"security": []},
)
async def token(body: NativeTokenRequest, request: Request) -> JSONResponse:
    """Exchange an authorization code and its PKCE verifier for an API token."""
    plane = control(request)
    app = app_registry(request).get(body.client_id)
    async with plane.store.session() as session:
        code = await signin.authorization_code_by_hash(session, sha256_hex(body.code))
        if code is None or app is None or code.app_id != app.client_id:
            return oauth_error("invalid_grant", "Authorization code not found.")
        if code.used_at is not None:
            if code.token_id is not None:
                await session.execute(delete(ApiToken).where(ApiToken.id == code.token_id))
            return oauth_error(
                "invalid_grant", "This authorization code was already used; the token it gave is revoked."
            )
        if code.expires_at <= utcnow():
            return oauth_error("invalid_grant", "The authorization code expired. Sign in again.")
        if code.redirect_uri != body.redirect_uri:
            return oauth_error("invalid_grant", "redirect_uri does not match the authorization request.")
        if not constant_time_equal(s256_challenge(body.code_verifier), code.code_challenge):
            return oauth_error("invalid_grant", "The code verifier does not match the code challenge.")
        claimed = await session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == code.id, AuthorizationCode.used_at.is_(None))
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return oauth_error("invalid_grant", "This authorization code was already used.")
        _secret, issued, answer = await issue_app_token(
            session, user_id=code.user_id, scopes=code.scopes, name=app.name
        )
        await session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == code.id)
            .values(token_id=issued.id)
            .execution_options(synchronize_session=False)
        )
    return JSONResponse(answer, headers=NO_STORE)
