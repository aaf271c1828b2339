"""Hub ratings: one 1-5 rating per user and public hub, and their average per hub."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ForeignKey, SmallInteger, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from thalovant_server.store.models import Base, UTCDateTime, utcnow

__all__ = ["HubRating", "RatingSummary", "clear_rating", "rating_of", "set_rating", "summaries"]


class HubRating(Base):
    __tablename__ = "hub_ratings"

    hub_id: Mapped[str] = mapped_column(ForeignKey("hubs.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    rating: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


@dataclass(frozen=True)
class RatingSummary:
    """The average (two decimals; ``None`` when unrated) and the number of ratings of a hub."""

    average: float | None
    count: int


UNRATED = RatingSummary(None, 0)


async def set_rating(session: AsyncSession, *, hub_id: str, user_id: str, rating: int) -> None:
    """Record or replace ``user_id``'s rating of ``hub_id``."""
    row = await session.get(HubRating, (hub_id, user_id))
    now = utcnow()
    if row is None:
        session.add(HubRating(hub_id=hub_id, user_id=user_id, rating=rating, created_at=now, updated_at=now))
    else:
        row.rating = rating
        row.updated_at = now
    await session.flush()


async def clear_rating(session: AsyncSession, *, hub_id: str, user_id: str) -> None:
    await session.execute(delete(HubRating).where(HubRating.hub_id == hub_id, HubRating.user_id == user_id))


async def rating_of(session: AsyncSession, *, hub_id: str, user_id: str) -> int | None:
    row = await session.get(HubRating, (hub_id, user_id))
    return row.rating if row is not None else None


async def summaries(session: AsyncSession, hub_ids: Sequence[str]) -> dict[str, RatingSummary]:
    """The rating summary of each hub in ``hub_ids`` (unrated hubs included)."""
    found = {hub_id: UNRATED for hub_id in hub_ids}
    if not hub_ids:
        return found
    rows = await session.execute(
        select(HubRating.hub_id, func.avg(HubRating.rating), func.count())
        .where(HubRating.hub_id.in_(list(hub_ids)))
        .group_by(HubRating.hub_id)
    )
    for hub_id, average, count in rows.all():
        found[hub_id] = RatingSummary(round(float(average), 2) if average is not None else None, int(count))
    return found
