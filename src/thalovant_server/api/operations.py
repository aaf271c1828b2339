"""``/v1/operations/{id}``: the state of a long-running change (:mod:`thalovant_server.operations`).

An operation is readable by the members of the workspace it belongs to; for anyone else it
does not exist (404 ``Operation not found``). An id that is not a UUID is 400
``invalid_operation_id``.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from thalovant_server.api.auth import Principal, authenticate
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.skill_schemas import UUID_PATTERN, OperationOut, documented_pattern
from thalovant_server.api.skill_views import operation_view
from thalovant_server.api.state import control
from thalovant_server.store import operations

router = APIRouter(prefix="/v1/operations", tags=["operations"])


@router.get("/{operation_id}", response_model=None, responses={200: {"model": OperationOut}})
async def get_operation(
    request: Request,
    operation_id: str = Path(json_schema_extra=documented_pattern(UUID_PATTERN)),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    try:
        uuid.UUID(operation_id)
    except ValueError:
        raise ApiProblem(400, "Operation id is not valid.", code="invalid_operation_id") from None
    async with control(request).store.session() as session:
        operation = await operations.operation_by_id(session, operation_id)
        if operation is None or operation.workspace_id not in principal.workspace_ids:
            raise ApiProblem(404, "Operation not found")
        return operation_view(operation)
