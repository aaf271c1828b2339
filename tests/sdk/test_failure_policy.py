"""The client's failure policy (``thalovant.runtime.policy``): the verdict table, what the
reconnect loop does next, and the retry schedule."""

from __future__ import annotations

import pytest

from thalovant.errors import (
    ThalovantClientKeyRejectedError,
    ThalovantConnectionError,
    ThalovantHubKeyChangedError,
    ThalovantHubRefusedError,
    ThalovantTimeoutError,
)
from thalovant.runtime.policy import (
    REFUSAL_GIVE_UP,
    Evidence,
    RetrySchedule,
    Stage,
    Step,
    Verdict,
    judge,
    next_step,
    verdict_of,
    waiter_gives_up,
)

S, E, V = Stage, Evidence, Verdict

# (stage, evidence, kk) -> (verdict, forget the cached PSK)
TABLE = [
    (S.OPENING, E.REFUSAL, False, V.REFUSED, False),
    (S.OPENING, E.REFUSAL, True, V.REFUSED, False),
    (S.OPENING, E.CLOSED, False, V.DROPPED, False),
    (S.OPENING, E.TIMEOUT, True, V.TIMED_OUT, False),
    (S.NEGOTIATING, E.REFUSAL, False, V.REFUSED, False),
    (S.NEGOTIATING, E.AUTH_FAILED, False, V.REFUSED, False),
    (S.NEGOTIATING, E.MALFORMED, False, V.DROPPED, False),
    (S.HANDSHAKE, E.REFUSAL, True, V.RETRY_WITH_XX, True),
    (S.HANDSHAKE, E.AUTH_FAILED, True, V.RETRY_WITH_XX, True),
    (S.HANDSHAKE, E.REFUSAL, False, V.REFUSED, True),
    (S.HANDSHAKE, E.AUTH_FAILED, False, V.REFUSED, True),
    (S.HANDSHAKE, E.KEY_CHANGED, False, V.KEY_CHANGED, False),
    (S.HANDSHAKE, E.CLOSED, True, V.DROPPED, False),
    (S.FINISHING, E.REFUSAL, True, V.RETRY_WITH_XX, True),
    (S.FINISHING, E.REFUSAL, False, V.KEY_REJECTED, False),
    (S.FINISHING, E.AUTH_FAILED, False, V.REFUSED, True),
    (S.SETTLING, E.REFUSAL, False, V.KEY_REJECTED, False),
    (S.SETTLING, E.CLOSED, False, V.DROPPED, False),
    (S.SETTLING, E.TIMEOUT, False, V.TIMED_OUT, False),
]


@pytest.mark.parametrize(("stage", "evidence", "kk", "verdict", "forget"), TABLE)
def test_verdict_table(stage: Stage, evidence: Evidence, kk: bool, verdict: Verdict, forget: bool) -> None:
    judgement = judge(stage, evidence, kk=kk)
    assert (judgement.verdict, judgement.forget_psk) == (verdict, forget)
    if evidence is not E.SUPERSEDED:  # only a superseded negotiation asks whether a fresh retry was made
        assert judge(stage, evidence, kk=kk, retried_fresh=True) == judgement


@pytest.mark.parametrize("stage", list(Stage))
@pytest.mark.parametrize("kk", [False, True])
def test_a_superseded_negotiation_is_retried_fresh_once(stage: Stage, kk: bool) -> None:
    """Message 1 built on another session's HELLO and offer (a shared channel: MQTT): one fresh
    attempt at once, then an ordinary drop; the cached PSK is never at stake."""
    first = judge(stage, E.SUPERSEDED, kk=kk)
    assert (first.verdict, first.forget_psk) == (V.RETRY_FRESH, False)
    again = judge(stage, E.SUPERSEDED, kk=kk, retried_fresh=True)
    assert (again.verdict, again.forget_psk) == (V.DROPPED, False)


def test_each_error_maps_to_its_verdict() -> None:
    assert verdict_of(ThalovantHubKeyChangedError("x")) is V.KEY_CHANGED
    assert verdict_of(ThalovantClientKeyRejectedError("x")) is V.KEY_REJECTED
    assert verdict_of(ThalovantHubRefusedError("x")) is V.REFUSED
    assert verdict_of(ThalovantTimeoutError("x")) is V.TIMED_OUT
    assert verdict_of(ThalovantConnectionError("x")) is V.DROPPED


def test_the_loop_stops_only_for_pins_and_long_refusals() -> None:
    assert next_step(ThalovantHubKeyChangedError("x"), refused_for=0) is Step.STOP
    assert next_step(ThalovantClientKeyRejectedError("x"), refused_for=0) is Step.STOP
    assert next_step(ThalovantHubRefusedError("x"), refused_for=0) is Step.RETRY
    assert next_step(ThalovantHubRefusedError("x"), refused_for=REFUSAL_GIVE_UP) is Step.STOP
    assert next_step(ThalovantConnectionError("x"), refused_for=REFUSAL_GIVE_UP * 10) is Step.RETRY
    assert next_step(ThalovantTimeoutError("x"), refused_for=REFUSAL_GIVE_UP * 10) is Step.RETRY


def test_waiters_wait_through_drops_and_timeouts_only() -> None:
    assert not waiter_gives_up(ThalovantConnectionError("x"))
    assert not waiter_gives_up(ThalovantTimeoutError("x"))
    assert waiter_gives_up(ThalovantHubRefusedError("x"))
    assert waiter_gives_up(ThalovantClientKeyRejectedError("x"))
    assert waiter_gives_up(ThalovantHubKeyChangedError("x"))


def test_schedule_retries_every_half_to_one_second_during_the_first_minute() -> None:
    schedule = RetrySchedule()
    # the jitter draws in [0, 1): the delay spans (base/2, base]
    assert schedule.delay(0, 0, lambda: 0.0) == 1.0
    assert schedule.delay(0, 0, lambda: 0.999) == pytest.approx(0.5005)
    # no doubling while the outage is younger than a minute, however many retries failed
    assert {schedule.delay(0, down, lambda: 0.0) for down in (0.5, 10, 30, 59.9)} == {1.0}
    assert [schedule.delay(0, down, lambda: 0.999) for down in (0.5, 10, 59.9)] == pytest.approx([0.5005] * 3)


def test_schedule_doubles_after_a_minute_up_to_thirty_seconds() -> None:
    schedule = RetrySchedule()
    later = [schedule.delay(n, 60 + n, lambda: 0.0) for n in range(8)]
    assert later == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert schedule.delay(10_000, 10_000, lambda: 0.0) == 30.0
    assert schedule.delay(10_000, 10_000, lambda: 0.999) == pytest.approx(15.015)
