"""``/v1/runtime-groups``: the runtimes that serve hubs, their configuration and desired skills.

Routing table::

    GET    /v1/runtime-groups                       the caller's groups (defaults created on first use)
    POST   /v1/runtime-groups                       a new group (201)
    GET    /v1/runtime-groups/{id}
    PATCH  /v1/runtime-groups/{id}                  name, description, spec
    DELETE /v1/runtime-groups/{id}                  204; 409 for a default group or one with hubs
    GET    /v1/runtime-groups/{id}/config           revision, config, personas
    PUT    /v1/runtime-groups/{id}/config           guarded replace: 412 unless expected_revision is current
    PATCH  /v1/runtime-groups/{id}/config           replace, unguarded
    POST   /v1/runtime-groups/{id}/release          record a release of the group's runtime
    POST   /v1/runtime-groups/{id}/skills           upsert a desired skill (200)
    DELETE /v1/runtime-groups/{id}/skills/{skill}   204
    GET    /v1/runtime-groups/{id}/marketplace      the catalog as this group sees it
    GET    /v1/runtime-groups/{id}/inventory        what the group's runtime runs

An unknown group is 404 ``Runtime group not found.``; another workspace's group is 403
``Ownership required``. Changes to the config or the desired skills reach every hub of the
group at once (loaded hubs reload their skills; live sessions stay connected).

The configuration's top level is the runtime's configuration; this runtime reads ``lang`` and
``skills.timeout_seconds`` (how long an async skill handler may take) from it and keeps the
rest as given.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.api.auth import Principal, RequireScopes
from thalovant_server.api.openapi import IF_MATCH_OPTIONAL
from thalovant_server.api.preconditions import etag_matches
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.skill_schemas import (
    ConfigPatch,
    ConfigPut,
    DesiredSkillIn,
    DesiredSkillOut,
    ObservedList,
    ReleaseRequest,
    RuntimeGroupConfig,
    RuntimeGroupCreate,
    RuntimeGroupList,
    RuntimeGroupOut,
    RuntimeGroupPatch,
)
from thalovant_server.api.skill_views import (
    SOURCE_CACHE,
    SOURCE_CACHE_EMPTY,
    SOURCE_LIVE,
    SOURCE_PENDING,
    catalog_entry,
    desired_view,
    group_view,
    inventory_rows,
    marketplace_id,
)
from thalovant_server.api.state import control
from thalovant_server.api.views import timestamp
from thalovant_server.hub.skill_guard import MAX_SKILL_TIMEOUT, MIN_SKILL_TIMEOUT
from thalovant_server.hub.skills.registry import installed_packages
from thalovant_server.rollout import SkillRollout
from thalovant_server.store import runtime_groups
from thalovant_server.store.models import DesiredSkill, RuntimeGroup, utcnow

router = APIRouter(prefix="/v1/runtime-groups", tags=["runtime groups"])

MAX_CONFIG_BYTES = 64 * 1024
RELEASE_IMAGES = {"core": "ghcr.io/thalovant/ovos-core", "bus": "ghcr.io/thalovant/ovos-messagebus"}


def rollout(request: Request) -> SkillRollout:
    found: SkillRollout = request.app.state.skill_rollout
    return found


def schema_problem(message: str) -> ApiProblem:
    return ApiProblem(422, f"Schema validation failed: {message}", code="schema_validation_failed")


def group_not_found() -> ApiProblem:
    return ApiProblem(404, "Runtime group not found.")


async def owned_group(session: AsyncSession, principal: Principal, group_id: str) -> RuntimeGroup:
    """The group, provided it is in one of the caller's workspaces (else 404 or 403)."""
    group = await runtime_groups.group_by_id(session, group_id)
    if group is None:
        raise group_not_found()
    if group.workspace_id not in principal.workspace_ids:
        raise ApiProblem(403, "Ownership required")
    return group


