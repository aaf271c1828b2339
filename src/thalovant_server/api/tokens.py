"""Sign-in and API tokens: ``/v1/auth/token`` and ``/v1/auth/api-tokens``.

Rules a token cannot get around:

- every API token expires: after ``api_token_default_days`` unless the request asks for fewer
  or more days, never after ``api_token_max_days`` (422 ``invalid_token_lifetime``);
- a token mints only tokens narrower than itself: a subset of its own scopes (403
  ``Insufficient scopes``), and, unless it is a session from a password sign-in (the account
  holder's own authority, like the password), a lifetime that ends no later than its own (403
  ``token_outlives_parent``);
- a token may always revoke itself; revoking another needs every scope that token holds (403
  ``Insufficient scopes``), so a narrow token cannot revoke a broader one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from thalovant_server.api.auth import ALL_SCOPES, Principal, UnknownScope, authenticate, parse_scopes
from thalovant_server.api.paging import MAX_LIMIT, page_or_400
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.schemas import ApiTokenCreate, ApiTokenCreated, ApiTokenPage, LoginRequest, TokenResponse
from thalovant_server.api.state import control
from thalovant_server.api.views import page_envelope, timestamp
from thalovant_server.secrets import new_api_token, new_session_token, sha256_hex, verify_password
from thalovant_server.store import accounts
from thalovant_server.store.models import ApiToken, utcnow

SESSION_LIFETIME = dt.timedelta(hours=1)

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def _invalid_scope(scope: str) -> ApiProblem:
    return ApiProblem(
        422, f"Schema validation failed: {scope!r} is not one of {list(ALL_SCOPES)}", code="invalid_scope"
    )


def too_many_attempts(retry_after: int) -> ApiProblem:
    """429 from the sign-in limiter (a password check refused before it ran)."""
    return ApiProblem(
        429,
        "Too many failed sign-in attempts. Retry later.",
        code="login_rate_limited",
        headers={"Retry-After": str(retry_after)},
        retry_after_seconds=retry_after,
    )


@router.post("/token", response_model=None, responses={200: {"model": TokenResponse}})
async def login(body: LoginRequest, request: Request) -> dict[str, Any]:
    """Password sign-in: a one-hour session token (no ``token_id``, no refresh token)."""
    plane = control(request)
    email = accounts.normalise_email(body.email)
    try:
        scopes = parse_scopes(body.scope)
    except UnknownScope as exc:
        raise _invalid_scope(str(exc)) from None
    attempt = plane.login_limiter.admit(request.client.host if request.client else "unknown", email)
    if isinstance(attempt, int):
        raise too_many_attempts(attempt)
    try:
        async with plane.store.session() as session:
            user = await accounts.user_by_email(session, email)
        password_hash = user.password_hash if user is not None else None
        async with plane.argon2_slots:
            ok = await asyncio.to_thread(verify_password, password_hash, body.password)
    except BaseException:
        attempt.abandoned()
        raise
    if not ok or user is None:
        attempt.failed()
        raise ApiProblem(401, "Incorrect email or password", headers={"WWW-Authenticate": "Bearer"})
    attempt.succeeded()
    token = new_session_token()
    expires_at = utcnow() + SESSION_LIFETIME
    async with plane.store.session() as session:
        await accounts.add_token(
            session,
            user_id=user.id,
            kind="session",
            token_hash=sha256_hex(token),
            scopes=scopes,
            expires_at=expires_at,
        )
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": int(SESSION_LIFETIME.total_seconds()),
        "expires_at": timestamp(expires_at),
        "scopes": list(scopes),
    }


def _token_info(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": list(token.scopes),
        "expires_at": timestamp(token.expires_at),
        "created_at": timestamp(token.created_at),
    }


@router.post("/api-tokens", status_code=201, response_model=None, responses={201: {"model": ApiTokenCreated}})
async def create_api_token(
    body: ApiTokenCreate, request: Request, principal: Principal = Depends(authenticate)
) -> dict[str, Any]:
    """A personal API token (``tvpat_...``), shown once; its scopes never exceed the caller's."""
    try:
        scopes = parse_scopes(body.scopes) if body.scopes is not None else principal.granted_scopes
    except UnknownScope as exc:
        raise _invalid_scope(str(exc)) from None
    if not set(scopes) <= set(principal.granted_scopes):
        raise ApiProblem(403, "Insufficient scopes")
    plane = control(request)
    days = body.expires_in_days or plane.config.api_token_default_days
    if days > plane.config.api_token_max_days:
        raise ApiProblem(
            422,
            f"Schema validation failed: expires_in_days must be at most {plane.config.api_token_max_days}",
            code="invalid_token_lifetime",
        )
    expires_at = utcnow() + dt.timedelta(days=days)
    if principal.token_kind != "session" and principal.expires_at is not None:
        if body.expires_in_days is None:
            expires_at = min(expires_at, principal.expires_at)
        elif expires_at > principal.expires_at:
            raise ApiProblem(403, "A token cannot mint a token that outlives it", code="token_outlives_parent")
    secret = new_api_token()
    async with plane.store.session() as session:
        token = await accounts.add_token(
            session,
            user_id=principal.user_id,
            kind="api",
            token_hash=sha256_hex(secret),
            scopes=scopes,
            expires_at=expires_at,
            name=body.name,
        )
        info = _token_info(token)
    return {**info, "token_id": info["id"], "access_token": secret, "token_type": "bearer"}


@router.get("/api-tokens", response_model=None, responses={200: {"model": ApiTokenPage}})
async def list_api_tokens(
    request: Request,
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=512),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    """The caller's API tokens, without their secrets."""
    async with control(request).store.session() as session:
        page = await page_or_400(accounts.list_api_tokens(session, principal.user_id, limit=limit, cursor=cursor))
        items = [_token_info(token) for token in page.rows]
    return page_envelope(items, page.next_cursor, path="/v1/auth/api-tokens", query={"limit": str(limit)})


@router.delete("/api-tokens/{token_id}", status_code=204, response_class=Response)
async def revoke_api_token(token_id: str, request: Request, principal: Principal = Depends(authenticate)) -> Response:
    """Revoke one of the caller's tokens: itself always, another only with every scope it holds."""
    async with control(request).store.session() as session:
        target = await accounts.token_of(session, user_id=principal.user_id, token_id=token_id)
        if target is None:
            raise ApiProblem(404, "API token not found")
        if target.id != principal.token_id and not set(target.scopes) <= set(principal.granted_scopes):
            raise ApiProblem(403, "Insufficient scopes")
        await session.delete(target)
    return Response(status_code=204)
