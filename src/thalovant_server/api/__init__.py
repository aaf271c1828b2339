"""The ``/v1`` control-plane API: routers, Problem+JSON errors, authentication, paging."""

from __future__ import annotations

from fastapi import APIRouter

from thalovant_server.api import (
    analytics,
    clients,
    device,
    hub_extras,
    hub_skills,
    hubs,
    marketplace,
    memory,
    native,
    operations,
    public,
    runtime_groups,
    tokens,
    users,
)
from thalovant_server.api.problems import PROBLEM_RESPONSES


def api_router() -> APIRouter:
    """Every ``/v1`` route, each documenting its Problem+JSON refusals."""
    router = APIRouter(responses=PROBLEM_RESPONSES)
    for module in (
        tokens,
        device,
        native,
        users,
        public,
        hubs,
        hub_extras,
        hub_skills,
        clients,
        operations,
        marketplace,
        runtime_groups,
        memory,
        analytics,
    ):
        router.include_router(module.router)
    return router


__all__ = ["api_router"]
