"""Rate limits: the sign-in limiter (:class:`LoginLimiter`) and a plain sliding window
(:class:`WindowLimiter`, for routes that allow so many events per window).

The sign-in limiter: back-off per client address and per account, never a lock-out.

Every sign-in attempt names two keys, its client address and its account, and each key keeps
its own count of consecutive failures. A key allows ``free_failures`` failures; after that it
backs off: one attempt per period, the period doubling with each further failure from
``base_delay`` up to ``max_delay`` seconds. A key forgets its failures ``forget_after`` seconds
after the last one.

- **Concurrency.** An attempt is admitted *before* its password is checked and counts against
  both keys while it runs (:meth:`LoginLimiter.admit` returns an :class:`Attempt`), so parallel
  attempts cannot all slip in before the first failure is recorded: at most ``free_failures``
  attempts per key reach the password check before the back-off starts, then one at a time.
- **No lock-out.** A successful sign-in clears its account's failures and remembers the address
  (the last :data:`KNOWN_ADDRESSES` of them). The account's back-off does not apply to those
  addresses, so failures from elsewhere cannot keep the account holder out; their own address's
  back-off still applies to them. A new address waits out the account's back-off, at most
  ``max_delay`` seconds.
- **Memory.** At most :data:`MAX_TRACKED_KEYS` keys are kept: stale ones go first, then the
  oldest idle ones.

Single-threaded by design: the event loop calls it, with no ``await`` between a check and the
admission it leads to. The clock is injectable for tests.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["KNOWN_ADDRESSES", "MAX_TRACKED_KEYS", "Attempt", "LoginLimiter", "WindowLimiter"]

MAX_TRACKED_KEYS = 50_000
KNOWN_ADDRESSES = 16


@dataclass
class _Key:
    failures: int = 0
    last_failure: float = 0.0
    last_seen: float = 0.0
    in_flight: int = 0
    known: OrderedDict[str, None] = field(default_factory=OrderedDict)


@dataclass
class Attempt:
    """An admitted sign-in attempt; report its outcome exactly once (``failed``, ``succeeded`` or
    ``abandoned`` when it ended without a verdict)."""

    limiter: LoginLimiter
    address: str
    account: str
    done: bool = False

    def failed(self) -> None:
        self._end(failed=True)

    def succeeded(self) -> None:
        self._end(failed=False)
        self.limiter._succeeded(self.address, self.account)

    def abandoned(self) -> None:
        self._end(failed=False)

    def _end(self, *, failed: bool) -> None:
        if self.done:
            return
        self.done = True
        self.limiter._finish(self.address, self.account, failed=failed)


class LoginLimiter:
    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        forget_after: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free_failures < 1 or base_delay <= 0 or max_delay < base_delay or forget_after <= 0:
            raise ValueError("login limiter settings out of range")
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self._clock = clock
        self._keys: OrderedDict[str, _Key] = OrderedDict()

    # -- admission -------------------------------------------------------------------------------

    def admit(self, address: str, account: str) -> Attempt | int:
        """An :class:`Attempt` to check the password now, or the seconds to wait (at least 1)."""
        now = self._clock()
        address_key = self._key(f"address:{address}", now)
        account_key = self._key(f"account:{account}", now)
        waits = [self._wait(address_key, now)]
        if address not in account_key.known:
            waits.append(self._wait(account_key, now))
        wait = max(waits)
        if wait > 0:
            return max(1, math.ceil(wait))
        address_key.in_flight += 1
        account_key.in_flight += 1
        return Attempt(self, address, account)

    def _wait(self, key: _Key, now: float) -> float:
        """Seconds before ``key`` admits another attempt (0: now)."""
        if key.failures + key.in_flight < self.free_failures:
            return 0.0
        if key.failures < self.free_failures:  # the free attempts are all running
            return self.base_delay
        ready = key.last_failure + self._delay(key.failures)
        if key.in_flight:  # one attempt at a time once backing off
            return max(ready - now, self.base_delay)
        return max(ready - now, 0.0)

    def _delay(self, failures: int) -> float:
        exponent = min(failures - self.free_failures, 62)
        return min(self.max_delay, self.base_delay * 2.0**exponent)

    # -- outcomes --------------------------------------------------------------------------------

    def _finish(self, address: str, account: str, *, failed: bool) -> None:
        now = self._clock()
        for name in (f"address:{address}", f"account:{account}"):
            key = self._keys.get(name)
            if key is None:
                continue
            key.in_flight = max(0, key.in_flight - 1)
            if failed:
                key.failures += 1
                key.last_failure = now

    def _succeeded(self, address: str, account: str) -> None:
        key = self._key(f"account:{account}", self._clock())
        key.failures = 0
        key.known[address] = None
        key.known.move_to_end(address)
        while len(key.known) > KNOWN_ADDRESSES:
            key.known.popitem(last=False)

    # -- the table -------------------------------------------------------------------------------

    def _key(self, name: str, now: float) -> _Key:
        key = self._keys.get(name)
        if key is None:
            if len(self._keys) >= MAX_TRACKED_KEYS:
                self._prune(now)
            key = self._keys[name] = _Key()
        else:
            self._keys.move_to_end(name)
            if key.failures and not key.in_flight and now - key.last_failure > self.forget_after:
                key.failures = 0
        key.last_seen = now
        return key

    def _prune(self, now: float) -> None:
        for name in [n for n, k in self._keys.items() if not k.in_flight and now - k.last_seen > self.forget_after]:
            del self._keys[name]
        for name in [n for n, k in self._keys.items() if not k.in_flight]:
            if len(self._keys) < MAX_TRACKED_KEYS:
                break
            del self._keys[name]

    def __len__(self) -> int:
        return len(self._keys)


class WindowLimiter:
    """At most ``max_events`` per ``window`` seconds per key: a sliding window.

    :meth:`retry_after` says how long a key must wait (``None``: not at all); :meth:`record`
    counts one event for each key. At most :data:`MAX_TRACKED_KEYS` keys are kept (stale ones are
    dropped first). The clock is injectable for tests.
    """

    def __init__(self, *, max_events: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_events = max_events
        self.window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        while events and events[0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def retry_after(self, *keys: str) -> int | None:
        """Seconds to wait when any key is over its limit, else None."""
        now = self._clock()
        waits = []
        for key in keys:
            events = self._recent(key, now)
            if events is not None and len(events) >= self.max_events:
                waits.append(events[-self.max_events] + self.window - now)
        return max(1, math.ceil(max(waits))) if waits else None

    def record(self, *keys: str) -> None:
        now = self._clock()
        if len(self._events) > MAX_TRACKED_KEYS:
            for stale in [k for k, v in self._events.items() if not v or v[-1] <= now - self.window]:
                del self._events[stale]
        for key in keys:
            self._events.setdefault(key, deque(maxlen=self.max_events * 4)).append(now)
