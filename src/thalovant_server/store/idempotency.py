"""Stored answers of POSTs sent with an ``Idempotency-Key`` (per user and route).

The response is sealed with the server key because a client-creation answer carries the
one-time credentials (``initial_identify``) that a replay must hand back unchanged.
Records older than :data:`RETENTION` are ignored and purged.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.secrets import SealingKey
from thalovant_server.store.models import IdempotencyRecord, utcnow

RETENTION = dt.timedelta(hours=24)


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status_code: int
    body: dict[str, Any]


def _context(user_id: str, scope: str, key: str) -> bytes:
    return json.dumps(["idempotency", user_id, scope, key]).encode("utf-8")


async def find(
    session: AsyncSession, sealing: SealingKey, *, user_id: str, scope: str, key: str
) -> StoredResponse | None:
    record = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
        )
    )
    if record is None or record.created_at < utcnow() - RETENTION:
        return None
    plaintext = sealing.open(record.response_sealed, context=_context(user_id, scope, key))
    if plaintext is None:
        return None
    return StoredResponse(record.request_hash, record.status_code, json.loads(plaintext))


async def remember(
    session: AsyncSession,
    sealing: SealingKey,
    *,
    user_id: str,
    scope: str,
    key: str,
    request_hash: str,
    status_code: int,
    body: dict[str, Any],
) -> None:
    """Store the answer (replacing an expired record of the same key)."""
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
        )
    )
    sealed = sealing.seal(json.dumps(body).encode("utf-8"), context=_context(user_id, scope, key))
    session.add(
        IdempotencyRecord(
            user_id=user_id,
            scope=scope,
            key=key,
            request_hash=request_hash,
            status_code=status_code,
            response_sealed=sealed,
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        raise IdempotencyConflict() from None


class IdempotencyConflict(RuntimeError):
    """Another request with the same key finished first."""


async def purge_expired(session: AsyncSession) -> None:
    await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - RETENTION))
