"""Keyset (cursor) pagination: ``ORDER BY created_at, id`` and an opaque cursor.

A cursor is the URL-safe base64 of ``[created_at ISO 8601, id]`` of the last row of a page.
The next page is ``WHERE (created_at, id) > (cursor) ORDER BY created_at, id LIMIT n``, which
an index ending in ``(created_at, id)`` answers in the same time at any depth.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

MAX_CURSOR_LENGTH = 512


class InvalidCursor(ValueError):
    """The cursor was not produced by this server (or was damaged)."""


class Pageable(Protocol):
    id: Any
    created_at: Any


RowT = TypeVar("RowT")


@dataclass(frozen=True)
class Cursor:
    created_at: dt.datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.created_at.astimezone(dt.UTC).isoformat(), self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        if not text or len(text) > MAX_CURSOR_LENGTH:
            raise InvalidCursor("cursor is empty or too long")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            value = json.loads(raw.decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidCursor("cursor is not valid") from None
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise InvalidCursor("cursor is not valid")
        try:
            created_at = dt.datetime.fromisoformat(value[0])
        except ValueError:
            raise InvalidCursor("cursor is not valid") from None
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=dt.UTC)
        return cls(created_at=created_at, id=value[1])

    @classmethod
    def after(cls, row: Pageable) -> Cursor:
        return cls(created_at=row.created_at, id=str(row.id))


@dataclass(frozen=True)
class Page(Generic[RowT]):
    rows: Sequence[RowT]
    next_cursor: str | None


async def keyset_page(
    session: AsyncSession,
    statement: Select[RowT],
    *,
    created_at: InstrumentedAttribute[dt.datetime],
    id_column: InstrumentedAttribute[str],
    limit: int,
    cursor: str | None,
) -> Page[RowT]:
    """One page of ``statement`` (already filtered), ordered by ``(created_at, id)``."""
    if cursor:
        position = Cursor.decode(cursor)
        statement = statement.where(tuple_(created_at, id_column) > tuple_(position.created_at, position.id))
    statement = statement.order_by(created_at, id_column).limit(limit + 1)
    rows = list((await session.scalars(statement)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last: Any = rows[-1]
        next_cursor = Cursor.after(last).encode()
    return Page(rows=rows, next_cursor=next_cursor)
