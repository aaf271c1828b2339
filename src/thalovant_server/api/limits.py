"""Per-application rate limits of the routes that need one, and their 429 answer.

Each limit is a sliding window (:class:`~thalovant_server.api.ratelimit.LoginLimiter`) kept on
the application under a name; :func:`spend` counts one event for a key and refuses with 429
(``Retry-After`` and ``retry_after_seconds``) once the key used up its window.
"""

from __future__ import annotations

from fastapi import Request

from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.ratelimit import LoginLimiter

__all__ = ["over_limit", "spend"]


def _limiter(request: Request, name: str, events: int, window: float) -> LoginLimiter:
    state = request.app.state
    limiters: dict[str, LoginLimiter] | None = getattr(state, "route_limiters", None)
    if limiters is None:
        limiters = state.route_limiters = {}
    found = limiters.get(name)
    if found is None:
        found = limiters[name] = LoginLimiter(max_failures=events, window=window)
    return found


def over_limit(request: Request, name: str, key: str, *, events: int, window: float) -> int | None:
    """Seconds to wait when ``key`` used up ``events`` per ``window`` of limit ``name``, else None."""
    return _limiter(request, name, events, window).retry_after(key)


def spend(request: Request, name: str, key: str, *, events: int, window: float, detail: str, code: str) -> None:
    """Count one event of ``key``, or raise 429 (``detail``, ``code``) when it is over the limit."""
    limiter = _limiter(request, name, events, window)
    wait = limiter.retry_after(key)
    if wait is not None:
        raise ApiProblem(429, detail, code=code, headers={"Retry-After": str(wait)}, retry_after_seconds=wait)
    limiter.failed(key)
