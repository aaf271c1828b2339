"""The caller's own account: ``/v1/users/profile``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from thalovant_server.api.auth import Principal, authenticate
from thalovant_server.api.schemas import ProfileEnvelope

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
