"""Client identity rows: creation, lookups by id / access key hash / MQTT user, listing, pinning."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.secrets import new_etag
from thalovant_server.store.hub_spec import enabled_protocols
from thalovant_server.store.models import Client, Hub, canonical_id, utcnow
from thalovant_server.store.pagination import Page, keyset_page


def admitted(client: Client, hub: Hub) -> bool:
    """Whether ``hub`` serves ``client`` now: its owner's identities always, other workspaces'
    only while the hub is public (a hub turned private refuses them, and serves them again if it
    turns public again). :func:`admitted_clause` is the same rule in SQL."""
    return hub.visibility == "public" or client.workspace_id == hub.workspace_id


def admitted_clause() -> ColumnElement[bool]:
    """:func:`admitted` as a condition on ``Client`` joined with its ``Hub``."""
    return or_(Hub.visibility == "public", Client.workspace_id == Hub.workspace_id)


def visible_clause(workspace_ids: Sequence[str]) -> ColumnElement[bool]:
    """Clients a member of ``workspace_ids`` may see and revoke: those their workspaces made, and
    every client of their workspaces' hubs, whoever made it (a hub owner controls their hub)."""
    owned_hubs = select(Hub.id).where(Hub.workspace_id.in_(list(workspace_ids)))
    return or_(Client.workspace_id.in_(list(workspace_ids)), Client.hub_id.in_(owned_hubs))


class ClientNameTaken(ValueError):
    """The hub already has a client of this name."""


class AccessKeyTaken(ValueError):
    """Another client already uses this access key."""


async def create_client(
    session: AsyncSession,
    *,
    hub: Hub,
    owner_id: str,
    workspace_id: str,
    name: str,
    site_id: str,
    access_key_hash: str,
    psk_sealed: bytes,
    connection_type: str | None,
    spec_extras: dict[str, Any],
    allowed_types: Sequence[str] = (),
    active: bool = True,
    client_id: str | None = None,
    mqtt_username: str | None = None,
    mqtt_password_hash: str | None = None,
    mqtt_topic_prefix: str | None = None,
) -> Client:
    existing = await session.scalar(select(Client.id).where(Client.hub_id == hub.id, Client.name == name))
    if existing is not None:
        raise ClientNameTaken(name)
    if await session.scalar(select(Client.id).where(Client.access_key_hash == access_key_hash)) is not None:
        raise AccessKeyTaken()
    now = utcnow()
    client = Client(
        id=client_id or str(uuid.uuid4()),
        hub_id=hub.id,
        owner_id=owner_id,
        workspace_id=workspace_id,
        name=name,
        site_id=site_id,
        access_key_hash=access_key_hash,
        psk_sealed=psk_sealed,
        allowed_types=list(allowed_types),
        connection_type=connection_type,
        spec_extras=spec_extras,
        mqtt_username=mqtt_username,
        mqtt_password_hash=mqtt_password_hash,
        mqtt_topic_prefix=mqtt_topic_prefix,
        etag=new_etag(),
        active=active,
        created_at=now,
        updated_at=now,
    )
    session.add(client)
    try:
        await session.flush()
    except IntegrityError:
        raise ClientNameTaken(name) from None
    return client


async def client_by_id(session: AsyncSession, client_id: str) -> Client | None:
    canonical = canonical_id(client_id)
    return None if canonical is None else await session.get(Client, canonical)


async def client_by_access_key_hash(session: AsyncSession, access_key_hash: str) -> Client | None:
    return await session.scalar(select(Client).where(Client.access_key_hash == access_key_hash))


async def client_by_mqtt_username(session: AsyncSession, username: str) -> Client | None:
    return await session.scalar(select(Client).where(Client.mqtt_username == username))


async def mqtt_logins(
    session: AsyncSession, *, hub_id: str | None = None, client_ids: Collection[str] | None = None
) -> list[Client]:
    """The clients that may log in to the MQTT broker now.

    That is every active client with MQTT credentials (username, password hash, topic prefix)
    of an active hub whose spec enables MQTT and that admits it (:func:`admitted`); optionally
    only of ``hub_id`` or only among ``client_ids``. Ordered by creation.
    """
    statement = (
        select(Client, Hub.spec)
        .join(Hub, Hub.id == Client.hub_id)
        .where(
            Client.active.is_(True),
            Hub.active.is_(True),
            Client.mqtt_username.is_not(None),
            Client.mqtt_password_hash.is_not(None),
            Client.mqtt_topic_prefix.is_not(None),
            admitted_clause(),
        )
        .order_by(Client.created_at, Client.id)
    )
    if hub_id is not None:
        statement = statement.where(Client.hub_id == hub_id)
    if client_ids is not None:
        if not client_ids:
            return []
        statement = statement.where(Client.id.in_(list(client_ids)))
    rows = (await session.execute(statement)).all()
    return [client for client, spec in rows if enabled_protocols(spec)["mqtt"]]


async def list_clients(
    session: AsyncSession,
    *,
    workspace_ids: Sequence[str],
    hub_id: str | None,
    owner_id: str | None,
    limit: int,
    cursor: str | None,
) -> Page[Client]:
    """The clients :func:`visible_clause` lets ``workspace_ids`` see, by hub and owner."""
    statement = select(Client).where(visible_clause(workspace_ids))
    if hub_id is not None:
        statement = statement.where(Client.hub_id == hub_id)
    if owner_id is not None:
        statement = statement.where(Client.owner_id == owner_id)
    return await keyset_page(
        session, statement, created_at=Client.created_at, id_column=Client.id, limit=limit, cursor=cursor
    )


async def pin_client_key(session: AsyncSession, client_id: str, key: bytes) -> None:
    """Remember the client's Noise static key (the first one it authenticated with)."""
    await session.execute(
        update(Client).where(Client.id == client_id).values(pinned_client_key=key, updated_at=utcnow())
    )


async def delete_client(session: AsyncSession, client: Client) -> None:
    await session.delete(client)
    await session.flush()
