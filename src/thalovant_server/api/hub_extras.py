"""More about one hub: ``/v1/hubs/{id}/release``, ``/rating`` and ``/runtime-capabilities``.

- ``POST /release`` (``hubs:write``, the hub's workspace): see :mod:`releases`; answers the hub.
- ``PUT``/``DELETE /rating`` (``hubs:write``): rate a public hub of another workspace 1-5, or
  take the rating back; answers the hub with its ``rating_average``, ``rating_count`` and the
  caller's ``my_rating``. A hub of the caller's own workspace cannot be rated (403
  ``own_hub``); another workspace's private hub is not found.
- ``GET /runtime-capabilities`` (``hubs:inspect``, any hub the caller may see): the skills and
  intents the hub's live runtime answers with (``source: ovos-runtime``), or, when the runtime
  cannot load the hub (inactive), those its spec names (``ovos-runtime-unavailable``); 409
  ``hub_without_skills`` when it has none. Limited per caller and hub (429 with
  ``Retry-After``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from thalovant_server.api.auth import Principal, RequireScopes
from thalovant_server.api.fields import JsonInt
from thalovant_server.api.hubs import member_hub, visible_hub
from thalovant_server.api.limits import spend
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.releases import ReleaseRequest, released_spec
from thalovant_server.api.schemas import HubOut
from thalovant_server.api.state import control, notify_hub_changed
from thalovant_server.api.views import rated_hub_view, timestamp
from thalovant_server.hub.skills.base import Skill
from thalovant_server.hub.skills.registry import build_skills
from thalovant_server.store import hubs, ratings
from thalovant_server.store.models import utcnow

__all__ = ["capabilities_of", "router"]

router = APIRouter(prefix="/v1/hubs", tags=["hubs"])

RUNTIME_CLIENT_NAME = "thalovant-hub"
CAPABILITY_READS_PER_MINUTE = 60


class RatingRequest(BaseModel):
    rating: JsonInt = Field(ge=1, le=5)


class RatedHub(HubOut):
    my_rating: int | None


class CapabilitySkill(BaseModel):
    id: str
    title: str
    description: str
    active: bool
    adapt_intents: list[str]
    padatious_intents: list[str]
    total_intents: int


class CapabilityIntent(BaseModel):
    id: str
    skill_id: str
    name: str
    engine: str
    examples: list[str]
    patterns: list[str]


class CapabilityCounts(BaseModel):
    skills: int
    adapt_intents: int
    padatious_intents: int
    total_intents: int


class RuntimeCapabilities(BaseModel):
    hub_id: str
    client_name: str
    generated_at: str
    source: str
    skills: list[CapabilitySkill]
    intents: list[CapabilityIntent]
    counts: CapabilityCounts


@router.post("/{hub_id}/release", response_model=None, responses={200: {"model": HubOut}})
async def release_hub(
    hub_id: str,
    body: ReleaseRequest,
    request: Request,
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> dict[str, Any]:
    """Release a hub: what it runs from now on (see :mod:`releases`)."""
    plane = control(request)
    async with plane.store.session() as session:
        hub = await member_hub(session, principal, hub_id)
        hub.spec = released_spec(hub.spec, body, admin=principal.role == "admin", user_id=principal.user_id)
        hubs.touch(hub)
        await session.flush()
        view = await rated_hub_view(session, hub, plane.config, private=True)
    await notify_hub_changed(request, view["id"])
    return view


async def _rated_view(request: Request, principal: Principal, hub_id: str, rating: int | None) -> dict[str, Any]:
    """Set (an int) or clear (``None``) the caller's rating of a hub; the hub as they now see it."""
    plane = control(request)
    async with plane.store.session() as session:
        hub, member = await visible_hub(session, principal, hub_id)
        if member:
            raise ApiProblem(403, "You cannot rate a hub of your own workspace.", code="own_hub")
        if rating is None:
            await ratings.clear_rating(session, hub_id=hub.id, user_id=principal.user_id)
        else:
            await ratings.set_rating(session, hub_id=hub.id, user_id=principal.user_id, rating=rating)
        view = await rated_hub_view(session, hub, plane.config, private=False)
        view["my_rating"] = rating
    return view


