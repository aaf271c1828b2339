"""``/v1/marketplace/skills``: the skill packages installed on this server.

The catalog is the ``thalovant.skills`` entry points of the installed distributions (see
:mod:`thalovant_server.hub.skills.registry`): one entry per skill, with its title, summary,
package version and intents. ``force_refresh=true`` scans the installed distributions again
(a skill package installed while the server runs). Packages that do not load are inactive;
only an administrator may list them (``include_inactive``), as only they can act on them.
For anyone else ``owner_id`` and ``include_inactive`` are ignored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from thalovant_server.api.auth import Principal, RequireScopes
from thalovant_server.api.skill_schemas import MarketplaceList
from thalovant_server.api.skill_views import catalog_entry
from thalovant_server.hub.skills import registry

router = APIRouter(prefix="/v1/marketplace", tags=["marketplace"])


@router.get("/skills", response_model=None, responses={200: {"model": MarketplaceList}})
async def list_marketplace_skills(
    owner_id: str | None = Query(None, max_length=64),
    include_inactive: bool = False,
    force_refresh: bool = False,
    principal: Principal = Depends(RequireScopes("hubs:read")),
) -> dict[str, Any]:
    packages = registry.refresh() if force_refresh else registry.installed_packages()
    show_inactive = include_inactive and principal.role == "admin"
    entries = [catalog_entry(p) for _, p in sorted(packages.items()) if p.active or show_inactive]
    return {"data": entries}