def _workspace_for(principal: Principal, owner_id: str | None) -> list[str]:
    """The workspaces ``owner_id`` (a user or workspace id) names for this caller; 403 for others."""
    if owner_id is None or owner_id == principal.user_id:
        return list(principal.workspace_ids)
    if owner_id in principal.workspace_ids:
        return [owner_id]
    raise ApiProblem(403, "Ownership required")


async def _view(session: AsyncSession, group: RuntimeGroup) -> dict[str, Any]:
    return group_view(group, await runtime_groups.hub_count(session, group))


# -- groups ----------------------------------------------------------------------------------


@router.get("", response_model=None, responses={200: {"model": RuntimeGroupList}})
async def list_runtime_groups(
    request: Request,
    owner_id: str | None = Query(None, max_length=64),
    principal: Principal = Depends(RequireScopes("hubs:read")),
) -> dict[str, Any]:
    workspaces = _workspace_for(principal, owner_id)
    store = control(request).store
    await runtime_groups.ensure_default(store, workspaces)
    async with store.session() as session:
        return {"data": [await _view(session, g) for g in await runtime_groups.workspace_groups(session, workspaces)]}


@router.post("", status_code=201, response_model=None, responses={201: {"model": RuntimeGroupOut}})
async def create_runtime_group(
    body: RuntimeGroupCreate, request: Request, principal: Principal = Depends(RequireScopes("hubs:write"))
) -> JSONResponse:
    workspace_id = _workspace_for(principal, body.owner_id)[0]
    store = control(request).store
    if body.clone_from_default:
        await runtime_groups.ensure_default(store, [workspace_id])
    async with store.session() as session:
        source = await runtime_groups.default_group(session, workspace_id) if body.clone_from_default else None
        group = await runtime_groups.create_group(
            session,
            workspace_id=workspace_id,
            name=body.name.strip() or body.name,
            description=body.description or "",
            environment=(body.environment or runtime_groups.DEFAULT_ENVIRONMENT).strip().lower(),
            created_by=principal.user_id,
            clone_from=source,
        )
        view = await _view(session, group)
    return JSONResponse(view, status_code=201)


@router.get("/{group_id}", response_model=None, responses={200: {"model": RuntimeGroupOut}})
async def get_runtime_group(
    group_id: str, request: Request, principal: Principal = Depends(RequireScopes("hubs:read"))
) -> dict[str, Any]:
    async with control(request).store.session() as session:
        return await _view(session, await owned_group(session, principal, group_id))


