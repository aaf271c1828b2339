"""The life of an operation (``/v1/operations/{id}``), as a state machine with no I/O.

::

    requested --> committed --> applied --> ready
        |             |            |
        +-------------+------------+-----> failed | timed_out

- ``requested``: the API accepted the change (the answer was 202 with the operation id);
- ``committed``: the desired state is written (e.g. a runtime group's skill list);
- ``applied``: the runtime took it (every loaded hub of the group reloaded its skills);
- ``ready``: the runtime was seen running the desired state;
- ``failed`` / ``timed_out``: it cannot get there (``error_code`` says why) or did not by its
  deadline. These three are terminal: nothing moves out of them.

Every move is one of :data:`TRANSITIONS`; :func:`check_transition` refuses any other.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "STAMPS",
    "TERMINAL",
    "TRANSITIONS",
    "ErrorCode",
    "InvalidTransition",
    "OperationStatus",
    "check_transition",
]


class OperationStatus(StrEnum):
    REQUESTED = "requested"
    COMMITTED = "committed"
    APPLIED = "applied"
    READY = "ready"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


class ErrorCode(StrEnum):
    """``error_code`` values of failed and timed-out operations."""

    INSTALL_FAILED = "install_failed"
    """The skill package does not load or its skill does not start."""
    CONVERGENCE_TIMEOUT = "convergence_timeout"
    """The runtime was not seen in the desired state by the operation's deadline."""
    RUNTIME_TIMEOUT = "runtime_timeout"
    """The server stopped before the change was applied, and the deadline passed meanwhile."""


_STOP = frozenset({OperationStatus.FAILED, OperationStatus.TIMED_OUT})

TRANSITIONS: dict[OperationStatus, frozenset[OperationStatus]] = {
    OperationStatus.REQUESTED: frozenset({OperationStatus.COMMITTED}) | _STOP,
    OperationStatus.COMMITTED: frozenset({OperationStatus.APPLIED}) | _STOP,
    OperationStatus.APPLIED: frozenset({OperationStatus.READY}) | _STOP,
    OperationStatus.READY: frozenset(),
    OperationStatus.FAILED: frozenset(),
    OperationStatus.TIMED_OUT: frozenset(),
}

TERMINAL = frozenset(status for status, moves in TRANSITIONS.items() if not moves)

STAMPS: dict[OperationStatus, str] = {
    OperationStatus.COMMITTED: "committed_at",
    OperationStatus.APPLIED: "applied_at",
    OperationStatus.READY: "ready_at",
}
"""The timestamp field each state sets on entry (every terminal state also sets ``terminal_at``)."""


class InvalidTransition(ValueError):
    """A move the state machine does not have (e.g. out of a terminal state)."""


def check_transition(current: str, target: OperationStatus) -> OperationStatus:
    """``current`` as a status, provided ``target`` is a move from it; else :class:`InvalidTransition`."""
    try:
        status = OperationStatus(current)
    except ValueError:
        raise InvalidTransition(f"unknown operation status {current!r}") from None
    if target not in TRANSITIONS[status]:
        raise InvalidTransition(f"an operation cannot move from {status} to {target}")
    return status
