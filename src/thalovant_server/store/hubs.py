"""Hub rows: creation (with the hub's stable node id and Noise static key), lookups, listing."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant.protocol.noise import KeyPair
from thalovant_server.secrets import new_etag, new_node_id, new_public_ref
from thalovant_server.store.models import Client, Hub, utcnow
from thalovant_server.store.pagination import Page, keyset_page

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
VISIBILITIES = ("public", "workspace")


class SlugTaken(ValueError):
    """Another hub already uses this slug."""


def slugify(text: str) -> str:
    """Lowercase ``[a-z0-9-]`` form of ``text`` (empty when nothing usable remains)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:63].strip("-")


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def create_hub(
    session: AsyncSession,
    *,
    slug: str,
    name: str,
    title: str,
    owner_id: str,
    workspace_id: str,
    spec: dict[str, Any],
    visibility: str = "workspace",
    active: bool = True,
    description: str = "",
    domain: str | None = None,
    runtime_group_id: str | None = None,
) -> Hub:
    """A new hub with a fresh node id and Noise static key (both stable for its lifetime)."""
    now = utcnow()
    hub = Hub(
        slug=slug,
        public_ref=new_public_ref(),
        name=name,
        title=title,
        description=description,
        visibility=visibility,
        active=active,
        owner_id=owner_id,
        workspace_id=workspace_id,
        domain=domain,
        spec=spec,
        etag=new_etag(),
        node_id=new_node_id(),
        noise_private_key=KeyPair.generate().private,
        runtime_group_id=runtime_group_id,
        created_at=now,
        updated_at=now,
    )
    if await session.scalar(select(Hub.id).where(Hub.slug == slug)) is not None:
        raise SlugTaken(slug)
    session.add(hub)
    try:
        await session.flush()
    except IntegrityError:
        raise SlugTaken(slug) from None
    return hub


async def hub_by_id(session: AsyncSession, hub_id: str) -> Hub | None:
    if not is_uuid(hub_id):
        return None
    return await session.get(Hub, str(uuid.UUID(hub_id)))


async def hub_by_ref(session: AsyncSession, ref: str) -> Hub | None:
    """A hub by id, slug or public_ref."""
    conditions = [Hub.slug == ref, Hub.public_ref == ref]
    if is_uuid(ref):
        conditions.append(Hub.id == str(uuid.UUID(ref)))
    return await session.scalar(select(Hub).where(or_(*conditions)).limit(1))


async def list_public_hubs(session: AsyncSession, *, limit: int, cursor: str | None) -> Page[Hub]:
    statement = select(Hub).where(Hub.visibility == "public", Hub.active.is_(True))
    return await keyset_page(
        session, statement, created_at=Hub.created_at, id_column=Hub.id, limit=limit, cursor=cursor
    )


async def list_workspace_hubs(
    session: AsyncSession,
    *,
    workspace_ids: Sequence[str],
    owner_id: str | None,
    limit: int,
    cursor: str | None,
) -> Page[Hub]:
    if len(workspace_ids) == 1:
        statement = select(Hub).where(Hub.workspace_id == workspace_ids[0])
    else:
        statement = select(Hub).where(Hub.workspace_id.in_(list(workspace_ids)))
    if owner_id is not None:
        statement = statement.where(Hub.owner_id == owner_id)
    return await keyset_page(
        session, statement, created_at=Hub.created_at, id_column=Hub.id, limit=limit, cursor=cursor
    )


def touch(hub: Hub) -> None:
    """Mark a hub changed: a new etag and ``updated_at``."""
    hub.etag = new_etag()
    hub.updated_at = utcnow()


async def delete_hub(session: AsyncSession, hub: Hub) -> list[str]:
    """Delete the hub and its clients; returns the ids of the deleted clients."""
    client_ids = list((await session.scalars(select(Client.id).where(Client.hub_id == hub.id))).all())
    await session.execute(delete(Client).where(Client.hub_id == hub.id))
    await session.delete(hub)
    await session.flush()
    return client_ids
