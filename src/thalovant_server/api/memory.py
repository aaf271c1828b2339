"""Memory: ``/v1/memory`` (list, create), ``/v1/memory/summary`` and ``/v1/memory/{id}``.

Items live in a workspace; a caller sees and changes the items of their workspaces only (an
item elsewhere is 404 ``Memory item not found``). ``scope`` decides what an item is about:
the ``workspace``, one ``hub`` (``hub_id``), or one ``client`` identity of a hub (``hub_id``
and ``client_id``); the hub and client must be the caller's. What a hub's memory skill was
told arrives as ``client`` items of kind ``fact`` with a ``subject``; correcting or deleting
one here changes what the hub recalls at once.

``retention_policy`` is ``user_controlled`` (kept until deleted, or until ``expires_at``) or
``30d``/``90d``/``365d`` (expires that long after creation, or at ``expires_at`` if sooner).
A workspace keeps at most 10 000 items (soft-deleted ones count until purged): past that a
create is 409 ``memory_full``.
Expired items are hidden unless ``include_expired=true``; a DELETE is soft (the item is gone
for every route but a list with ``include_deleted=true``) and purged after 30 days.

Reads first wait for the writes hubs queued (write-behind), so what a hub was just told is
listed. Any valid token may use these routes (memory has no scope of its own).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.api.auth import Principal, authenticate
from thalovant_server.api.fields import IsoDatetime
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.state import control
from thalovant_server.api.views import timestamp
from thalovant_server.hub.memory_book import MemoryBook
from thalovant_server.store import clients, hubs
from thalovant_server.store.memory import MemoryItem, list_items, purge_deleted, summary
from thalovant_server.store.models import Membership, utcnow

__all__ = ["flush_hub_writes", "router"]

router = APIRouter(prefix="/v1/memory", tags=["memory"])

KIND_PATTERN = r"^[a-z][a-z0-9_.-]{0,39}$"
TOKEN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
RETENTION_DAYS = {"30d": 30, "90d": 90, "365d": 365}
MAX_ITEMS_PER_WORKSPACE = 10_000
MAX_LIMIT = 200
MAX_OFFSET = 100_000

Retention = Literal["user_controlled", "30d", "90d", "365d"]


class _ItemFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(default="note", pattern=KIND_PATTERN)
    content: str = Field(min_length=1, max_length=4000)
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    owner_id: str | None = Field(default=None, max_length=64)
    consent_scope: str | None = Field(default=None, pattern=TOKEN_PATTERN)
    consent_version: str | None = Field(default=None, pattern=TOKEN_PATTERN, max_length=32)
    retention_policy: Retention = "user_controlled"
    expires_at: IsoDatetime | None = None


class WorkspaceItemCreate(_ItemFields):
    scope: Literal["workspace"]


class HubItemCreate(_ItemFields):
    scope: Literal["hub"]
    hub_id: str = Field(min_length=1, max_length=64)


class ClientItemCreate(_ItemFields):
    scope: Literal["client"]
    hub_id: str = Field(min_length=1, max_length=64)
    client_id: str = Field(min_length=1, max_length=64)


MemoryCreate = Annotated[WorkspaceItemCreate | HubItemCreate | ClientItemCreate, Field(discriminator="scope")]


class MemoryPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(default=None, pattern=KIND_PATTERN)
    content: str | None = Field(default=None, min_length=1, max_length=4000)
    subject: str | None = Field(default=None, min_length=1, max_length=200)
    consent_scope: str | None = Field(default=None, pattern=TOKEN_PATTERN)
    consent_version: str | None = Field(default=None, pattern=TOKEN_PATTERN, max_length=32)
    retention_policy: Retention | None = None
    expires_at: IsoDatetime | None = None
    clear_expires_at: StrictBool = False


class MemoryItemOut(BaseModel):
    id: str
    scope: str
    kind: str
    subject: str | None
    content: str
    owner_id: str
    workspace_id: str
    hub_id: str | None
    client_id: str | None
    source: str
    consent_scope: str | None
    consent_version: str | None
    retention_policy: str
    expires_at: str | None
    expired: bool
    deleted: bool
    deleted_at: str | None
    created_at: str
    updated_at: str


class MemoryPageMeta(BaseModel):
    count: int
    total: int
    limit: int
    offset: int
    next_offset: int | None


class MemoryPageLinks(BaseModel):
    next: str | None


class MemoryPage(BaseModel):
    data: list[MemoryItemOut]
    meta: MemoryPageMeta
    links: MemoryPageLinks


class MemorySummary(BaseModel):
    total: int
    by_scope: dict[str, int]
    by_kind: dict[str, int]
    expired: int
    deleted: int


def item_view(item: MemoryItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "scope": item.scope,
        "kind": item.kind,
        "subject": item.subject,
        "content": item.content,
        "owner_id": item.owner_id,
        "workspace_id": item.workspace_id,
        "hub_id": item.hub_id,
        "client_id": item.client_id,
        "source": item.source,
        "consent_scope": item.consent_scope,
        "consent_version": item.consent_version,
        "retention_policy": item.retention_policy,
        "expires_at": timestamp(item.expires_at),
        "expired": item.expired(),
        "deleted": item.deleted_at is not None,
        "deleted_at": timestamp(item.deleted_at),
        "created_at": timestamp(item.created_at),
        "updated_at": timestamp(item.updated_at),
    }


async def flush_hub_writes(request: Request) -> None:
    """Wait for what hubs queued for the database (their memory and request log)."""
    writer = getattr(request.app.state, "write_behind", None)
    if writer is not None:
        await writer.flush()


def _book(request: Request) -> MemoryBook | None:
    runtime = getattr(request.app.state, "runtime", None)
    book: MemoryBook | None = getattr(runtime, "memory", None)
    return book


def _tell_hubs(request: Request, before: tuple[str, str] | None, after: MemoryItem | None) -> None:
    """Keep what hubs recall equal to the store after an API change: forget the ``(client_id,
    subject)`` the item had, remember what it has now (if it is live)."""
    book = _book(request)
    if book is None:
        return
    if before is not None:
        book.drop(*before)
    if after is not None and after.client_id and after.subject and after.deleted_at is None and not after.expired():
        expires = after.expires_at.timestamp() if after.expires_at else None
        book.put(after.client_id, after.subject, after.content, expires_at=expires)


def _recalled_as(item: MemoryItem) -> tuple[str, str] | None:
    return (item.client_id, item.subject) if item.client_id and item.subject else None


async def _check_owner(session: AsyncSession, principal: Principal, owner_id: str | None) -> None:
    """403 ``Ownership required`` unless ``owner_id`` is the caller or a member of their workspaces."""
    if not owner_id or owner_id == principal.user_id:
        return
    shared = await session.scalar(
        select(Membership.id).where(
            Membership.user_id == owner_id, Membership.workspace_id.in_(list(principal.workspace_ids))
        )
    )
    if shared is None:
        raise ApiProblem(403, "Ownership required")


async def _own_item(session: AsyncSession, principal: Principal, item_id: uuid.UUID) -> MemoryItem:
    item = await session.get(MemoryItem, str(item_id))
    if item is None or item.workspace_id not in principal.workspace_ids or item.deleted_at is not None:
        raise ApiProblem(404, "Memory item not found")
    return item


async def _make_room(session: AsyncSession, workspace_id: str) -> None:
    """409 ``memory_full`` when the workspace holds :data:`MAX_ITEMS_PER_WORKSPACE` items, soft-
    deleted ones included (those past their purge date are purged first)."""
    count = select(func.count(MemoryItem.id)).where(MemoryItem.workspace_id == workspace_id)
    if (await session.scalar(count) or 0) < MAX_ITEMS_PER_WORKSPACE:
        return
    await purge_deleted(session)
    if (await session.scalar(count) or 0) >= MAX_ITEMS_PER_WORKSPACE:
        raise ApiProblem(
            409,
            f"A workspace keeps at most {MAX_ITEMS_PER_WORKSPACE} memory items; delete some first.",
            code="memory_full",
        )


def _expiry(policy: str, given: dt.datetime | None, created: dt.datetime) -> dt.datetime | None:
    if given is not None and given.tzinfo is None:
        given = given.replace(tzinfo=dt.UTC)
    days = RETENTION_DAYS.get(policy)
    if days is None:
        return given
    limit = created + dt.timedelta(days=days)
    return min(limit, given) if given is not None else limit


@router.get("", response_model=None, responses={200: {"model": MemoryPage}})
async def list_memory(
    request: Request,
    scope: Literal["workspace", "hub", "client"] | None = Query(None),
    kind: str | None = Query(None, max_length=40),
    owner_id: str | None = Query(None, max_length=64),
    hub_id: str | None = Query(None, max_length=64),
    q: str | None = Query(None, max_length=200),
    include_deleted: bool = Query(False),
    include_expired: bool = Query(False),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    """The caller's workspaces' items, newest first, filtered, in pages of ``limit`` from ``offset``."""
    await flush_hub_writes(request)
    async with control(request).store.session() as session:
        await _check_owner(session, principal, owner_id)
        rows, total = await list_items(
            session,
            workspace_ids=principal.workspace_ids,
            scope=scope,
            kind=kind or None,
            owner_id=owner_id or None,
            hub_id=hub_id or None,
            query=q or None,
            include_deleted=include_deleted,
            include_expired=include_expired,
            limit=limit,
            offset=offset,
        )
    next_offset = offset + len(rows) if offset + len(rows) < total else None
    query = {k: v for k, v in request.query_params.items() if k != "offset"}
    next_link = None
    if next_offset is not None:
        next_link = "/v1/memory?" + urlencode({**query, "offset": str(next_offset)})
    return {
        "data": [item_view(row) for row in rows],
        "meta": {"count": len(rows), "total": total, "limit": limit, "offset": offset, "next_offset": next_offset},
        "links": {"next": next_link},
    }


@router.get("/summary", response_model=None, responses={200: {"model": MemorySummary}})
async def memory_summary(
    request: Request,
    owner_id: str | None = Query(None, max_length=64),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    """How many live items there are by scope and kind, and how many expired or were deleted."""
    await flush_hub_writes(request)
    async with control(request).store.session() as session:
        await _check_owner(session, principal, owner_id)
        return await summary(session, workspace_ids=principal.workspace_ids, owner_id=owner_id or None)


@router.post("", status_code=201, response_model=None, responses={201: {"model": MemoryItemOut}})
async def create_memory(body: MemoryCreate, request: Request, principal: Principal = Depends(authenticate)) -> Response:
    """Keep a new item in the caller's workspace (the one of its hub, for hub and client items)."""
    now = utcnow()
    async with control(request).store.session() as session:
        await _check_owner(session, principal, body.owner_id)
        workspace_id = principal.workspace_id
        hub_id = client_id = None
        if isinstance(body, HubItemCreate | ClientItemCreate):
            hub = await hubs.hub_by_id(session, body.hub_id)
            if hub is None or hub.workspace_id not in principal.workspace_ids:
                raise ApiProblem(404, "Hub not found")
            hub_id, workspace_id = hub.id, hub.workspace_id
        if isinstance(body, ClientItemCreate):
            client = await clients.client_by_id(session, body.client_id)
            if client is None or client.hub_id != hub_id:
                raise ApiProblem(404, "Client not found")
            client_id = client.id
        await _make_room(session, workspace_id)
        item = MemoryItem(
            workspace_id=workspace_id,
            owner_id=body.owner_id or principal.user_id,
            hub_id=hub_id,
            client_id=client_id,
            scope=body.scope,
            kind=body.kind,
            subject=body.subject,
            content=body.content,
            source="api",
            consent_scope=body.consent_scope,
            consent_version=body.consent_version,
            retention_policy=body.retention_policy,
            expires_at=_expiry(body.retention_policy, body.expires_at, now),
            created_at=now,
            updated_at=now,
        )
        session.add(item)
        await session.flush()
        view = item_view(item)
    _tell_hubs(request, None, item)
    return JSONResponse(view, status_code=201)


