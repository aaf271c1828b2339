"""Memory items: what a workspace, one of its hubs, or one client identity asked to keep.

An item has a ``scope`` (``workspace``, ``hub`` or ``client``), a ``kind`` (``fact``,
``preference``, ``note`` ...), its ``content`` and optionally a ``subject`` (what a hub recalls
it by), the consent it was given under, a retention policy and an expiry. Deleting is soft
(``deleted_at``); soft-deleted items are purged for good after :data:`PURGE_AFTER`.

Hubs write here through the write-behind queue (:func:`write_remembered`), never on the hot
path, and read a client's facts once per connection (:func:`facts_of`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from thalovant_server.hub.memory_book import Fact, MemoryBook, Remembered
from thalovant_server.store.engine import Store
from thalovant_server.store.models import Base, Client, UTCDateTime, new_id, utcnow
from thalovant_server.store.write_behind import WriteBehind

__all__ = [
    "MAX_ITEMS_PER_CLIENT",
    "PURGE_AFTER",
    "MemoryItem",
    "facts_of",
    "list_items",
    "memory_book",
    "purge_deleted",
    "summary",
    "write_remembered",
]

PURGE_AFTER = dt.timedelta(days=30)
WRITE_KIND = "memory"
MAX_ITEMS_PER_CLIENT = 500
HUB_SOURCE = "hub"


class MemoryItem(Base):
    __tablename__ = "memory_items"
    __table_args__ = (
        Index("ix_memory_items_workspace_page", "workspace_id", "created_at", "id"),
        Index("ix_memory_items_client_subject", "client_id", "subject"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    hub_id: Mapped[str | None] = mapped_column(ForeignKey("hubs.id", ondelete="CASCADE"), nullable=True)
    client_id: Mapped[str | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), nullable=True)
    scope: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(200), nullable=True)
    content: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20), default="api")
    consent_scope: Mapped[str | None] = mapped_column(String(64), nullable=True)
    consent_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    retention_policy: Mapped[str] = mapped_column(String(32), default="user_controlled")
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())


def _live(now: dt.datetime) -> Any:
    return and_(MemoryItem.deleted_at.is_(None), or_(MemoryItem.expires_at.is_(None), MemoryItem.expires_at > now))


async def list_items(
    session: AsyncSession,
    *,
    workspace_ids: Sequence[str],
    scope: str | None = None,
    kind: str | None = None,
    owner_id: str | None = None,
    hub_id: str | None = None,
    query: str | None = None,
    include_deleted: bool = False,
    include_expired: bool = False,
    limit: int,
    offset: int,
) -> tuple[list[MemoryItem], int]:
    """One page (newest first) of the items in ``workspace_ids`` matching the filters, and
    how many match in all."""
    now = utcnow()
    conditions: list[Any] = [MemoryItem.workspace_id.in_(list(workspace_ids))]
    if scope:
        conditions.append(MemoryItem.scope == scope)
    if kind:
        conditions.append(MemoryItem.kind == kind)
    if owner_id:
        conditions.append(MemoryItem.owner_id == owner_id)
    if hub_id:
        conditions.append(MemoryItem.hub_id == hub_id)
    if query:
        needle = query.lower()
        conditions.append(
            or_(
                func.lower(MemoryItem.content).contains(needle, autoescape=True),
                func.lower(MemoryItem.subject).contains(needle, autoescape=True),
            )
        )
    if not include_deleted:
        conditions.append(MemoryItem.deleted_at.is_(None))
    if not include_expired:
        conditions.append(or_(MemoryItem.expires_at.is_(None), MemoryItem.expires_at > now))
    total = await session.scalar(select(func.count(MemoryItem.id)).where(*conditions))
    rows = await session.scalars(
        select(MemoryItem)
        .where(*conditions)
        .order_by(MemoryItem.created_at.desc(), MemoryItem.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all()), int(total or 0)


async def summary(session: AsyncSession, *, workspace_ids: Sequence[str], owner_id: str | None) -> dict[str, Any]:
    """Counts of live items (by scope and kind), of expired and of soft-deleted ones."""
    now = utcnow()
    base: list[Any] = [MemoryItem.workspace_id.in_(list(workspace_ids))]
    if owner_id:
        base.append(MemoryItem.owner_id == owner_id)
    live = [*base, _live(now)]
    by_scope = dict(
        (await session.execute(select(MemoryItem.scope, func.count()).where(*live).group_by(MemoryItem.scope))).all()
    )
    by_kind = dict(
        (await session.execute(select(MemoryItem.kind, func.count()).where(*live).group_by(MemoryItem.kind))).all()
    )
    expired = await session.scalar(
        select(func.count(MemoryItem.id)).where(
            *base, MemoryItem.deleted_at.is_(None), MemoryItem.expires_at.is_not(None), MemoryItem.expires_at <= now
        )
    )
    deleted = await session.scalar(select(func.count(MemoryItem.id)).where(*base, MemoryItem.deleted_at.is_not(None)))
    return {
        "total": sum(int(n) for n in by_scope.values()),
        "by_scope": {str(k): int(v) for k, v in by_scope.items()},
        "by_kind": {str(k): int(v) for k, v in by_kind.items()},
        "expired": int(expired or 0),
        "deleted": int(deleted or 0),
    }


async def facts_of(session: AsyncSession, client_id: str) -> list[Fact]:
    """A client identity's live items that have a subject, oldest first, as hub facts."""
    rows = await session.scalars(
        select(MemoryItem)
        .where(MemoryItem.client_id == client_id, MemoryItem.subject.is_not(None), _live(utcnow()))
        .order_by(MemoryItem.updated_at, MemoryItem.id)
    )
    return [
        Fact(row.subject or "", row.content, row.expires_at.timestamp() if row.expires_at else None)
        for row in rows.all()
    ]


