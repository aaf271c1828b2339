"""Operation rows: creation, lookup, and the moves of :mod:`thalovant_server.operations`."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.operations import STAMPS, TERMINAL, OperationStatus, check_transition
from thalovant_server.store.models import Operation, utcnow

__all__ = ["advance", "create_operation", "operation_by_id", "unfinished"]


async def create_operation(
    session: AsyncSession,
    *,
    workspace_id: str,
    kind: str,
    aggregate_type: str,
    aggregate_id: str | None,
    details: Mapping[str, Any],
    created_by: str | None,
    deadline: dt.timedelta,
) -> Operation:
    """A new ``requested`` operation that must reach a terminal state within ``deadline``."""
    now = utcnow()
    operation = Operation(
        id=str(uuid.uuid4()),
        workspace_id=workspace_id,
        kind=kind,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        status=OperationStatus.REQUESTED.value,
        details=dict(details),
        created_by=created_by,
        deadline_at=now + deadline,
        created_at=now,
        updated_at=now,
    )
    session.add(operation)
    await session.flush()
    return operation


async def operation_by_id(session: AsyncSession, operation_id: str) -> Operation | None:
    try:
        key = str(uuid.UUID(operation_id))
    except ValueError:
        return None
    return await session.get(Operation, key)


def advance(
    operation: Operation,
    target: OperationStatus,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Move ``operation`` to ``target`` (raises ``InvalidTransition`` for a move that does not exist)."""
    check_transition(operation.status, target)
    now = utcnow()
    operation.status = target.value
    operation.updated_at = now
    stamp = STAMPS.get(target)
    if stamp is not None:
        setattr(operation, stamp, now)
    if target in TERMINAL:
        operation.terminal_at = now
    if error_code is not None:
        operation.error_code = error_code
        operation.error_message = error_message
    if details:
        operation.details = {**operation.details, **details}


async def unfinished(session: AsyncSession, kinds: tuple[str, ...]) -> list[Operation]:
    """Operations of ``kinds`` not yet terminal, oldest first."""
    open_states = [status.value for status in OperationStatus if status not in TERMINAL]
    statement = (
        select(Operation)
        .where(Operation.status.in_(open_states), Operation.kind.in_(list(kinds)))
        .order_by(Operation.created_at, Operation.id)
    )
    return list((await session.scalars(statement)).all())