@router.get("/{memory_id:uuid}", response_model=None, responses={200: {"model": MemoryItemOut}})
async def get_memory(
    memory_id: uuid.UUID, request: Request, principal: Principal = Depends(authenticate)
) -> dict[str, Any]:
    await flush_hub_writes(request)
    async with control(request).store.session() as session:
        return item_view(await _own_item(session, principal, memory_id))


@router.patch("/{memory_id:uuid}", response_model=None, responses={200: {"model": MemoryItemOut}})
async def update_memory(
    memory_id: uuid.UUID, body: MemoryPatch, request: Request, principal: Principal = Depends(authenticate)
) -> dict[str, Any]:
    """Correct an item: any field sent replaces the stored one; ``clear_expires_at`` removes the expiry."""
    await flush_hub_writes(request)
    async with control(request).store.session() as session:
        item = await _own_item(session, principal, memory_id)
        before = _recalled_as(item)
        for field in ("kind", "content", "subject", "consent_scope", "consent_version", "retention_policy"):
            value = getattr(body, field)
            if value is not None:
                setattr(item, field, value)
        if body.clear_expires_at:
            item.expires_at = None
        if body.expires_at is not None or body.retention_policy is not None:
            item.expires_at = _expiry(item.retention_policy, body.expires_at or item.expires_at, item.created_at)
        item.updated_at = utcnow()
        await session.flush()
        view = item_view(item)
    _tell_hubs(request, before, item)
    return view


@router.delete("/{memory_id:uuid}", status_code=204, response_class=Response)
async def delete_memory(
    memory_id: uuid.UUID, request: Request, principal: Principal = Depends(authenticate)
) -> Response:
    """Soft-delete an item: hubs forget it at once; it is purged after 30 days."""
    await flush_hub_writes(request)
    async with control(request).store.session() as session:
        item = await _own_item(session, principal, memory_id)
        before = _recalled_as(item)
        item.deleted_at = item.updated_at = utcnow()
    _tell_hubs(request, before, None)
    return Response(status_code=204)
