"""The hubs' request log (one row per answered request) and the counts analytics reads from it.

Rows come from the hubs through the write-behind queue (:func:`write_activities`), a batch per
transaction. Times are Unix seconds (UTC), with the weekday (Monday 0) and hour kept beside
them for the weekday and hour filters. Rows older than :data:`RETENTION` are purged.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from thalovant_server.hub.activity import Activity
from thalovant_server.store.models import Base, Hub
from thalovant_server.store.write_behind import WriteBehind

__all__ = [
    "RETENTION",
    "WRITE_KIND",
    "LogFilter",
    "RequestLog",
    "RequestLogEntry",
    "overview_counts",
    "purge_old",
    "write_activities",
]

RETENTION = dt.timedelta(days=400)
TOP = 20
WRITE_KIND = "request_log"
PURGE_EVERY = 3600.0


class RequestLogEntry(Base):
    __tablename__ = "request_log"
    __table_args__ = (
        Index("ix_request_log_workspace_at", "workspace_id", "at"),
        Index("ix_request_log_hub_at", "hub_id", "at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    hub_id: Mapped[str] = mapped_column(ForeignKey("hubs.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(String(36))
    client_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    carrier: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    skill: Mapped[str | None] = mapped_column(String(64), nullable=True)
    intent: Mapped[str | None] = mapped_column(String(128), nullable=True)
    handled: Mapped[bool] = mapped_column(Boolean)
    lang: Mapped[str] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    utterance: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[int] = mapped_column(BigInteger)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    hour: Mapped[int] = mapped_column(SmallInteger)


_WORKSPACES_OF_HUBS = select(Hub.id, Hub.workspace_id).where(Hub.id.in_(bindparam("hub_ids", expanding=True)))
"""(hub id, workspace id) of the hubs named by the ``hub_ids`` list; built once, bound per batch."""

_ROW = (
    "hub_id", "workspace_id", "client_id", "carrier", "kind", "skill", "intent",
    "handled", "lang", "country", "utterance", "at", "weekday", "hour",
)  # fmt: skip
"""The columns a request-log row is written with, in the order of its tuple."""

_driver_inserts: dict[tuple[str, str], str] = {}


def _driver_insert(dialect: Dialect) -> str:
    """The INSERT of a request-log row (:data:`_ROW`) in the database driver's own parameter
    style, compiled by SQLAlchemy once per dialect. A batch is then one ``executemany`` of
    plain tuples, without SQLAlchemy's per-row parameter processing (half a row's cost)."""
    key = (dialect.name, dialect.driver)
    sql = _driver_inserts.get(key)
    if sql is None:
        compiled = (
            insert(Base.metadata.tables[RequestLogEntry.__tablename__])
            .inline()
            .compile(dialect=dialect, column_keys=list(_ROW))
        )
        if tuple(compiled.positiontup or ()) != _ROW:
            raise RuntimeError(f"the request-log INSERT binds {compiled.positiontup}, expected {_ROW}")
        sql = _driver_inserts[key] = str(compiled)
    return sql


async def write_activities(session: AsyncSession, activities: Sequence[Activity]) -> None:
    """Write-behind handler: one row per activity of a hub that still exists."""
    hub_ids = list({activity.hub_id for activity in activities})
    workspaces = dict((await session.execute(_WORKSPACES_OF_HUBS, {"hub_ids": hub_ids})).all())
    rows: list[tuple[Any, ...]] = []
    for activity in activities:
        workspace = workspaces.get(activity.hub_id)
        if workspace is None:
            continue
        when = dt.datetime.fromtimestamp(activity.at, dt.UTC)
        rows.append(
            (
                activity.hub_id,
                workspace,
                activity.client_id or None,
                activity.carrier[:8] or "unknown",
                activity.kind[:16],
                activity.skill[:64] or None,
                activity.intent[:128] or None,
                bool(activity.handled),
                activity.lang[:32],
                None,
                activity.utterance[:4096] if activity.utterance else None,
                int(activity.at),
                when.weekday(),
                when.hour,
            )
        )
    if rows:
        # one executemany for all rows: no ORM objects, the rows are never read back here
        connection = await session.connection()
        await connection.exec_driver_sql(_driver_insert(connection.dialect), rows)


class RequestLog:
    """The hubs' :class:`~thalovant_server.hub.activity.ActivitySink`: queues each activity on
    the write-behind queue (registered there under :data:`WRITE_KIND`), and purges rows past
    :data:`RETENTION` at most once every :data:`PURGE_EVERY` while it writes."""

    def __init__(self, writer: WriteBehind) -> None:
        self._writer = writer
        self._purged_at = -PURGE_EVERY
        writer.register(WRITE_KIND, self._write)

    def record(self, activity: Activity) -> None:
        self._writer.submit(WRITE_KIND, activity)

    async def _write(self, session: AsyncSession, activities: Sequence[Activity]) -> None:
        await write_activities(session, activities)
        now = time.monotonic()
        if now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            await purge_old(session, now=dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class LogFilter:
    """Which rows an overview counts: ``start <= at <= end`` (Unix seconds) and the filters
    (``None`` filters nothing)."""

    workspace_ids: tuple[str, ...]
    start: int
    end: int
    hub_id: str | None = None
    client_id: str | None = None
    country: str | None = None
    kind: str | None = None
    utterance: str | None = None
    intent: str | None = None
    weekday: int | None = None
    hour: int | None = None

    def conditions(self) -> list[Any]:
        entry = RequestLogEntry
        found: list[Any] = [
            entry.workspace_id.in_(list(self.workspace_ids)),
            entry.at >= self.start,
            entry.at <= self.end,
        ]
        for column, value in (
            (entry.hub_id, self.hub_id),
            (entry.client_id, self.client_id),
            (entry.country, self.country),
            (entry.kind, self.kind),
            (entry.weekday, self.weekday),
            (entry.hour, self.hour),
        ):
            if value is not None:
                found.append(column == value)
        if self.intent is not None:
            found.append((entry.intent == self.intent) | ((entry.skill + ":" + entry.intent) == self.intent))
        if self.utterance is not None:
            found.append(func.lower(entry.utterance).contains(self.utterance.lower(), autoescape=True))
        return found


async def _grouped(session: AsyncSession, where: list[Any], *columns: Any) -> list[tuple[Any, ...]]:
    rows = await session.execute(
        select(*columns, func.count()).where(*where).group_by(*columns).order_by(func.count().desc()).limit(TOP * 5)
    )
    return [tuple(row) for row in rows.all()]


async def overview_counts(session: AsyncSession, where: LogFilter, *, bucket_seconds: int) -> dict[str, Any]:
    """Totals, counts by intent, skill, carrier, kind and time bucket, and (from hubs that
    record them) the most frequent utterances."""
    entry = RequestLogEntry
    conditions = where.conditions()
    totals = (
        await session.execute(
            select(
                func.count(),
                func.count(func.distinct(entry.client_id)),
                func.count(func.distinct(entry.hub_id)),
                func.sum(case((entry.handled.is_(True), 1), else_=0)),
            ).where(*conditions)
        )
    ).one()
    requests, clients, hub_count, handled = (int(v or 0) for v in totals)
    utterances = await session.scalar(select(func.count()).where(*conditions, entry.kind == "utterance"))
    bucket = (entry.at - where.start) // bucket_seconds
    series = await session.execute(select(bucket, func.count()).where(*conditions).group_by(bucket))
    by_bucket = {int(index): int(count) for index, count in series.all()}
    buckets = []
    # buckets start at ``start``; the last one holds ``end`` itself
    count = (where.end - where.start) // bucket_seconds + 1 if where.end >= where.start else 0
    for index in range(count):
        start = where.start + index * bucket_seconds
        buckets.append({"start": _iso(start), "count": by_bucket.get(index, 0)})
    by_intent = [
        {"skill": skill, "intent": intent, "count": count}
        for skill, intent, count in await _grouped(session, conditions, entry.skill, entry.intent)
    ][:TOP]
    texts = await session.execute(
        select(entry.utterance, func.count())
        .where(*conditions, entry.utterance.is_not(None))
        .group_by(entry.utterance)
        .order_by(func.count().desc(), entry.utterance)
        .limit(TOP)
    )
    return {
        "totals": {
            "requests": requests,
            "utterances": int(utterances or 0),
            "handled": handled,
            "fallback": requests - handled,
            "clients": clients,
            "hubs": hub_count,
        },
        "by_intent": by_intent,
        "by_skill": [{"skill": s, "count": c} for s, c in await _grouped(session, conditions, entry.skill)][:TOP],
        "by_carrier": [{"carrier": s, "count": c} for s, c in await _grouped(session, conditions, entry.carrier)],
        "by_kind": [{"kind": s, "count": c} for s, c in await _grouped(session, conditions, entry.kind)],
        "buckets": buckets,
        "top_utterances": [{"utterance": text, "count": int(count)} for text, count in texts.all()],
    }


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


async def purge_old(session: AsyncSession, *, now: dt.datetime) -> None:
    await session.execute(delete(RequestLogEntry).where(RequestLogEntry.at < int((now - RETENTION).timestamp())))
