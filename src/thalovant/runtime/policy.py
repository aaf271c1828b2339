"""The client's failure policy, in one place: what a failed connect means, and what comes next.

Every other SDK mirrors this module; keep it a set of small tables.

**1. Judging one connect attempt.** An attempt fails at a :class:`Stage` with some
:class:`Evidence`; :func:`judge` turns the pair (and whether the attempt was KK) into a
:class:`Verdict`:

==================  =============  ==============  ===================  ===================  ============
evidence \\ stage    OPENING        NEGOTIATING     HANDSHAKE            FINISHING            SETTLING
==================  =============  ==============  ===================  ===================  ============
REFUSAL             REFUSED        REFUSED         KK: XX / REFUSED     KK: XX / KEY_REJ.    KEY_REJECTED
AUTH_FAILED         REFUSED        REFUSED         KK: XX / REFUSED     KK: XX / REFUSED     REFUSED
KEY_CHANGED         KEY_CHANGED everywhere
CLOSED, MALFORMED   DROPPED everywhere
TIMEOUT             TIMED_OUT everywhere
SUPERSEDED          FRESH everywhere; DROPPED when this connect already retried fresh
==================  =============  ==============  ===================  ===================  ============

"KK: XX" is :attr:`Verdict.RETRY_WITH_XX`: a KK attempt the hub could not read or refused is
retried at once with XX on a fresh carrier, inside the same connect. "FRESH" is
:attr:`Verdict.RETRY_FRESH`: on a carrier whose channel from the hub outlives the session (MQTT,
where the hub's answers to another session of the identity may come first), message 1 was built
on a HELLO and offer unlike the hub's own; the attempt is retried at once on a fresh carrier
session, once per connect (a second time is malformed, DROPPED). A refusal once the hub
has our static key (FINISHING, SETTLING: the hub closes within 750 ms of an XX handshake) means
the hub has another client key pinned for this access key. The cached PSK is forgotten whenever
the hub refused after the Noise handshake began (the cache may be the cause).

**2. What the client does after a failure** (:func:`next_step`, :data:`WAITERS_SEE`):

- KEY_CHANGED, KEY_REJECTED: stop reconnecting (only a person can fix the pins);
- REFUSED: keep reconnecting on the schedule for :data:`REFUSAL_GIVE_UP` seconds, then stop;
- DROPPED, TIMED_OUT: keep reconnecting on the schedule, for ever.

A caller waiting for the link (an ``ask`` during an outage) gets a REFUSED / KEY_* error at once
and waits through DROPPED / TIMED_OUT until its own timeout.

A message already sent is never sent again, with one exception: when the hub closes the link
saying it is going away or restarting (WebSocket 1001 or 1012, :data:`RESTART_CLOSE_CODES`), an
``ask`` that has received nothing for its request yet is sent again, with the same request id,
once the link is back (:func:`resend_unanswered`). A hub that closes for a restart stops
reading at once, so an utterance it sent nothing back for was, in all likelihood, not handled;
the unchanged request id lets a hub recognise a repeat.

**3. When to reconnect** (:class:`RetrySchedule`): every loss of the link, however it was noticed,
starts the same loop. Each delay is a base jittered down by up to half (so a fleet does not dial
in step):

=====================  =====================================================================
outage age             base delay before the next retry
=====================  =====================================================================
under a minute         1 s every time (a retry 0.5-1 s after the previous one: a hub restart)
a minute or more       1 s doubled for every retry already made past the minute, at most 30 s
=====================  =====================================================================
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from thalovant.errors import (
    ThalovantClientKeyRejectedError,
    ThalovantError,
    ThalovantHubKeyChangedError,
    ThalovantHubRefusedError,
    ThalovantTimeoutError,
)


class Stage(enum.Enum):
    """Where in one connect attempt a failure happened."""

    OPENING = "opening"  # the carrier opens: TCP, TLS, WebSocket upgrade, HTTPS /connect, MQTT CONNACK
    NEGOTIATING = "negotiating"  # cleartext HELLO and offer, before our Noise message 1 went out
    HANDSHAKE = "handshake"  # our Noise message 1 went out; the handshake is not complete
    FINISHING = "finishing"  # the handshake is complete; the last XX frame or the encrypted HELLO goes out
    SETTLING = "settling"  # after XX: the window before the hub's first authenticated frame


class Evidence(enum.Enum):
    """What the client saw."""

    REFUSAL = "refusal"  # the carrier's refusal signal: HTTP 401/403, WSS close 1000/1005/1008, CONNACK not authorised
    AUTH_FAILED = "auth-failed"  # the hub aborted the negotiation, or its Noise message did not decrypt
    KEY_CHANGED = "key-changed"  # the hub's static key differs from the pinned one
    CLOSED = "closed"  # any other close, reset or failure to open
    MALFORMED = "malformed"  # the hub sent something the protocol does not allow
    TIMEOUT = "timeout"  # a phase did not finish in time
    SUPERSEDED = "superseded"  # shared channel: message 1 was built on another session's HELLO and offer


class Verdict(enum.Enum):
    """What a failed attempt means; each maps to one typed error of spec 12."""

    RETRY_WITH_XX = "retry-with-xx"  # internal: at once, inside the same connect
    RETRY_FRESH = "retry-fresh"  # internal: at once, inside the same connect, once
    REFUSED = "refused"  # ThalovantHubRefusedError
    KEY_REJECTED = "key-rejected"  # ThalovantClientKeyRejectedError
    KEY_CHANGED = "key-changed"  # ThalovantHubKeyChangedError
    TIMED_OUT = "timed-out"  # ThalovantTimeoutError
    DROPPED = "dropped"  # ThalovantConnectionError


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    forget_psk: bool


_AFTER_NOISE_BEGAN = frozenset({Stage.HANDSHAKE, Stage.FINISHING})
_HUB_KNOWS_OUR_KEY = frozenset({Stage.FINISHING, Stage.SETTLING})


def judge(stage: Stage, evidence: Evidence, *, kk: bool, retried_fresh: bool = False) -> Judgement:
    """The verdict on one failed attempt (the table in the module docstring); ``retried_fresh``
    says this connect already made its :attr:`Verdict.RETRY_FRESH` attempt."""
    if evidence is Evidence.SUPERSEDED:
        return Judgement(Verdict.DROPPED if retried_fresh else Verdict.RETRY_FRESH, forget_psk=False)
    if evidence is Evidence.KEY_CHANGED:
        return Judgement(Verdict.KEY_CHANGED, forget_psk=False)
    if evidence is Evidence.TIMEOUT:
        return Judgement(Verdict.TIMED_OUT, forget_psk=False)
    if evidence in (Evidence.CLOSED, Evidence.MALFORMED):
        return Judgement(Verdict.DROPPED, forget_psk=False)
    # the hub said no: REFUSAL or AUTH_FAILED
    forget = stage in _AFTER_NOISE_BEGAN
    if kk and stage in _AFTER_NOISE_BEGAN:
        return Judgement(Verdict.RETRY_WITH_XX, forget_psk=True)
    if evidence is Evidence.REFUSAL and stage in _HUB_KNOWS_OUR_KEY:
        return Judgement(Verdict.KEY_REJECTED, forget_psk=False)
    return Judgement(Verdict.REFUSED, forget_psk=forget)


def verdict_of(error: BaseException) -> Verdict:
    """The verdict a typed connect error stands for."""
    if isinstance(error, ThalovantHubKeyChangedError):
        return Verdict.KEY_CHANGED
    if isinstance(error, ThalovantClientKeyRejectedError):
        return Verdict.KEY_REJECTED
    if isinstance(error, ThalovantHubRefusedError):
        return Verdict.REFUSED
    if isinstance(error, ThalovantTimeoutError):
        return Verdict.TIMED_OUT
    return Verdict.DROPPED


class Step(enum.Enum):
    """What the reconnect loop does after a failed attempt."""

    RETRY = "retry"
    STOP = "stop"


#: seconds of uninterrupted refusals after which the reconnect loop stops
REFUSAL_GIVE_UP = 600.0

#: verdicts a caller waiting for the link gets at once (it waits through the others)
WAITERS_SEE = frozenset({Verdict.REFUSED, Verdict.KEY_REJECTED, Verdict.KEY_CHANGED})


def next_step(error: ThalovantError, *, refused_for: float) -> Step:
    """After a failed attempt: retry (on the schedule) or stop. ``refused_for`` is how long the
    hub has been refusing without a break, in seconds."""
    verdict = verdict_of(error)
    if verdict in (Verdict.KEY_CHANGED, Verdict.KEY_REJECTED):
        return Step.STOP
    if verdict is Verdict.REFUSED and refused_for >= REFUSAL_GIVE_UP:
        return Step.STOP
    return Step.RETRY


#: WebSocket close codes by which a hub says it is going away or restarting
RESTART_CLOSE_CODES = frozenset({1001, 1012})


def resend_unanswered(close_code: int | None) -> bool:
    """Whether asks without any answer yet are sent again after the link closed with ``close_code``."""
    return close_code in RESTART_CLOSE_CODES


def waiter_gives_up(error: ThalovantError) -> bool:
    """True when a caller waiting for the link should get ``error`` now."""
    return verdict_of(error) in WAITERS_SEE


@dataclass(frozen=True)
class RetrySchedule:
    """The delays of the reconnect loop (section 3 of the module docstring)."""

    first: float = 1.0
    factor: float = 2.0
    restart_window: float = 60.0
    cap: float = 30.0
    jitter: float = 0.5

    def delay(self, late_retries: int, down_for: float, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before the next retry, the link having been down for ``down_for``
        seconds; ``late_retries`` is how many retries were already made with the link down for a
        minute or more (the doubling counts only those). ``rand`` draws in [0, 1)."""
        if down_for < self.restart_window:
            base = self.first
        else:
            base = min(self.first * self.factor ** min(late_retries, 32), self.cap)
        return base * (1.0 - self.jitter * rand())
