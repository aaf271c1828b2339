"""Analytics: ``GET /v1/analytics/overview``, counts over the hubs' request log.

The overview covers the caller's workspaces (``meta.scope`` is ``workspace``): totals
(requests, utterances, handled by a skill or by the fallback, distinct clients and hubs),
counts by intent, skill, carrier and kind, a count per time bucket, and the most frequent
utterances, which exist only for hubs whose owner turned recording on (hub spec
``analytics.record_utterances``).

Filters: ``range`` (``24h``, ``30d`` ...; at most the log's retention) or ``time_start`` /
``time_end``; ``bucket`` (``15m``, ``1h``, ``1d`` ...; widened when it would give more than
:data:`MAX_BUCKETS` buckets); ``hub_id`` and ``client_id`` (the caller's, else 404);
``message`` (the request kind: ``utterance``, ``action``, ``code``); ``intent`` (``name`` or
``skill:name``); ``utterance`` (text contained); ``country`` (never recorded by this server,
so it matches nothing); ``weekday`` (0 = Monday) and ``hour`` (UTC). Reads first wait for the
rows hubs queued.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from thalovant_server.api.auth import Principal, authenticate
from thalovant_server.api.fields import IsoDatetime
from thalovant_server.api.memory import flush_hub_writes
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.state import control
from thalovant_server.api.views import timestamp
from thalovant_server.store import clients, hubs
from thalovant_server.store.models import utcnow
from thalovant_server.store.request_log import RETENTION, LogFilter, overview_counts

__all__ = ["router"]

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

DURATION_PATTERN = r"^[1-9][0-9]{0,3}[mhd]$"
UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
MAX_BUCKETS = 500
DEFAULT_RANGE = "7d"


class Overview(BaseModel):
    meta: dict[str, Any]
    totals: dict[str, int]
    by_intent: list[dict[str, Any]]
    by_skill: list[dict[str, Any]]
    by_carrier: list[dict[str, Any]]
    by_kind: list[dict[str, Any]]
    buckets: list[dict[str, Any]]
    top_utterances: list[dict[str, Any]]


def _seconds(text: str) -> int:
    return int(text[:-1]) * UNIT_SECONDS[text[-1]]


def _duration(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{math.ceil(seconds / 60)}m"


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@router.get("/overview", response_model=None, responses={200: {"model": Overview}})
async def overview(
    request: Request,
    range: str | None = Query(None, pattern=DURATION_PATTERN),  # the query name the SDK sends
    bucket: str | None = Query(None, pattern=DURATION_PATTERN),
    hub_id: str | None = Query(None, max_length=64),
    client_id: str | None = Query(None, max_length=64),
    country: str | None = Query(None, pattern=r"^[A-Za-z]{2}$"),
    message: Literal["utterance", "action", "code"] | None = Query(None),
    utterance: str | None = Query(None, min_length=1, max_length=200),
    intent: str | None = Query(None, min_length=1, max_length=200),
    time_start: IsoDatetime | None = Query(None),
    time_end: IsoDatetime | None = Query(None),
    weekday: int | None = Query(None, ge=0, le=6),
    hour: int | None = Query(None, ge=0, le=23),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    """Counts over the request log of the caller's workspaces' hubs (see the module)."""
    now = utcnow()
    end = _utc(time_end) if time_end else now
    span = min(_seconds(range or DEFAULT_RANGE), int(RETENTION.total_seconds()))
    start = _utc(time_start) if time_start else end - dt.timedelta(seconds=span)
    start = max(start, now - RETENTION)
    length = max(0, int((end - start).total_seconds()))
    step = _seconds(bucket) if bucket else (3600 if length <= 2 * 86400 else 86400)
    if length / step > MAX_BUCKETS:
        step = math.ceil(length / MAX_BUCKETS / 60) * 60
    plane = control(request)
    await flush_hub_writes(request)
    async with plane.store.session() as session:
        if hub_id:
            hub = await hubs.hub_by_id(session, hub_id)
            if hub is None or hub.workspace_id not in principal.workspace_ids:
                raise ApiProblem(404, "Hub not found")
        if client_id:
            client = await clients.client_by_id(session, client_id)
            if client is None or client.workspace_id not in principal.workspace_ids:
                raise ApiProblem(404, "Client not found")
        where = LogFilter(
            workspace_ids=principal.workspace_ids,
            start=int(start.timestamp()),
            end=int(end.timestamp()),
            hub_id=hub_id or None,
            client_id=client_id or None,
            country=country.upper() if country else None,
            kind=message,
            utterance=utterance,
            intent=intent,
            weekday=weekday,
            hour=hour,
        )
        counts = await overview_counts(session, where, bucket_seconds=step)
    filters = {
        "hub_id": hub_id,
        "client_id": client_id,
        "country": country,
        "message": message,
        "utterance": utterance,
        "intent": intent,
        "weekday": weekday,
        "hour": hour,
    }
    meta = {
        "scope": "workspace",
        "workspace_ids": list(principal.workspace_ids),
        "range": _duration(length) if length else "0m",
        "bucket": _duration(step),
        "time_start": timestamp(start),
        "time_end": timestamp(end),
        "timezone": "UTC",
        "filters": {k: v for k, v in filters.items() if v is not None},
    }
    return {"meta": meta, **counts}
