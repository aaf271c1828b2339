"""Query parameters shared by the list routes, and the invalid-cursor refusal."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from thalovant_server.api.problems import ApiProblem
from thalovant_server.store.pagination import InvalidCursor

T = TypeVar("T")

MAX_LIMIT = 100


async def page_or_400(pending: Awaitable[T]) -> T:
    """Await a keyset query, turning a foreign or damaged cursor into 400 ``invalid_cursor``."""
    try:
        return await pending
    except InvalidCursor:
        raise ApiProblem(400, "Invalid cursor", code="invalid_cursor") from None
