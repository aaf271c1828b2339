"""Workspace hubs: ``/v1/hubs`` (list, create) and ``/v1/hubs/{id}`` (get, patch, delete).

A caller sees their workspaces' hubs (every visibility) plus, on GET by id, public active hubs
(without workspace fields). Anything else is 404 ``Hub not found``, so another workspace's
private hubs cannot even be probed.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.api.auth import Principal, RequireScopes
from thalovant_server.api.broker_accounts import sync_hub
from thalovant_server.api.paging import MAX_LIMIT, page_or_400
from thalovant_server.api.preconditions import idempotency_key, key_reused, request_fingerprint, require_etag
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.releases import check_spec_images
from thalovant_server.api.schemas import HubCreate, HubOut, HubPage, HubPatch
from thalovant_server.api.state import control, notify_client_revoked, notify_hub_changed
from thalovant_server.api.views import hub_view, page_envelope, rated_hub_view, rated_hub_views
from thalovant_server.store import hubs, idempotency, runtime_groups
from thalovant_server.store.hub_spec import SpecError, normalise_spec
from thalovant_server.store.models import Hub

router = APIRouter(prefix="/v1/hubs", tags=["hubs"])

VISIBILITY_ALIASES = {"public": "public", "workspace": "workspace", "private": "workspace"}
IMMUTABLE_FIELDS = (("name", "Name"), ("namespace", "Namespace"), ("domain", "Domain"))


def schema_problem(message: str) -> ApiProblem:
    return ApiProblem(422, f"Schema validation failed: {message}", code="schema_validation_failed")


def _spec(raw: Any) -> dict[str, Any]:
    try:
        return normalise_spec(raw)
    except SpecError as exc:
        raise schema_problem(str(exc)) from None


def _visibility(raw: str | None, default: str) -> str:
    if raw is None:
        return default
    value = VISIBILITY_ALIASES.get(raw.strip().lower())
    if value is None:
        raise schema_problem(f"{raw!r} is not one of ['public', 'workspace'] at visibility")
    return value


def _slug(raw: str) -> str:
    slug = raw.strip().lower()
    if not hubs.SLUG.match(slug):
        raise schema_problem(f"{raw!r} is not a valid slug (lowercase letters, digits and '-') at slug")
    return slug


async def visible_hub(session: AsyncSession, principal: Principal, ref: str) -> tuple[Hub, bool]:
    """``(hub, is_member)`` for a hub the caller may see, else 404 ``Hub not found``."""
    hub = await hubs.hub_by_ref(session, ref)
    if hub is not None:
        if hub.workspace_id in principal.workspace_ids:
            return hub, True
        if hub.visibility == "public" and hub.active:
            return hub, False
    raise ApiProblem(404, "Hub not found")


async def group_for_hub(session: AsyncSession, principal: Principal, group_id: str, workspace_id: str) -> str:
    """The id of a runtime group a hub of ``workspace_id`` may use: one of that workspace's."""
    group = await runtime_groups.group_by_id(session, group_id)
    if group is None:
        raise ApiProblem(404, "Runtime group not found.")
    if group.workspace_id not in principal.workspace_ids or group.workspace_id != workspace_id:
        raise ApiProblem(403, "Ownership required")
    return group.id


async def member_hub(session: AsyncSession, principal: Principal, ref: str) -> Hub:
    hub, member = await visible_hub(session, principal, ref)
    if not member:
        raise ApiProblem(404, "Hub not found")
    return hub


@router.get("", response_model=None, responses={200: {"model": HubPage}})
async def list_hubs(
    request: Request,
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=512),
    owner_id: str | None = Query(None, max_length=64),
    principal: Principal = Depends(RequireScopes("hubs:read")),
) -> dict[str, Any]:
    """The hubs of the caller's workspaces, optionally only those of ``owner_id``."""
    plane = control(request)
    async with plane.store.session() as session:
        page = await page_or_400(
            hubs.list_workspace_hubs(
                session, workspace_ids=principal.workspace_ids, owner_id=owner_id or None, limit=limit, cursor=cursor
            )
        )
        items = await rated_hub_views(session, page.rows, plane.config, private=True)
    query = {"limit": str(limit)}
    if owner_id:
        query["owner_id"] = owner_id
    return page_envelope(items, page.next_cursor, path="/v1/hubs", query=query)


