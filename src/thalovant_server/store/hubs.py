"""Hub rows: creation (with the hub's stable node id), lookups, listing.

Every hub presents the server's one Noise static key (:mod:`thalovant_server.store.sealed`).

A hub is named three ways, and the three namespaces never overlap by shape, so no hub can take
another's name: its ``id`` is a UUID; its ``public_ref`` is ``hub_`` and lowercase letters and
digits (it always holds ``_``); its ``slug`` is lowercase letters, digits and ``-`` (never ``_``)
and never anything a UUID could be read from (32 hex digits and hyphens, however placed).
:func:`hub_by_ref` resolves one namespace at a time, in that order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.secrets import new_etag, new_node_id, new_public_ref
from thalovant_server.store.models import Client, Hub, canonical_id, utcnow
from thalovant_server.store.pagination import Page, keyset_page

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
"""The shape of a slug (a request schema may use its pattern); :func:`valid_slug` is the whole rule."""

_ID_LOOKALIKE = re.compile(r"^(?:-*[0-9a-f]){32}-*$")
"""Anything a UUID could be read from: 32 hex digits and hyphens, however placed."""
PUBLIC_REF = re.compile(r"^hub_[a-z0-9]{1,28}$")
VISIBILITIES = ("public", "workspace")


class SlugTaken(ValueError):
    """Another hub already uses this slug."""


class InvalidSlug(ValueError):
    """The slug is not lowercase letters, digits and '-', or it is spelled like a hub id."""


def slugify(text: str) -> str:
    """Lowercase ``[a-z0-9-]`` form of ``text`` (empty when nothing usable remains)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:63].strip("-")


def is_uuid(text: str) -> bool:
    """Whether ``text`` is spelled like a row id (see :func:`~thalovant_server.store.models.canonical_id`)."""
    return canonical_id(text) is not None


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
    """A new hub with a fresh node id (stable for its lifetime: the salt of its clients' PSKs).

    Raises :class:`InvalidSlug` or :class:`SlugTaken`.
    """
    if not valid_slug(slug):
        raise InvalidSlug(slug)
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
        runtime_group_id=runtime_group_id,
        created_at=now,
        updated_at=now,
    )
    if await slug_taken(session, slug):
        raise SlugTaken(slug)
    session.add(hub)
    try:
        await session.flush()
    except IntegrityError:
        raise SlugTaken(slug) from None
    return hub


async def hub_by_id(session: AsyncSession, hub_id: str) -> Hub | None:
    canonical = canonical_id(hub_id)
    return None if canonical is None else await session.get(Hub, canonical)


async def hub_by_ref(session: AsyncSession, ref: str) -> Hub | None:
    """A hub by reference: an id (a UUID in any spelling), else a public_ref, else a slug.

    The shape of ``ref`` picks the one namespace it is looked up in; nothing falls through to
    another namespace, so a reference always means the same hub.
    """
    if is_uuid(ref):
        return await hub_by_id(session, ref)
    if PUBLIC_REF.match(ref):
        return await session.scalar(select(Hub).where(Hub.public_ref == ref))
    if valid_slug(ref):
        return await session.scalar(select(Hub).where(Hub.slug == ref))
    return None


def valid_slug(text: str) -> bool:
    """Whether ``text`` may be a slug: :data:`SLUG`'s shape, and never spelled like an id."""
    return bool(SLUG.match(text)) and not _ID_LOOKALIKE.match(text)


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    return await session.scalar(select(Hub.id).where(Hub.slug == slug)) is not None


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
