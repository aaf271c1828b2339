"""The sign-in limiter: too many failed logins per account or per client address -> 429.

A sliding window: after ``max_failures`` failures within ``window`` seconds for the same key,
further attempts are refused until the oldest failure leaves the window. A successful login
clears the account's failures. The clock is injectable for tests.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

MAX_TRACKED_KEYS = 50_000


class LoginLimiter:
    def __init__(
        self, *, max_failures: int = 5, window: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def retry_after(self, *keys: str) -> int | None:
        """Seconds to wait when any key is over its limit, else None."""
        now = self._clock()
        waits = []
        for key in keys:
            failures = self._recent(key, now)
            if failures is not None and len(failures) >= self.max_failures:
                waits.append(failures[-self.max_failures] + self.window - now)
        if not waits:
            return None
        return max(1, math.ceil(max(waits)))

    def failed(self, *keys: str) -> None:
        now = self._clock()
        if len(self._failures) > MAX_TRACKED_KEYS:
            for stale in [k for k, v in self._failures.items() if not v or v[-1] <= now - self.window]:
                del self._failures[stale]
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self.max_failures * 4)).append(now)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
