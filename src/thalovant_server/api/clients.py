"""Client identities: ``/v1/clients`` (create, list) and ``/v1/clients/{id}`` (get, delete).

Idempotency choice: the answer of a creation is stored sealed with the server key; the same
``Idempotency-Key`` with the same request (ignoring ``spec.apiKey`` and ``spec.password``, which
the SDK mints anew on every try) replays it, ``initial_identify`` and all, so the caller gets
the credentials the hub actually holds. The same key with any other change is 409
``idempotency_key_reused``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.api.auth import Principal, RequireScopes
from thalovant_server.api.broker_accounts import sync_clients
from thalovant_server.api.hubs import schema_problem, visible_hub
from thalovant_server.api.paging import MAX_LIMIT, page_or_400
from thalovant_server.api.preconditions import idempotency_key, key_reused, request_fingerprint, require_etag
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.provisioning import (
    ClientRequest,
    ProvisioningError,
    provision_client,
    validate_client_password,
    validate_connection_type,
)
from thalovant_server.api.schemas import ClientCreate, ClientCreated, ClientOut, ClientPage
from thalovant_server.api.state import control, notify_client_revoked
from thalovant_server.api.views import client_view, page_envelope
from thalovant_server.store import clients, hubs, idempotency
from thalovant_server.store.hubs import is_uuid
from thalovant_server.store.idempotency import IdempotencyConflict
from thalovant_server.store.models import Client

router = APIRouter(prefix="/v1/clients", tags=["clients"])


def _fingerprint(body: ClientCreate) -> str:
    payload = body.model_dump()
    spec = dict(payload.get("spec") or {})
    spec.pop("apiKey", None)
    spec.pop("password", None)
    payload["spec"] = spec
    return request_fingerprint(payload)


async def _own_client(session: AsyncSession, principal: Principal, client_id: str) -> Client:
    """A client the caller controls: one their workspaces made, or any client of their hubs."""
    client = await clients.client_by_id(session, client_id)
    if client is not None and client.workspace_id not in principal.workspace_ids:
        hub = await hubs.hub_by_id(session, client.hub_id)
        if hub is None or hub.workspace_id not in principal.workspace_ids:
            client = None
    if client is None:
        raise ApiProblem(404, "Client not found")
    return client


@router.post("", status_code=201, response_model=None, responses={201: {"model": ClientCreated}})
async def create_client(
    body: ClientCreate,
    request: Request,
    idempotency_key_header: str | None = Header(None, alias="Idempotency-Key"),
    principal: Principal = Depends(RequireScopes("clients:write")),
) -> Response:
    """Provision a client identity of a hub the caller may use (their own, or public).

    After the commit, its MQTT account (if any) is added to the running broker; a replay of the
    same ``Idempotency-Key`` returns the stored answer and touches no account.
    """
    plane = control(request)
    key = idempotency_key(idempotency_key_header)
    fingerprint = _fingerprint(body)
    if key is not None:
        async with plane.store.session() as session:
            stored = await idempotency.find(session, plane.sealing, user_id=principal.user_id, scope="clients", key=key)
        if stored is not None:
            if stored.request_hash != fingerprint:
                raise key_reused()
            return JSONResponse(stored.body, status_code=stored.status_code)
    if body.owner_id is not None and body.owner_id != principal.user_id:
        raise ApiProblem(403, "Ownership required")
    spec = body.spec
    try:
        validate_connection_type(spec.connection_type)
        validate_client_password(spec.password)
    except ProvisioningError as exc:
        raise schema_problem(f"{exc} at {exc.field}") from None
    async with plane.store.session() as session:
        hub, _member = await visible_hub(session, principal, body.hub_id)
        taken = await session.scalar(select(Client.id).where(Client.hub_id == hub.id, Client.name == body.name))
        if taken is not None:
            raise ApiProblem(409, "Client name already exists")
        if spec.connection_type == "home_assistant":
            linked = await session.scalar(
                select(Client).where(Client.hub_id == hub.id, Client.connection_type == "home_assistant")
            )
            if linked is not None:
                # the linked identity's id only for those who control it: no foreign id leaks
                mine = linked.workspace_id in principal.workspace_ids or hub.workspace_id in principal.workspace_ids
                extras: dict[str, Any] = {"client_id": linked.id} if mine else {}
                raise ApiProblem(
                    409,
                    "This hub is already linked to a Home Assistant.",
                    code="home_assistant_already_linked",
                    **extras,
                )

    async def remember(session: AsyncSession, answer: dict[str, Any]) -> None:
        if key is not None:
            await idempotency.remember(
                session,
                plane.sealing,
                user_id=principal.user_id,
                scope="clients",
                key=key,
                request_hash=fingerprint,
                status_code=201,
                body=answer,
            )

    extras = dict(spec.model_extra or {})
    extras["version"] = spec.version
    try:
        provisioned = await provision_client(
            plane,
            hub=hub,
            owner_id=principal.user_id,
            workspace_id=principal.workspace_id,
            request=ClientRequest(
                name=body.name,
                site_id=spec.siteId,
                access_key=spec.apiKey,
                password=spec.password,
                connection_type=spec.connection_type,
                extras=extras,
                active=body.active,
            ),
            on_created=remember,
        )
    except ProvisioningError as exc:
        raise schema_problem(f"{exc} at {exc.field}") from None
    except clients.ClientNameTaken:
        raise ApiProblem(409, "Client name already exists") from None
    except clients.AccessKeyTaken:
        raise ApiProblem(409, "This access key is already in use", code="access_key_taken") from None
    except IdempotencyConflict:
        raise ApiProblem(
            409, "A request with this Idempotency-Key is already in progress", code="idempotency_key_in_progress"
        ) from None
    await sync_clients(request, [provisioned.client.id])
    return JSONResponse(provisioned.body, status_code=201)


@router.get("", response_model=None, responses={200: {"model": ClientPage}})
async def list_clients(
    request: Request,
    hub_id: str | None = Query(None, max_length=64),
    owner_id: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    cursor: str | None = Query(None, max_length=512),
    include_spec: bool = Query(True),
    principal: Principal = Depends(RequireScopes("clients:read")),
) -> dict[str, Any]:
    """The clients the caller controls (their workspaces', and every client of their hubs),
    filtered by hub and owner."""
    query = {"limit": str(limit)}
    if hub_id:
        query["hub_id"] = hub_id
    if owner_id:
        query["owner_id"] = owner_id
    if not include_spec:
        query["include_spec"] = "false"
    if hub_id and not is_uuid(hub_id):
        return page_envelope([], None, path="/v1/clients", query=query)
    async with control(request).store.session() as session:
        page = await page_or_400(
            clients.list_clients(
                session,
                workspace_ids=principal.workspace_ids,
                hub_id=hub_id or None,
                owner_id=owner_id or None,
                limit=limit,
                cursor=cursor,
            )
        )
        items = [client_view(client, include_spec=include_spec) for client in page.rows]
    return page_envelope(items, page.next_cursor, path="/v1/clients", query=query)


@router.get("/{client_id}", response_model=None, responses={200: {"model": ClientOut}})
async def get_client(
    client_id: str, request: Request, principal: Principal = Depends(RequireScopes("clients:read"))
) -> dict[str, Any]:
    """A client with its etag (never its secrets)."""
    async with control(request).store.session() as session:
        return client_view(await _own_client(session, principal, client_id))


@router.delete("/{client_id}", status_code=204, response_class=Response)
async def delete_client(
    client_id: str,
    request: Request,
    if_match: str | None = Header(None, alias="If-Match"),
    principal: Principal = Depends(RequireScopes("clients:write")),
) -> Response:
    """Delete under ``If-Match``; the hub runtime revokes the identity and closes its sessions.

    Its MQTT broker account goes too, with its live broker connections.
    """
    async with control(request).store.session() as session:
        client = await _own_client(session, principal, client_id)
        require_etag(if_match, client.etag)
        deleted_id = client.id
        await clients.delete_client(session, client)
    await notify_client_revoked(request, [deleted_id])
    await sync_clients(request, [deleted_id])
    return Response(status_code=204)