async def write_remembered(session: AsyncSession, entries: Sequence[Remembered]) -> None:
    """Write-behind handler: each fact a hub was told becomes (or updates) a memory item of
    scope ``client`` owned by the identity's owner, in its workspace. Facts of a client that
    is gone are dropped; past :data:`MAX_ITEMS_PER_CLIENT` items a client gets no new ones."""
    for entry in entries:
        client = await session.get(Client, entry.client_id)
        if client is None or client.hub_id != entry.hub_id:
            continue
        at = dt.datetime.fromtimestamp(entry.at, dt.UTC)
        item = await session.scalar(
            select(MemoryItem).where(
                MemoryItem.client_id == client.id,
                func.lower(MemoryItem.subject) == entry.subject.lower(),
                MemoryItem.deleted_at.is_(None),
            )
        )
        if item is not None:
            item.content = entry.value
            item.updated_at = at
            continue
        count = await session.scalar(
            select(func.count(MemoryItem.id)).where(MemoryItem.client_id == client.id, MemoryItem.deleted_at.is_(None))
        )
        if (count or 0) >= MAX_ITEMS_PER_CLIENT:
            continue
        session.add(
            MemoryItem(
                workspace_id=client.workspace_id,
                owner_id=client.owner_id,
                hub_id=client.hub_id,
                client_id=client.id,
                scope="client",
                kind="fact",
                subject=entry.subject,
                content=entry.value,
                source=HUB_SOURCE,
                consent_scope="conversation",
                consent_version="1",
                retention_policy="user_controlled",
                created_at=at,
                updated_at=at,
            )
        )
        await session.flush()


async def purge_deleted(session: AsyncSession) -> None:
    """Forget soft-deleted items for good once they were deleted :data:`PURGE_AFTER` ago."""
    await session.execute(delete(MemoryItem).where(MemoryItem.deleted_at <= utcnow() - PURGE_AFTER))


def memory_book(store: Store, writer: WriteBehind) -> MemoryBook:
    """The hubs' memory book over this store: loads a client's facts with :func:`facts_of`,
    writes what hubs are told through ``writer`` (:func:`write_remembered`)."""
    writer.register(WRITE_KIND, write_remembered)

    async def load(client_id: str) -> list[Fact]:
        async with store.session() as session:
            return await facts_of(session, client_id)

    return MemoryBook(load, lambda entry: writer.submit(WRITE_KIND, entry))
