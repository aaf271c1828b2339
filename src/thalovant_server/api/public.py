"""Anonymous hub discovery: ``/v1/public/hubs`` (public and active hubs only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from thalovant_server.api.paging import MAX_LIMIT, page_or_400
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.schemas import HubOut, HubPage
from thalovant_server.api.state import control
from thalovant_server.api.views import page_envelope, rated_hub_view, rated_hub_views
from thalovant_server.store import hubs

router = APIRouter(prefix="/v1/public", tags=["public"])


@router.get("/hubs", response_model=None, responses={200: {"model": HubPage}})
async def list_public_hubs(
    request: Request,
    limit: int = Query(24, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=512),
) -> dict[str, Any]:
    plane = control(request)
    async with plane.store.session() as session:
        page = await page_or_400(hubs.list_public_hubs(session, limit=limit, cursor=cursor))
        items = await rated_hub_views(session, page.rows, plane.config, private=False)
    return page_envelope(items, page.next_cursor, path="/v1/public/hubs", query={"limit": str(limit)})


@router.get("/hubs/{hub_ref}", response_model=None, responses={200: {"model": HubOut}})
async def get_public_hub(hub_ref: str, request: Request) -> dict[str, Any]:
    """A public, active hub by slug, id or public_ref; anything else is 404 ``Hub not found``."""
    plane = control(request)
    async with plane.store.session() as session:
        hub = await hubs.hub_by_ref(session, hub_ref)
        if hub is None or hub.visibility != "public" or not hub.active:
            raise ApiProblem(404, "Hub not found")
        return await rated_hub_view(session, hub, plane.config, private=False)