def _patched_spec(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    spec = {**current, **{k: v for k, v in patch.items() if k != "release"}}
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 0 <= replicas <= 64:
        raise schema_problem(f"{replicas!r} is not an integer from 0 to 64 at spec.replicas")
    if not isinstance(spec.get("resources", {}), dict):
        raise schema_problem("spec.resources must be an object")
    return spec


@router.patch("/{group_id}", response_model=None, responses={200: {"model": RuntimeGroupOut}})
async def update_runtime_group(
    group_id: str,
    body: RuntimeGroupPatch,
    request: Request,
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> dict[str, Any]:
    async with control(request).store.session() as session:
        group = await owned_group(session, principal, group_id)
        if body.name is not None:
            group.name = body.name
        if body.description is not None:
            group.description = body.description
        if body.spec is not None:
            group.spec = _patched_spec(dict(group.spec), body.spec)
        group.updated_at = utcnow()
        await session.flush()
        return await _view(session, group)


@router.delete("/{group_id}", status_code=204, response_class=Response)
async def delete_runtime_group(
    group_id: str, request: Request, principal: Principal = Depends(RequireScopes("hubs:write"))
) -> Response:
    async with control(request).store.session() as session:
        group = await owned_group(session, principal, group_id)
        if group.default_for is not None:
            raise ApiProblem(409, "The workspace's default runtime group cannot be deleted.", code="default_group")
        if await runtime_groups.hub_count(session, group):
            raise ApiProblem(409, "The runtime group still serves hubs.", code="runtime_group_in_use")
        await session.delete(group)
    return Response(status_code=204)


# -- configuration ---------------------------------------------------------------------------


def _config_view(group: RuntimeGroup) -> dict[str, Any]:
    return {
        "revision": group.config_revision,
        "runtime_group_id": group.id,
        "config": dict(group.config),
        "personas": dict(group.personas),
    }


def _checked_config(config: dict[str, Any], personas: dict[str, Any] | None) -> None:
    size = len(json.dumps({"config": config, "personas": personas}, separators=(",", ":")).encode("utf-8"))
    if size > MAX_CONFIG_BYTES:
        raise schema_problem(f"the configuration is larger than {MAX_CONFIG_BYTES} bytes")
    lang = config.get("lang")
    if lang is not None and (not isinstance(lang, str) or not 0 < len(lang) <= 32):
        raise schema_problem(f"{lang!r} is not a language tag at config.lang")
    skills = config.get("skills")
    if skills is None:
        return
    if not isinstance(skills, dict):
        raise schema_problem("config.skills must be an object")
    timeout = skills.get("timeout_seconds")
    if timeout is not None and (
        not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or not MIN_SKILL_TIMEOUT <= timeout <= MAX_SKILL_TIMEOUT
    ):
        bounds = f"from {MIN_SKILL_TIMEOUT} to {MAX_SKILL_TIMEOUT}"
        raise schema_problem(f"{timeout!r} is not a number {bounds} at config.skills.timeout_seconds")


@router.get("/{group_id}/config", response_model=None, responses={200: {"model": RuntimeGroupConfig}})
async def get_runtime_group_config(
    group_id: str, request: Request, principal: Principal = Depends(RequireScopes("hubs:read"))
) -> dict[str, Any]:
    async with control(request).store.session() as session:
        return _config_view(await owned_group(session, principal, group_id))


async def _replace_config(
    request: Request,
    principal: Principal,
    group_id: str,
    config: dict[str, Any],
    personas: dict[str, Any] | None,
    expected: list[str | None],
) -> dict[str, Any]:
    """Replace the config when every guard in ``expected`` (revisions or If-Match values) holds."""
    _checked_config(config, personas)
    async with control(request).store.session() as session:
        group = await owned_group(session, principal, group_id)
        for guard in expected:
            if guard is not None and not etag_matches(guard, group.config_revision):
                raise ApiProblem(412, "Configuration changed")
        runtime_groups.set_config(group, config, personas)
        view = _config_view(group)
    await rollout(request).converge(group_id)
    return view


@router.put(
    "/{group_id}/config",
    response_model=None,
    responses={200: {"model": RuntimeGroupConfig}},
    openapi_extra=IF_MATCH_OPTIONAL,
)
async def put_runtime_group_config(
    group_id: str,
    body: ConfigPut,
    request: Request,
    if_match: str | None = Header(None, alias="If-Match"),
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> dict[str, Any]:
    """Replace the config provided ``expected_revision`` (and ``If-Match``, when sent) is current."""
    return await _replace_config(
        request, principal, group_id, body.config, body.personas, [body.expected_revision, if_match]
    )


@router.patch("/{group_id}/config", response_model=None, responses={200: {"model": RuntimeGroupConfig}})
async def patch_runtime_group_config(
    group_id: str,
    body: ConfigPatch,
    request: Request,
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> dict[str, Any]:
    """Replace the config (the personas too, when given), whatever the current revision."""
    return await _replace_config(request, principal, group_id, body.config, body.personas, [])


# -- release ---------------------------------------------------------------------------------


@router.post("/{group_id}/release", response_model=None, responses={200: {"model": RuntimeGroupOut}})
async def release_runtime_group(
    group_id: str,
    body: ReleaseRequest,
    request: Request,
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> dict[str, Any]:
    """Record a release of the group's runtime; images must be the platform's own unless an
    administrator asks (403 ``platform_image_required``)."""
    images = body.images.model_dump(exclude_none=True) if body.images is not None else {}
    refused = [
        ref
        for key, ref in images.items()
        if not (ref.startswith(RELEASE_IMAGES[key] + ":") or ref.startswith(RELEASE_IMAGES[key] + "@"))
    ]
    if refused and principal.role != "admin":
        raise ApiProblem(
            403,
            "Only an administrator can run an image the platform does not release: " + ", ".join(refused),
            code="platform_image_required",
            refused_images=refused,
            allowed_repositories=sorted(RELEASE_IMAGES.values()),
        )
    async with control(request).store.session() as session:
        group = await owned_group(session, principal, group_id)
        release = {k: v for k, v in body.model_dump().items() if v is not None}
        release.update(released_at=timestamp(utcnow()), released_by=principal.email)
        group.spec = {**group.spec, "release": release}
        group.updated_at = utcnow()
        await session.flush()
        return await _view(session, group)


# -- desired skills --------------------------------------------------------------------------


@router.post("/{group_id}/skills", response_model=None, responses={200: {"model": DesiredSkillOut}})
async def install_runtime_group_skill(
    group_id: str,
    body: DesiredSkillIn,
    request: Request,
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> dict[str, Any]:
    """Add or change a desired skill (an upsert); it runs on every hub of the group at once."""
    source_type = body.source_type.strip().lower()  # "catalog": the only one the schema admits
    package = installed_packages().get(body.skill_id)
    if package is None or (body.marketplace_skill_id and body.marketplace_skill_id != marketplace_id(package.name)):
        raise ApiProblem(404, "Marketplace skill not found.")
    if not package.active:
        raise ApiProblem(409, "Marketplace skill is not active.", code="marketplace_skill_inactive")
    if body.version_pin not in (None, "latest", package.version):
        raise ApiProblem(
            422,
            f"Version {body.version_pin!r} of {package.name!r} is not available (installed: {package.version}).",
            code="version_unavailable",
        )
    async with control(request).store.session() as session:
        group = await owned_group(session, principal, group_id)
        desired = await runtime_groups.desired_skill(session, group.id, package.name)
        if desired is None:
            desired = DesiredSkill(runtime_group_id=group.id, skill_id=package.name, state="pending")
            session.add(desired)
        desired.source_type = source_type
        desired.source_ref = body.source_ref or package.package_name
        desired.marketplace_skill_id = marketplace_id(package.name)
        desired.version_pin = None if body.version_pin in (None, "latest") else body.version_pin
        desired.active = body.active
        runtime_groups.set_state(desired, "pending")
        await runtime_groups.record(
            session,
            group_id=group.id,
            hub_id=None,
            kind="event",
            action="desired",
            skill=package.name,
            version=desired.version_pin,
            actor_email=principal.email,
        )
    await rollout(request).converge(group_id)
    async with control(request).store.session() as session:
        found = await runtime_groups.desired_skill(session, group_id, package.name)
        if found is None:
            raise group_not_found()  # the group was deleted meanwhile
        return desired_view(found)


@router.delete("/{group_id}/skills/{skill_id}", status_code=204, response_class=Response)
async def uninstall_runtime_group_skill(
    group_id: str, skill_id: str, request: Request, principal: Principal = Depends(RequireScopes("hubs:write"))
) -> Response:
    async with control(request).store.session() as session:
        group = await owned_group(session, principal, group_id)
        desired = await runtime_groups.desired_skill(session, group.id, skill_id)
        if desired is None:
            raise ApiProblem(404, "Skill is not installed in this runtime group.")
        runtime_groups.set_state(desired, "removing")
        await runtime_groups.record(
            session,
            group_id=group.id,
            hub_id=None,
            kind="event",
            action="undesired",
            skill=skill_id,
            version=None,
            actor_email=principal.email,
        )
    await rollout(request).converge(group_id)
    return Response(status_code=204)


# -- observed views --------------------------------------------------------------------------


async def _observed(request: Request, group: RuntimeGroup, session: AsyncSession, *, refresh: bool) -> dict[str, Any]:
    """The group's inventory: live from a loaded hub (loading one when ``refresh``), else the
    cache of the last live observation, else pending and empty."""
    hubs = await runtime_groups.hubs_of_group(session, group)
    managed = set(await runtime_groups.runtime_skill_names(session, group.id))
    live = rollout(request)
    observation = next((o for o in map(live.observe, (h.id for h in hubs)) if o is not None), None)
    if observation is None and refresh:
        for hub in hubs:
            observation = await live.load(hub.id)
            if observation is not None:
                break
    if observation is not None:
        observed_at = timestamp(utcnow())
        rows = [r for r in inventory_rows(group.id, observation, observed_at) if r["skill_id"] in managed]
        group.inventory = rows
        group.inventory_observed_at = utcnow()
        return {"source": SOURCE_LIVE, "observed_at": observed_at, "data": rows}
    if group.inventory is not None:
        cached = [{**row, "source": SOURCE_CACHE} for row in group.inventory if isinstance(row, dict)]
        return {"source": SOURCE_CACHE, "observed_at": timestamp(group.inventory_observed_at), "data": cached}
    return {"source": SOURCE_PENDING, "observed_at": None, "data": []}


def _phase(skills: list[DesiredSkill]) -> tuple[str, str]:
    if any(s.state in ("pending", "removing") for s in skills):
        return "Progressing", "Skill changes are being applied."
    failed = [s.skill_id for s in skills if s.state == "failed"]
    if failed:
        return "Degraded", "Skills that did not start: " + ", ".join(failed)
    return "Ready", "The runtime runs the desired skills."


@router.get("/{group_id}/inventory", response_model=None, responses={200: {"model": ObservedList}})
async def list_runtime_group_inventory(
    group_id: str,
    request: Request,
    refresh: bool = False,
    principal: Principal = Depends(RequireScopes("hubs:inspect")),
) -> dict[str, Any]:
    async with control(request).store.session() as session:
        group = await owned_group(session, principal, group_id)
        observed = await _observed(request, group, session, refresh=refresh)
        phase, message = _phase(await runtime_groups.desired_skills(session, group.id))
    return {"runtime_group_id": group_id, "operator_phase": phase, "operator_message": message, **observed}


@router.get("/{group_id}/marketplace", response_model=None, responses={200: {"model": ObservedList}})
async def list_runtime_group_marketplace(
    group_id: str,
    request: Request,
    refresh_inventory: bool = False,
    principal: Principal = Depends(RequireScopes("hubs:inspect")),
) -> dict[str, Any]:
    async with control(request).store.session() as session:
        group = await owned_group(session, principal, group_id)
        observed = await _observed(request, group, session, refresh=refresh_inventory)
        desired_rows = await runtime_groups.desired_skills(session, group.id)
        phase, message = _phase(desired_rows)
    desired = {s.skill_id: s for s in desired_rows}
    counts = {row["skill_id"]: row for row in observed["data"]}
    entries = []
    for name, package in sorted(installed_packages().items()):
        if not package.active and name not in desired:
            continue
        want = desired.get(name)
        seen = counts.get(name)
        entry = catalog_entry(package)
        entry.update(
            installed=want is not None,
            state=want.state if want is not None else None,
            active=bool(want and want.active),
            version_pin=want.version_pin if want is not None else None,
            source_type=want.source_type if want is not None else "catalog",
            observed_source=observed["source"] if seen is not None else None,
            observed_at=observed["observed_at"] if seen is not None else None,
            adapt_intents=0,
            padatious_intents=seen["total_intents"] if seen is not None else 0,
            total_intents=seen["total_intents"] if seen is not None else 0,
            operator_phase=phase,
            operator_message=want.last_error if want is not None and want.last_error else message,
            operator_retry_count=0,
            purchase_required=False,
            installable=package.active,
            access_message=None,
        )
        entries.append(entry)
    source = observed["source"] if observed["data"] or desired else SOURCE_CACHE_EMPTY
    return {
        "runtime_group_id": group_id,
        "observed_at": observed["observed_at"],
        "source": source,
        "operator_phase": phase,
        "operator_message": message,
        "data": entries,
    }
