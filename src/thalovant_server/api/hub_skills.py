"""``/v1/hubs/{hub_id}/skills``: the skills one hub carries (what the public SDK's CLI manages).

Routing table::

    GET    /v1/hubs/{hub_id}/skills                 the hub's skills and their state (hubs:inspect)
    GET    /v1/hubs/{hub_id}/skills/history         newest first, ?limit=1..200 (hubs:inspect)
    POST   /v1/hubs/{hub_id}/skills                 install {skill, version}: 202 + operation (hubs:write)
    PATCH  /v1/hubs/{hub_id}/skills/{skill}         move to {version}: 202 + operation (hubs:write)
    DELETE /v1/hubs/{hub_id}/skills/{skill}         remove: 202 + operation (hubs:write)

A hub's skills are its runtime group's desired skills (``pending``, ``installed``, ``drifted``
when the installed package's version is no longer the one recorded, ``failed``, ``removing``)
plus the skills of the hub's own spec (``unmanaged``: change the hub's ``spec.skills`` for
those). A change applies to the whole runtime group, so every hub sharing it; the operation
(:mod:`thalovant_server.rollout`) reaches ``ready`` once the live hubs run it, within a second
on this server, without a restart.

Errors: 404 ``Hub not found``; 404 ``Marketplace skill not found.`` for a skill no installed
package provides; 404 for a skill the hub does not have; 404 ``hub_without_runtime_group``;
409 ``skill_version_already_installed``; 422 ``invalid_version`` (not ``latest`` or a version
number) and ``version_unavailable`` (a version other than the installed package's).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.api.auth import Principal, RequireScopes
from thalovant_server.api.hubs import member_hub
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.runtime_groups import rollout
from thalovant_server.api.skill_schemas import (
    HubSkillAccepted,
    HubSkillHistory,
    HubSkillInstall,
    HubSkillList,
    HubSkillUpdate,
)
from thalovant_server.api.skill_views import (
    SOURCE_CACHE,
    SOURCE_CACHE_EMPTY,
    SOURCE_LIVE,
    history_view,
    marketplace_id,
    operation_view,
)
from thalovant_server.api.state import control
from thalovant_server.api.views import timestamp
from thalovant_server.hub.runtime import HubObservation
from thalovant_server.hub.skills.registry import SkillPackage, installed_packages
from thalovant_server.store import operations, runtime_groups
from thalovant_server.store.models import DesiredSkill, Hub, RuntimeGroup, utcnow

router = APIRouter(prefix="/v1/hubs", tags=["hub skills"])

VERSION = re.compile(r"^\d+(\.\d+){0,3}([.+-][0-9A-Za-z.+-]{1,40})?$")
_ACCEPTED_STATE = {"install": "installing", "update": "updating", "remove": "removing"}
_PHASES = {
    "pending": "Progressing",
    "removing": "Progressing",
    "failed": "Failed",
    "installed": "Ready",
    "drifted": "Ready",
    "unmanaged": "Ready",
    "quarantined": "Failed",
}


async def hub_and_group(request: Request, principal: Principal, hub_ref: str) -> tuple[str, str]:
    """``(hub id, runtime group id)`` of a hub of the caller's (its workspace default group
    created on first use); 404 ``hub_without_runtime_group`` when its group is gone."""
    store = control(request).store
    async with store.session() as session:
        hub = await member_hub(session, principal, hub_ref)
        hub_id, workspace_id, named = hub.id, hub.workspace_id, hub.runtime_group_id
    if named is None:
        await runtime_groups.ensure_default(store, [workspace_id])
    async with store.session() as session:
        hub = await member_hub(session, principal, hub_id)
        group = await runtime_groups.group_of_hub(session, hub)
        if group is None:
            raise ApiProblem(404, "Hub has no runtime group.", code="hub_without_runtime_group")
        return hub.id, group.id


async def _context(session: AsyncSession, principal: Principal, hub_id: str, group_id: str) -> tuple[Hub, RuntimeGroup]:
    hub = await member_hub(session, principal, hub_id)
    group = await runtime_groups.group_by_id(session, group_id)
    if group is None:
        raise ApiProblem(404, "Hub has no runtime group.", code="hub_without_runtime_group")
    return hub, group


# -- reading ---------------------------------------------------------------------------------


def _row(
    name: str,
    package: SkillPackage | None,
    desired: DesiredSkill | None,
    observation: HubObservation | None,
) -> dict[str, Any]:
    available = package.version if package is not None and package.active else None
    observed = observation.skills.get(name) if observation is not None else None
    failure = observation.failures.get(name) if observation is not None else None
    if desired is None:
        state, version_pin, installed, previous, active = "unmanaged", None, available, None, True
        last_error, changed = failure, None
    else:
        state, version_pin, installed = desired.state, desired.version_pin, desired.installed_version
        previous, active, changed = desired.previous_version, desired.active, desired.last_transition_at
        last_error = desired.last_error or failure
        if state == "installed" and available is not None and installed is not None and installed != available:
            state = "drifted"
    if observation is not None and name in observation.quarantined:
        state = "quarantined"
    update = available is not None and installed is not None and installed != available
    return {
        "skill": name,
        "state": state,
        "title": package.title if package is not None else None,
        "marketplace_skill_id": marketplace_id(name) if package is not None else None,
        "package_name": package.package_name if package is not None else None,
        "source_type": desired.source_type if desired is not None else "hub-spec",
        "install_source": "runtime-group" if desired is not None else "hub-spec",
        "version": version_pin or "latest",
        "version_pin": version_pin,
        "installed_version": installed,
        "observed_version": observed,
        "previous_version": previous,
        "latest_version": available,
        "available_version": available,
        "update_available": update,
        "changelog": None,
        "active": active,
        "operator_phase": _PHASES.get(state, "Ready"),
        "operator_message": last_error or None,
        "operator_last_error": last_error,
        "last_transition_at": timestamp(changed),
    }


@router.get("/{hub_id}/skills", response_model=None, responses={200: {"model": HubSkillList}})
async def list_hub_skills(
    hub_id: str, request: Request, principal: Principal = Depends(RequireScopes("hubs:inspect"))
) -> dict[str, Any]:
    the_hub, group_id = await hub_and_group(request, principal, hub_id)
    observation = rollout(request).observe(the_hub)
    packages = installed_packages()
    async with control(request).store.session() as session:
        hub, group = await _context(session, principal, the_hub, group_id)
        desired = await runtime_groups.desired_skills(session, group.id)
        rows = [_row(d.skill_id, packages.get(d.skill_id), d, observation) for d in desired]
        managed = {d.skill_id for d in desired}
        own = [str(s) for s in hub.spec.get("skills") or [] if s not in managed]
        rows.extend(_row(name, packages.get(name), None, observation) for name in own)
    phases = {row["operator_phase"] for row in rows}
    phase = "Progressing" if "Progressing" in phases else ("Degraded" if "Failed" in phases else "Ready")
    if observation is not None:
        source, observed_at = SOURCE_LIVE, timestamp(utcnow())
    else:
        source, observed_at = (SOURCE_CACHE if rows else SOURCE_CACHE_EMPTY), timestamp(group.updated_at)
    return {
        "hub_id": hub.id,
        "runtime_group_id": group.id,
        "observed_at": observed_at,
        "source": source,
        "operator_phase": phase,
        "operator_message": "Skill changes are being applied." if phase == "Progressing" else None,
        "data": rows,
    }


@router.get("/{hub_id}/skills/history", response_model=None, responses={200: {"model": HubSkillHistory}})
async def list_hub_skill_history(
    hub_id: str,
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    principal: Principal = Depends(RequireScopes("hubs:inspect")),
) -> dict[str, Any]:
    the_hub, group_id = await hub_and_group(request, principal, hub_id)
    async with control(request).store.session() as session:
        hub, group = await _context(session, principal, the_hub, group_id)
        entries = []
        for entry in await runtime_groups.history(session, group.id, limit):
            operation = None
            if entry.kind == "operation" and entry.operation_id is not None:
                operation = await operations.operation_by_id(session, entry.operation_id)
            entries.append(history_view(entry, operation))
    return {"hub_id": hub.id, "runtime_group_id": group.id, "data": entries}


# -- commands --------------------------------------------------------------------------------


def _quarantined(request: Request, skill: str, hubs: list[Hub]) -> bool:
    """Whether a loaded hub of the group has quarantined ``skill`` (installing it again reloads it)."""
    live = rollout(request)
    return any(skill in seen.quarantined for seen in map(live.observe, (hub.id for hub in hubs)) if seen is not None)


def _checked_version(skill: str, version: str, package: SkillPackage) -> str:
    """The version a command asks for, resolved against the installed package."""
    if version != "latest" and not VERSION.match(version):
        raise ApiProblem(422, f"Version {version!r} is not valid.", code="invalid_version")
    if version not in ("latest", package.version):
        raise ApiProblem(
            422,
            f"Version {version!r} of {skill!r} is not available on this server (installed: {package.version}).",
            code="version_unavailable",
        )
    return package.version


def _package(skill: str) -> SkillPackage:
    package = installed_packages().get(skill)
    if package is None:
        raise ApiProblem(404, "Marketplace skill not found.")
    if not package.active:
        raise ApiProblem(409, "Marketplace skill is not active.", code="marketplace_skill_inactive")
    return package


async def _accept(
    request: Request,
    principal: Principal,
    hub_ref: str,
    action: str,
    skill: str,
    version: str | None,
) -> JSONResponse:
    """Validate a command against the hub's group, record it, start its operation: 202."""
    package = _package(skill) if action != "remove" else None
    resolved = _checked_version(skill, version or "latest", package) if package is not None else None
    hub_id, group_id = await hub_and_group(request, principal, hub_ref)
    async with control(request).store.session() as session:
        hub, group = await _context(session, principal, hub_id, group_id)
        desired = await runtime_groups.desired_skill(session, group.id, skill)
        live = desired is not None and desired.state != "removing"
        if action in ("update", "remove") and not live:
            if skill in (hub.spec.get("skills") or []):
                raise ApiProblem(
                    409,
                    "This skill comes from the hub's own spec; change the hub's spec.skills instead.",
                    code="skill_unmanaged",
                )
            raise ApiProblem(404, "Skill is not installed on this hub.")
        conflict = None
        if (
            action != "remove"
            and desired is not None
            and desired.state == "installed"
            and desired.installed_version == resolved
            and desired.version_pin == (None if version in (None, "latest") else version)
        ):
            conflict = ApiProblem(409, "Skill version already installed.", code="skill_version_already_installed")
        previous = desired.installed_version if desired is not None else None
        if conflict is not None and not _quarantined(
            request, skill, await runtime_groups.hubs_of_group(session, group)
        ):
            raise conflict
        operation = await operations.create_operation(
            session,
            workspace_id=group.workspace_id,
            kind=f"hub.skill.{action}",
            aggregate_type="hub",
            aggregate_id=hub.id,
            details={
                "reason": action,
                "skill": skill,
                "version": version,
                "hub_id": hub.id,
                "runtime_group_id": group.id,
                "previous_version": previous,
                "marketplace_skill_id": marketplace_id(skill) if package is not None else None,
                "actor_email": principal.email,
            },
            created_by=principal.user_id,
            deadline=rollout(request).deadline,
        )
        await runtime_groups.record(
            session,
            group_id=group.id,
            hub_id=hub.id,
            kind="operation",
            action=action,
            skill=skill,
            version=version,
            actor_email=principal.email,
            operation_id=operation.id,
        )
        operation_id = operation.id
        body = {
            "operation_id": operation_id,
            "skill": skill,
            "state": _ACCEPTED_STATE[action],
            "version": version,
            "hub_id": hub.id,
            "runtime_group_id": group.id,
            "previous_version": previous,
            "operation": operation_view(operation),
        }
    rollout(request).start(operation_id)
    return JSONResponse(body, status_code=202)


@router.post("/{hub_id}/skills", status_code=202, response_model=None, responses={202: {"model": HubSkillAccepted}})
async def install_hub_skill(
    hub_id: str, body: HubSkillInstall, request: Request, principal: Principal = Depends(RequireScopes("hubs:write"))
) -> JSONResponse:
    return await _accept(request, principal, hub_id, "install", body.skill, body.version)


@router.patch(
    "/{hub_id}/skills/{skill}", status_code=202, response_model=None, responses={202: {"model": HubSkillAccepted}}
)
async def update_hub_skill(
    hub_id: str,
    skill: str,
    body: HubSkillUpdate,
    request: Request,
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> JSONResponse:
    return await _accept(request, principal, hub_id, "update", skill, body.version)


@router.delete(
    "/{hub_id}/skills/{skill}", status_code=202, response_model=None, responses={202: {"model": HubSkillAccepted}}
)
async def remove_hub_skill(
    hub_id: str, skill: str, request: Request, principal: Principal = Depends(RequireScopes("hubs:write"))
) -> JSONResponse:
    return await _accept(request, principal, hub_id, "remove", skill, None)
