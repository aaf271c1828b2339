"""Operations: the long-running changes of the control plane (``/v1/operations/{id}``).

:class:`OperationResource` is one read of an operation. :func:`wait_for` polls one until it is
terminal, the rules of controlplane.md 6: ``ready`` ends the wait; ``failed`` and
``timed_out`` raise; 5xx answers are ridden out, 429 waits the time the API names (within the
deadline); 401/403 pass through; any other 4xx ends the wait (the admission wait reads 404
as "no longer tracked", i.e. admitted). No single read runs past the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from thalovant.errors import ThalovantAPIError, ThalovantAPIUnreachableError, ThalovantTimeoutError

__all__ = [
    "TERMINAL_STATUSES",
    "OperationResource",
    "OperationStatus",
    "operation_id_of",
    "operation_path",
    "wait_for",
]

OperationStatus = Literal["requested", "committed", "applied", "ready", "failed", "timed_out"]
TERMINAL_STATUSES = frozenset({"ready", "failed", "timed_out"})
_STATUSES = frozenset({"requested", "committed", "applied", "ready", "failed", "timed_out"})
_PREFIX = "/v1/operations/"


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ThalovantAPIError(f"Hub resource is missing {key}.")
    return value


def _optional(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class OperationResource:
    """One read of an operation; ``status`` is one of :data:`OperationStatus`."""

    id: str
    kind: str
    aggregate_type: str
    aggregate_id: str | None
    status: OperationStatus
    details: dict[str, Any] = field(default_factory=dict)
    git_commit_sha: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: str = ""
    updated_at: str = ""
    committed_at: str | None = None
    applied_at: str | None = None
    ready_at: str | None = None
    terminal_at: str | None = None
    links: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OperationResource:
        """Parse an operation object; ``ThalovantAPIError`` when a required member is missing."""
        status = _text(data, "status")
        if status not in _STATUSES:
            raise ThalovantAPIError(f"Hub resource has an unknown operation status {status!r}.")
        details = data.get("details")
        links = data.get("links")
        return cls(
            id=_text(data, "id"),
            kind=_text(data, "kind"),
            aggregate_type=_text(data, "aggregate_type"),
            aggregate_id=_optional(data, "aggregate_id"),
            status=status,  # type: ignore[arg-type]  # checked against _STATUSES above
            details=dict(details) if isinstance(details, Mapping) else {},
            git_commit_sha=_optional(data, "git_commit_sha"),
            error_code=_optional(data, "error_code"),
            error_message=_optional(data, "error_message"),
            created_at=_text(data, "created_at"),
            updated_at=_text(data, "updated_at"),
            committed_at=_optional(data, "committed_at"),
            applied_at=_optional(data, "applied_at"),
            ready_at=_optional(data, "ready_at"),
            terminal_at=_optional(data, "terminal_at"),
            links={str(k): (v if isinstance(v, str) else None) for k, v in links.items()}
            if isinstance(links, Mapping)
            else {},
        )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def operation_id_of(operation: OperationResource | Mapping[str, Any] | str, api_url: str) -> str:
    """The id of an operation given as a resource, an object (``id`` or ``links.self``) or an id.

    A ``links.self`` that is an absolute URL of another origin than ``api_url`` is refused.
    """
    if isinstance(operation, OperationResource):
        return operation.id
    if isinstance(operation, str):
        if not operation.strip():
            raise ThalovantAPIError("Operation id is empty.")
        return operation.strip()
    links = operation.get("links")
    link = links.get("self") if isinstance(links, Mapping) else None
    if isinstance(link, str) and link:
        parts = urlsplit(link)
        if (parts.scheme or parts.netloc) and _origin(link) != _origin(api_url):
            raise ThalovantAPIError("The operation link points outside the Thalovant API; it was not followed.")
        path = parts.path
        if _PREFIX in path:
            found = path.split(_PREFIX, 1)[1].strip("/")
            if found:
                return found
    value = operation.get("id")
    if isinstance(value, str) and value:
        return value
    raise ThalovantAPIError("The operation has no id.")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def operation_path(operation_id: str) -> str:
    return _PREFIX + quote(operation_id, safe="")


Reader = Callable[[str, float], Awaitable[dict[str, Any]]]
"""Reads ``GET <path>`` with a per-request timeout (the control plane's request)."""


async def wait_for(
    read: Reader,
    operation_id: str,
    *,
    timeout: float,
    poll_interval: float,
    not_found_is_done: bool = False,
) -> OperationResource | None:
    """Poll an operation until it is terminal; the terminal read (``None`` for a 404 when
    ``not_found_is_done``). Raises ``ThalovantAPIError`` for failed reads that end the wait
    and ``ThalovantTimeoutError`` at the deadline; the caller maps ``failed``/``timed_out``."""
    deadline = time.monotonic() + timeout
    path = operation_path(operation_id)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ThalovantTimeoutError(f"Operation {operation_id} did not finish within {timeout:g} s.")
        pause = poll_interval
        try:
            current = OperationResource.from_dict(await read(path, remaining))
        except ThalovantAPIUnreachableError:
            if time.monotonic() >= deadline:
                raise ThalovantTimeoutError(f"Operation {operation_id} did not finish within {timeout:g} s.") from None
            raise
        except ThalovantAPIError as exc:
            status = exc.status_code
            if status == 404 and not_found_is_done:
                return None
            if status is not None and status >= 500:
                pass  # ride it out
            elif status == 429:
                pause = max(poll_interval, exc.retry_after_seconds or 0.0)
            else:
                raise
        else:
            if current.terminal:
                return current
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ThalovantTimeoutError(f"Operation {operation_id} did not finish within {timeout:g} s.")
        await asyncio.sleep(min(pause, remaining))
