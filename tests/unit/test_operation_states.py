"""The operation state machine: every move it has, and none it does not."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from thalovant_server.operations import (
    STAMPS,
    TERMINAL,
    TRANSITIONS,
    InvalidTransition,
    OperationStatus,
    check_transition,
)
from thalovant_server.store.models import Operation
from thalovant_server.store.operations import advance

S = OperationStatus
ALLOWED = {
    (S.REQUESTED, S.COMMITTED),
    (S.COMMITTED, S.APPLIED),
    (S.APPLIED, S.READY),
    *((state, stop) for state in (S.REQUESTED, S.COMMITTED, S.APPLIED) for stop in (S.FAILED, S.TIMED_OUT)),
}


def operation(status: OperationStatus) -> Operation:
    now = dt.datetime.now(dt.UTC)
    return Operation(
        id="op",
        workspace_id="ws",
        kind="hub.skill.install",
        aggregate_type="hub",
        aggregate_id="hub",
        status=status.value,
        details={"skill": "clock"},
        deadline_at=now,
        created_at=now,
        updated_at=now,
    )


def test_terminal_states_are_ready_failed_and_timed_out() -> None:
    assert frozenset({S.READY, S.FAILED, S.TIMED_OUT}) == TERMINAL
    assert all(not TRANSITIONS[state] for state in TERMINAL)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair_of_states(current: OperationStatus, target: OperationStatus) -> None:
    if (current, target) in ALLOWED:
        assert check_transition(current.value, target) is current
    else:
        with pytest.raises(InvalidTransition):
            check_transition(current.value, target)


def test_unknown_status_is_refused() -> None:
    with pytest.raises(InvalidTransition, match="unknown operation status"):
        check_transition("paused", S.READY)


def test_the_happy_path_stamps_each_step_and_the_end() -> None:
    op = operation(S.REQUESTED)
    for target in (S.COMMITTED, S.APPLIED, S.READY):
        advance(op, target)
        assert op.status == target.value
        assert getattr(op, STAMPS[target]) is not None
    assert op.terminal_at is not None and op.error_code is None


def test_a_failure_keeps_its_code_message_and_details() -> None:
    op = operation(S.COMMITTED)
    advance(op, S.FAILED, error_code="install_failed", error_message="it broke", details={"attempt": 1})
    assert (op.status, op.error_code, op.error_message) == ("failed", "install_failed", "it broke")
    assert op.details == {"skill": "clock", "attempt": 1} and op.terminal_at is not None
    assert op.applied_at is None and op.ready_at is None
    with pytest.raises(InvalidTransition):
        advance(op, S.READY)