@router.put("/{hub_id}/rating", response_model=None, responses={200: {"model": RatedHub}})
async def set_hub_rating(
    hub_id: str,
    body: RatingRequest,
    request: Request,
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> dict[str, Any]:
    """Rate a public hub of another workspace (1-5); a second rating replaces the first."""
    return await _rated_view(request, principal, hub_id, body.rating)


@router.delete("/{hub_id}/rating", response_model=None, responses={200: {"model": RatedHub}})
async def clear_hub_rating(
    hub_id: str, request: Request, principal: Principal = Depends(RequireScopes("hubs:write"))
) -> dict[str, Any]:
    """Take back the caller's rating (answers the hub; nothing to take back is fine)."""
    return await _rated_view(request, principal, hub_id, None)


def _engine(examples: Sequence[str]) -> str:
    """Example phrases are matched like Padatious intents, bare patterns like Adapt rules."""
    return "padatious" if examples else "adapt"


def capabilities_of(skills: Sequence[Skill]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(skills, intents)`` rows describing ``skills``."""
    skill_rows: list[dict[str, Any]] = []
    intent_rows: list[dict[str, Any]] = []
    for skill in skills:
        adapt: list[str] = []
        padatious: list[str] = []
        for spec in skill.intents:
            engine = _engine(spec.examples)
            (padatious if engine == "padatious" else adapt).append(spec.name)
            intent_rows.append(
                {
                    "id": f"{skill.skill_id}:{spec.name}",
                    "skill_id": skill.skill_id,
                    "name": spec.name,
                    "engine": engine,
                    "examples": list(spec.examples),
                    "patterns": list(spec.patterns),
                }
            )
        skill_rows.append(
            {
                "id": skill.skill_id,
                "title": skill.skill_id.replace("_", " ").replace("-", " ").title(),
                "description": skill.description,
                "active": True,
                "adapt_intents": adapt,
                "padatious_intents": padatious,
                "total_intents": len(adapt) + len(padatious),
            }
        )
    return skill_rows, intent_rows


@router.get("/{hub_id}/runtime-capabilities", response_model=None, responses={200: {"model": RuntimeCapabilities}})
async def runtime_capabilities(
    hub_id: str, request: Request, principal: Principal = Depends(RequireScopes("hubs:inspect"))
) -> dict[str, Any]:
    """The skills and intents the hub answers with, read from its live runtime."""
    plane = control(request)
    async with plane.store.session() as session:
        hub, _member = await visible_hub(session, principal, hub_id)
        hub_key, spec_skills = hub.id, [str(s) for s in hub.spec.get("skills") or []]
    spend(
        request,
        "runtime-capabilities",
        f"{principal.user_id}:{hub_key}",
        events=CAPABILITY_READS_PER_MINUTE,
        window=60.0,
        detail="Too many runtime capability reads for this hub. Retry later.",
        code="runtime_capabilities_rate_limited",
    )
    runtime = getattr(request.app.state, "runtime", None)
    host = await runtime.host(hub_key) if runtime is not None else None
    if host is not None:
        skills: Sequence[Skill] = host.router.agent.skills
        source = "ovos-runtime"
    else:
        skills = build_skills(spec_skills)
        source = "ovos-runtime-unavailable"
    if not skills:
        raise ApiProblem(409, "This hub runs no skills.", code="hub_without_skills")
    skill_rows, intent_rows = capabilities_of(skills)
    adapt = sum(len(row["adapt_intents"]) for row in skill_rows)
    padatious = sum(len(row["padatious_intents"]) for row in skill_rows)
    return {
        "hub_id": hub_key,
        "client_name": RUNTIME_CLIENT_NAME,
        "generated_at": timestamp(utcnow()),
        "source": source,
        "skills": skill_rows,
        "intents": intent_rows,
        "counts": {
            "skills": len(skill_rows),
            "adapt_intents": adapt,
            "padatious_intents": padatious,
            "total_intents": adapt + padatious,
        },
    }