@router.post("", status_code=201, response_model=None, responses={201: {"model": HubOut}})
async def create_hub(
    body: HubCreate,
    request: Request,
    idempotency_key_header: str | None = Header(None, alias="Idempotency-Key"),
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> Response:
    """A new hub in the caller's workspace; the same ``Idempotency-Key`` replays the answer."""
    plane = control(request)
    key = idempotency_key(idempotency_key_header)
    fingerprint = request_fingerprint(body.model_dump())
    if key is not None:
        async with plane.store.session() as session:
            stored = await idempotency.find(session, plane.sealing, user_id=principal.user_id, scope="hubs", key=key)
        if stored is not None:
            if stored.request_hash != fingerprint:
                raise key_reused()
            return JSONResponse(stored.body, status_code=stored.status_code)
    if body.owner_id is not None and body.owner_id != principal.user_id:
        raise ApiProblem(403, "Ownership required")
    spec = _spec(body.spec.model_dump())
    visibility = _visibility(body.visibility, "workspace")
    slug = _slug(body.slug) if body.slug else hubs.slugify(body.name)
    if not slug or not hubs.SLUG.match(slug):
        slug = f"hub-{secrets.token_hex(4)}"  # a name without letters or digits gives no slug
    catalog = spec.get("catalog")
    catalog_title = catalog.get("title") if isinstance(catalog, dict) else None
    title = body.title or (catalog_title if isinstance(catalog_title, str) and catalog_title else body.name)
    async with plane.store.session() as session:
        group_id = None
        if body.runtime_group_id:
            group_id = await group_for_hub(session, principal, body.runtime_group_id, principal.workspace_id)
        try:
            hub = await hubs.create_hub(
                session,
                slug=slug,
                name=body.name,
                title=title,
                owner_id=principal.user_id,
                workspace_id=principal.workspace_id,
                spec=spec,
                visibility=visibility,
                active=body.active,
                description=body.description or "",
                domain=body.domain or None,
                runtime_group_id=group_id,
            )
        except hubs.SlugTaken:
            raise ApiProblem(409, "Hub slug already exists", code="slug_taken") from None
        view = hub_view(hub, plane.config, private=True)
        if key is not None:
            await idempotency.remember(
                session,
                plane.sealing,
                user_id=principal.user_id,
                scope="hubs",
                key=key,
                request_hash=fingerprint,
                status_code=201,
                body=view,
            )
    return JSONResponse(view, status_code=201)


@router.get("/{hub_id}", response_model=None, responses={200: {"model": HubOut}})
async def get_hub(
    hub_id: str, request: Request, principal: Principal = Depends(RequireScopes("hubs:read"))
) -> dict[str, Any]:
    plane = control(request)
    async with plane.store.session() as session:
        hub, member = await visible_hub(session, principal, hub_id)
        return await rated_hub_view(session, hub, plane.config, private=member)


@router.patch("/{hub_id}", response_model=None, responses={200: {"model": HubOut}})
async def update_hub(
    hub_id: str,
    body: HubPatch,
    request: Request,
    if_match: str | None = Header(None, alias="If-Match"),
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> dict[str, Any]:
    """Patch a hub under ``If-Match``; name, namespace and domain are immutable.

    Switching MQTT off (or the hub inactive) removes its clients' broker accounts and drops their
    broker connections; switching it back on restores the accounts.
    """
    plane = control(request)
    async with plane.store.session() as session:
        hub = await member_hub(session, principal, hub_id)
        require_etag(if_match, hub.etag)
        current = {"name": hub.name, "namespace": None, "domain": hub.domain}
        for field, label in IMMUTABLE_FIELDS:
            sent = getattr(body, field)
            if sent is not None and sent != current[field]:
                raise ApiProblem(400, f"{label} cannot be changed after hub creation")
        if body.slug is not None:
            slug = _slug(body.slug)
            if slug != hub.slug:
                if await hubs.hub_by_ref(session, slug) is not None:
                    raise ApiProblem(409, "Hub slug already exists", code="slug_taken")
                hub.slug = slug
        if body.spec is not None:
            spec = _spec(body.spec.model_dump())
            check_spec_images(hub.spec, spec, admin=principal.role == "admin")
            hub.spec = spec
        if body.visibility is not None:
            hub.visibility = _visibility(body.visibility, hub.visibility)
        if body.title is not None:
            hub.title = body.title
        if body.description is not None:
            hub.description = body.description
        if body.active is not None:
            hub.active = body.active
        if body.runtime_group_id is not None:
            hub.runtime_group_id = await group_for_hub(session, principal, body.runtime_group_id, hub.workspace_id)
        hubs.touch(hub)
        await session.flush()
        view = await rated_hub_view(session, hub, plane.config, private=True)
    await notify_hub_changed(request, hub.id)
    await sync_hub(request, hub.id)
    return view


@router.delete("/{hub_id}", status_code=204, response_class=Response)
async def delete_hub(
    hub_id: str,
    request: Request,
    if_match: str | None = Header(None, alias="If-Match"),
    principal: Principal = Depends(RequireScopes("hubs:write")),
) -> Response:
    """Delete a hub and every client identity of it (their live sessions and broker accounts go)."""
    async with control(request).store.session() as session:
        hub = await member_hub(session, principal, hub_id)
        require_etag(if_match, hub.etag)
        deleted_hub_id = hub.id
        client_ids = await hubs.delete_hub(session, hub)
    await notify_client_revoked(request, client_ids)
    await notify_hub_changed(request, deleted_hub_id)
    await sync_hub(request, deleted_hub_id)
    return Response(status_code=204)
