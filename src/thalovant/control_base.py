"""What the control plane's groups of methods share.

:class:`ApiCalls` is the base of each group of async methods (sign-in, hub extras, memory,
analytics): they call :meth:`ApiCalls.request`, which
:class:`~thalovant.control.AsyncThalovantControlPlane` implements. :func:`synced` turns one of
those async methods into the method of the synchronous facade, so each call is written once.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["ApiCalls", "SyncFacade", "synced"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class ApiCalls:
    """The request primitive and token state every group of control-plane methods uses."""

    access_token: str | None
    token_id: str | None

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One API call returning its JSON object; implemented by the control-plane client."""
        raise NotImplementedError


class SyncFacade:
    """The synchronous facade's side: the async client it wraps and the loop that runs it."""

    _async: Any

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        raise NotImplementedError


def synced(method: Callable[Concatenate[Any, P], Awaitable[R]]) -> Callable[Concatenate[SyncFacade, P], R]:
    """The blocking twin of an async control-plane method (same name, arguments and docs)."""
    name = method.__name__

    @functools.wraps(method)
    def call(self: SyncFacade, /, *args: P.args, **kwargs: P.kwargs) -> R:
        coroutine: Coroutine[Any, Any, R] = getattr(self._async, name)(*args, **kwargs)
        return self._run(coroutine)

    return call
