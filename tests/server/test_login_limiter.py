"""The sign-in limiter on its own clock: back-off per key, admission before the check, no lock-out."""

from __future__ import annotations

import pytest

from thalovant_server.api import ratelimit
from thalovant_server.api.ratelimit import Attempt, LoginLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def admitted(result: Attempt | int) -> Attempt:
    assert isinstance(result, Attempt), f"refused for {result} s"
    return result


def test_parallel_attempts_are_admitted_before_any_fails_only_up_to_the_free_budget(clock: Clock) -> None:
    limiter = LoginLimiter(free_failures=5, clock=clock)
    results = [limiter.admit("10.0.0.1", "victim@example.com") for _ in range(40)]
    running = [r for r in results if isinstance(r, Attempt)]
    assert len(running) == 5 and all(r == 1 for r in results if not isinstance(r, Attempt))
    for attempt in running:
        attempt.failed()
    assert limiter.admit("10.0.0.1", "victim@example.com") == 1
    clock.now += 1
    one = admitted(limiter.admit("10.0.0.1", "victim@example.com"))
    assert limiter.admit("10.0.0.1", "victim@example.com") == 1  # one at a time while backing off
    one.failed()
    assert limiter.admit("10.0.0.1", "victim@example.com") == 2


def test_the_back_off_doubles_up_to_its_cap_and_is_forgotten(clock: Clock) -> None:
    limiter = LoginLimiter(free_failures=2, base_delay=1, max_delay=8, forget_after=60, clock=clock)
    waits = []
    for _ in range(8):
        result = limiter.admit("a", "acct")
        if isinstance(result, int):
            waits.append(result)
            clock.now += result
            result = admitted(limiter.admit("a", "acct"))
        result.failed()
    assert waits == [1, 2, 4, 8, 8, 8]
    clock.now += 61
    assert isinstance(limiter.admit("a", "acct"), Attempt)


def test_an_account_under_attack_still_admits_its_holder_at_a_known_address(clock: Clock) -> None:
    limiter = LoginLimiter(free_failures=3, clock=clock)
    admitted(limiter.admit("home", "me")).succeeded()
    for attacker in range(30):  # many addresses, a few tries each
        for _ in range(3):
            result = limiter.admit(f"bot-{attacker}", "me")
            if isinstance(result, Attempt):
                result.failed()
    assert isinstance(limiter.admit("new-place", "me"), int)  # the account backs off for strangers
    admitted(limiter.admit("home", "me")).succeeded()  # but not for its holder's own address
    admitted(limiter.admit("new-place", "other-account")).abandoned()  # nor for other accounts


def test_the_address_limit_applies_at_a_known_address_too(clock: Clock) -> None:
    limiter = LoginLimiter(free_failures=2, clock=clock)
    admitted(limiter.admit("home", "me")).succeeded()
    for name in ("x", "y"):
        admitted(limiter.admit("home", name)).failed()
    assert limiter.admit("home", "me") == 1


def test_an_outcome_counts_once_and_abandoned_attempts_free_their_slot(clock: Clock) -> None:
    limiter = LoginLimiter(free_failures=1, clock=clock)
    attempt = admitted(limiter.admit("a", "b"))
    attempt.abandoned()
    attempt.failed()  # too late: already ended
    admitted(limiter.admit("a", "b")).failed()
    assert isinstance(limiter.admit("a", "b"), int)


def test_the_table_stays_bounded(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_TRACKED_KEYS", 100)
    limiter = LoginLimiter(clock=clock)
    for index in range(1000):
        result = limiter.admit(f"10.0.{index // 256}.{index % 256}", f"user{index}@example.com")
        assert isinstance(result, Attempt)
        result.failed()
        clock.now += 0.01
    assert len(limiter) <= 101
