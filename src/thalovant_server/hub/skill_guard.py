"""The failure policy of skill handlers: one place decides what a late or broken skill costs.

A skill is third-party code; the hub runs it without letting it take anything else down:

- a plain handler that raises, or answers something that is not a ``SkillReply``, is a fault
  ``skill_failed``;
- an ``async`` handler runs as a task of its own (other sessions and the session's next
  messages go on meanwhile) and is cancelled after the timeout: a fault ``skill_timeout``;
  raising or a wrong answer type is ``skill_failed`` as above;
- a session already waiting on :data:`MAX_PENDING_PER_SESSION` async handlers gets the fault
  ``skill_busy`` at once for the next one, so no client can pile up tasks without bound;
- a skill that fails or is late :data:`QUARANTINE_AFTER` times in a row on a hub is
  quarantined there (:class:`SkillHealth`): the hub stops offering it inputs, so they go to
  the other skills, until the hub reloads its skills (any change to its runtime group, e.g.
  reinstalling the skill).

Every fault reaches the client as the documented failure event ``hive.query.timeout``
(dataplane 6.3 rule 5: the SDK ends the ask at once with ``ThalovantRuntimeError`` carrying
``data.reason``), sent with the request's context so it correlates with the request.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from thalovant.protocol.envelope import BusMessage
from thalovant_server.hub.skills.base import Handler, Request, SkillReply

__all__ = [
    "DEFAULT_SKILL_TIMEOUT",
    "FAILURE_EVENT",
    "MAX_PENDING_PER_SESSION",
    "MAX_SKILL_TIMEOUT",
    "MIN_SKILL_TIMEOUT",
    "QUARANTINE_AFTER",
    "SkillFault",
    "SkillHealth",
    "call_handler",
    "clamp_timeout",
    "discard",
    "failure_message",
    "settle",
]

log = logging.getLogger(__name__)

FAILURE_EVENT = "hive.query.timeout"
DEFAULT_SKILL_TIMEOUT = 8.0
"""Seconds an async handler may take; below the SDK's 12 s ask deadline, so the client hears why."""
MIN_SKILL_TIMEOUT = 0.05
MAX_SKILL_TIMEOUT = 60.0
MAX_PENDING_PER_SESSION = 16
QUARANTINE_AFTER = 5

SKILL_FAILED = "skill_failed"
SKILL_TIMEOUT = "skill_timeout"
SKILL_BUSY = "skill_busy"


@dataclass(frozen=True, slots=True)
class SkillFault:
    """Why a skill gave no usable answer: ``code`` is ``skill_failed``, ``skill_timeout`` or ``skill_busy``."""

    skill_id: str
    handler: str
    code: str
    reason: str

    @classmethod
    def failed(cls, skill_id: str, handler: str) -> SkillFault:
        return cls(skill_id, handler, SKILL_FAILED, f"The skill {skill_id!r} failed while handling this request.")

    @classmethod
    def timed_out(cls, skill_id: str, handler: str, timeout: float) -> SkillFault:
        return cls(skill_id, handler, SKILL_TIMEOUT, f"The skill {skill_id!r} did not answer within {timeout:g} s.")

    @classmethod
    def busy(cls, skill_id: str, handler: str) -> SkillFault:
        return cls(skill_id, handler, SKILL_BUSY, "Too many requests of this session are still being answered.")


def clamp_timeout(value: Any, default: float = DEFAULT_SKILL_TIMEOUT) -> float:
    """A usable timeout from a configured value (a number in range), else ``default``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return min(max(float(value), MIN_SKILL_TIMEOUT), MAX_SKILL_TIMEOUT)
    return default


def _checked(skill_id: str, handler: str, value: Any) -> SkillReply | SkillFault | None:
    if value is None or isinstance(value, SkillReply):
        return value
    log.error("skill %s handler %s answered %s, not a SkillReply", skill_id, handler, type(value).__name__)
    return SkillFault.failed(skill_id, handler)


def call_handler(
    skill_id: str, handler: str, func: Handler, request: Request
) -> SkillReply | SkillFault | Awaitable[Any] | None:
    """Call a handler: its reply, a fault, or (async handler) the awaitable to :func:`settle`."""
    try:
        value = func(request)
    except Exception:
        log.exception("skill %s handler %s failed", skill_id, handler)
        return SkillFault.failed(skill_id, handler)
    if value is None or isinstance(value, SkillReply):
        return value
    if inspect.isawaitable(value):
        return value
    return _checked(skill_id, handler, value)


async def settle(
    skill_id: str, handler: str, pending: Awaitable[Any], timeout: float
) -> SkillReply | SkillFault | None:
    """Await an async handler's answer under ``timeout`` (cancelled when late); never raises."""
    try:
        async with asyncio.timeout(timeout):
            value = await pending
    except TimeoutError:
        log.warning("skill %s handler %s timed out after %.3g s", skill_id, handler, timeout)
        return SkillFault.timed_out(skill_id, handler, timeout)
    except Exception:
        log.exception("skill %s handler %s failed", skill_id, handler)
        return SkillFault.failed(skill_id, handler)
    return _checked(skill_id, handler, value)


def discard(pending: Awaitable[Any]) -> None:
    """Drop an awaitable that will never be awaited (no "never awaited" warning)."""
    close = getattr(pending, "close", None)
    if inspect.iscoroutine(pending) and callable(close):
        close()


def failure_message(fault: SkillFault, reply_context: Mapping[str, Any]) -> BusMessage:
    """The failure event for ``fault``; ``reply_context`` is the context of a reply to the request."""
    data = {"code": fault.code, "reason": fault.reason, "error": fault.reason, "skill_id": fault.skill_id}
    return BusMessage(FAILURE_EVENT, data, {**reply_context, "skill_id": fault.skill_id})


class SkillHealth:
    """Faults in a row per skill of one hub, and the skills quarantined (with why)."""

    def __init__(self, limit: int = QUARANTINE_AFTER) -> None:
        self.limit = limit
        self._streak: dict[str, int] = {}
        self.quarantined: dict[str, str] = {}

    def fault(self, fault: SkillFault) -> bool:
        """Count a fault; ``True`` when it quarantines the skill (``skill_busy`` does not count)."""
        if fault.code == SKILL_BUSY or fault.skill_id in self.quarantined:
            return False
        streak = self._streak.get(fault.skill_id, 0) + 1
        self._streak[fault.skill_id] = streak
        if streak < self.limit:
            return False
        self.quarantined[fault.skill_id] = f"quarantined after {streak} faults in a row: {fault.reason}"
        log.warning("skill %s quarantined on this hub: %s", fault.skill_id, fault.reason)
        return True

    def answered(self, skill_id: str) -> None:
        """A skill answered: its streak of faults ends."""
        self._streak.pop(skill_id, None)
