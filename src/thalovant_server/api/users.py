"""The caller's own account: ``/v1/users/profile`` and ``/v1/users/password``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from thalovant_server.api.auth import Principal, authenticate
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.schemas import PasswordChange, ProfileEnvelope
from thalovant_server.api.state import control
from thalovant_server.api.tokens import too_many_attempts
from thalovant_server.secrets import ACCOUNT_PASSWORD_RULE, hash_password, password_weakness, verify_password
from thalovant_server.store import accounts

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("/profile", response_model=None, responses={200: {"model": ProfileEnvelope}})
async def profile(principal: Principal = Depends(authenticate)) -> dict[str, Any]:
    return {
        "data": {
            "id": principal.user_id,
            "email": principal.email,
            "display_name": principal.display_name,
            "role": principal.role,
            "workspace_id": principal.workspace_id,
            "scopes": list(principal.granted_scopes),
        }
    }


@router.post("/password", status_code=204, response_class=Response)
async def change_password(
    body: PasswordChange, request: Request, principal: Principal = Depends(authenticate)
) -> Response:
    """Change the caller's password; every other session (password sign-in) is revoked.

    The current password is checked under the sign-in limiter (a wrong one is 403
    ``incorrect_password``, repeated ones back off with 429); the new one must be strong (422
    ``weak_password``). API tokens stay valid: revoke them one by one.
    """
    plane = control(request)
    weakness = password_weakness(body.new_password, ACCOUNT_PASSWORD_RULE)
    if weakness is None and body.new_password == body.current_password:
        weakness = "must differ from the current password"
    if weakness is not None:
        raise ApiProblem(422, f"Schema validation failed: new_password {weakness}", code="weak_password")
    attempt = plane.login_limiter.admit(request.client.host if request.client else "unknown", principal.email)
    if isinstance(attempt, int):
        raise too_many_attempts(attempt)
    try:
        async with plane.store.session() as session:
            user = await accounts.user_by_id(session, principal.user_id)
        current_hash = user.password_hash if user is not None else None
        async with plane.argon2_slots:
            ok = await asyncio.to_thread(verify_password, current_hash, body.current_password)
            new_hash = await asyncio.to_thread(hash_password, body.new_password) if ok else None
    except BaseException:
        attempt.abandoned()
        raise
    if new_hash is None:
        attempt.failed()
        raise ApiProblem(403, "Incorrect password", code="incorrect_password")
    attempt.succeeded()
    keep = principal.token_id if principal.token_kind == "session" else None
    async with plane.store.session() as session:
        user = await accounts.user_by_id(session, principal.user_id)
        if user is None:
            raise ApiProblem(401, "Could not validate credentials", headers={"WWW-Authenticate": "Bearer"})
        user.password_hash = new_hash
        await accounts.revoke_sessions(session, user_id=user.id, keep=keep)
    return Response(status_code=204)
