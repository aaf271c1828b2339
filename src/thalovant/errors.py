"""The SDK's exceptions.

Every error the SDK raises on purpose is a :class:`ThalovantError`. The class names follow the
public Thalovant SDK so that ``except`` clauses port unchanged; each message says what happened
and what to do next. Messages never carry secrets: control-plane errors show only the server's
sentence (``detail``/``message``/``error``) and code, never echoed request values, which stay
reachable in :attr:`ThalovantAPIError.problem`.

Hierarchy::

    ThalovantError
    +-- ThalovantIdentityError
    +-- ThalovantUnsupportedProtocolError
    +-- ThalovantConnectionError
    |   +-- ThalovantHubRefusedError
    |   |   +-- ThalovantClientKeyRejectedError
    |   +-- ThalovantHubKeyChangedError
    |   +-- ThalovantAPIUnreachableError   (also a ThalovantAPIError)
    +-- ThalovantTimeoutError
    +-- ThalovantRuntimeError
    |   +-- ThalovantPolicyDeniedError
    |   +-- ThalovantUnansweredError
    +-- ThalovantAPIError
        +-- ThalovantAuthError
        +-- ThalovantPlanError
        +-- ThalovantAlreadyLinkedError
        +-- ThalovantUnsupportedConnectionTypeError
        +-- ThalovantDeviceLoginPending
        +-- ThalovantDeviceLoginExpired
        +-- ThalovantDeviceLoginDenied
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thalovant.events import ThalovantEvent

__all__ = [
    "ThalovantAPIError",
    "ThalovantAPIUnreachableError",
    "ThalovantAdmissionFailedError",
    "ThalovantAdmissionTimeoutError",
    "ThalovantAlreadyLinkedError",
    "ThalovantAuthError",
    "ThalovantClientKeyRejectedError",
    "ThalovantConnectionError",
    "ThalovantDeviceLoginDenied",
    "ThalovantDeviceLoginExpired",
    "ThalovantDeviceLoginPending",
    "ThalovantError",
    "ThalovantHubKeyChangedError",
    "ThalovantHubRefusedError",
    "ThalovantIdentityError",
    "ThalovantPlanError",
    "ThalovantPolicyDeniedError",
    "ThalovantRuntimeError",
    "ThalovantTimeoutError",
    "ThalovantUnansweredError",
    "ThalovantUnsupportedConnectionTypeError",
    "ThalovantUnsupportedProtocolError",
    "api_error_from_response",
]


class ThalovantError(Exception):
    """Root of every error the SDK raises on purpose."""


# ---------------------------------------------------------------------------- local errors


class ThalovantIdentityError(ThalovantError):
    """Identity material is missing, malformed, or stored unsafely (a local problem: fix the
    file, the config profile or the environment variables)."""


class ThalovantUnsupportedProtocolError(ThalovantError):
    """The requested carrier cannot be used with this identity (no endpoint or credentials)."""


# ---------------------------------------------------------------------------- data plane


class ThalovantConnectionError(ThalovantError):
    """The hub (or the API) could not be reached, or the link broke."""


class ThalovantHubRefusedError(ThalovantConnectionError):
    """The hub refused this client: unknown or not-yet-admitted access key, wrong password, or a
    revoked identity. Check the identity, or create a new one on the control plane."""


class ThalovantClientKeyRejectedError(ThalovantHubRefusedError):
    """The hub accepted the handshake but refused this client's Noise key: it has another key
    pinned for this access key. ``key_folder`` is where this client's key lives;
    ``other_key_folder`` a folder that may hold the key the hub expects, when known."""

    key_folder: str | None = None
    other_key_folder: str | None = None


class ThalovantHubKeyChangedError(ThalovantConnectionError):
    """The hub's static Noise key differs from the one pinned on this machine. Never cleared
    automatically: check with the hub's operator before removing the pin."""


class ThalovantTimeoutError(ThalovantError):
    """Something did not happen in time (handshake, reply, event, local wait)."""


class ThalovantAdmissionTimeoutError(ThalovantConnectionError, ThalovantTimeoutError):
    """A new client identity was not admitted before the wait ended; the hub may still admit
    it later."""


class ThalovantAdmissionFailedError(ThalovantConnectionError):
    """The control plane could not admit a new client identity: ``error_code`` is the
    operation's code; ``status_code``, ``code``, ``detail`` and ``problem`` describe a failed
    read of the operation, when that is what ended the wait."""

    def __init__(
        self,
        *args: object,
        error_code: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(*args)
        self.error_code = error_code
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.problem = dict(problem) if problem is not None else None


class ThalovantRuntimeError(ThalovantError):
    """The hub answered a request with a failure event."""


class ThalovantUnansweredError(ThalovantRuntimeError):
    """The hub did not understand the request and nothing answered it. ``said`` is the
    utterance the hub reported, when it reported one."""

    said: str | None = None


class ThalovantPolicyDeniedError(ThalovantRuntimeError):
    """The hub's policy refused the message (``hive.policy.denied``): a type this identity may
    not send (``allowed`` lists what it may), or a quota (``quota``) that is used up."""

    def __init__(
        self,
        message: str,
        *,
        denied_type: str | None = None,
        code: str | None = None,
        reason: str | None = None,
        allowed: list[str] | None = None,
        quota: dict[str, Any] | None = None,
        event: ThalovantEvent | None = None,
    ) -> None:
        super().__init__(message)
        self.denied_type = denied_type
        self.code = code
        self.reason = reason
        self.allowed = allowed
        self.quota = quota
        self.event = event

    @classmethod
    def from_event(cls, event: ThalovantEvent) -> ThalovantPolicyDeniedError:
        """Read a ``hive.policy.denied`` event (fields in ``data`` and ``data.data``)."""
        data = event.data if isinstance(event.data, Mapping) else {}
        inner = data.get("data") if isinstance(data.get("data"), Mapping) else {}
        assert isinstance(inner, Mapping)

        def pick(key: str) -> Any:
            value = data.get(key)
            return value if value is not None else inner.get(key)

        denied_type = _text_or_none(pick("denied_type"))
        code = _text_or_none(pick("code"))
        reason = _text_or_none(pick("reason"))
        raw_allowed = pick("allowed")
        allowed = [str(item) for item in raw_allowed] if isinstance(raw_allowed, list) else None
        quota: dict[str, Any] | None = None
        if "limit" in inner or "used" in inner or "period" in inner:
            quota = {
                "period": _text_or_none(inner.get("period")),
                "limit": _whole_number(inner.get("limit")),
                "used": _whole_number(inner.get("used")),
                "reset_after": inner.get("reset_after"),
            }
        what = denied_type or "message"
        message = f"The hub's policy refused this {what}"
        if reason:
            message += f": {reason}"
        if code:
            message += f" ({code})"
        if allowed is not None:
            message += f". Allowed types: {', '.join(allowed) or 'none'}"
        message += ". Ask the hub's owner to change the identity's permissions or plan."
        return cls(
            message,
            denied_type=denied_type,
            code=code,
            reason=reason,
            allowed=allowed,
            quota=quota,
            event=event,
        )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _whole_number(value: Any) -> int:
    """Quota counts are whole numbers in 0..2**53-1; anything else reads as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int) and 0 <= value <= 2**53 - 1:
        return value
    if isinstance(value, float) and value.is_integer() and 0 <= value <= 2**53 - 1:
        return int(value)
    return 0


# ---------------------------------------------------------------------------- control plane

_CODE_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
_SENTENCE_LIMIT = 200


class ThalovantAPIError(ThalovantError):
    """A control-plane request failed, or its answer was unusable.

    ``status_code`` is the HTTP status (None for a local refusal or an unusable answer);
    ``problem`` the whole error body when it was a JSON object; ``code`` and ``detail`` read
    as controlplane.md 12.2 says; ``retry_after_seconds`` for 429 answers.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        problem: dict[str, Any] | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.problem = problem
        self.retry_after_seconds = retry_after_seconds

    @property
    def status(self) -> int | None:
        """Alias of :attr:`status_code`."""
        return self.status_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, message={self.message!r})"


class ThalovantAPIUnreachableError(ThalovantAPIError, ThalovantConnectionError):
    """The API could not be reached (DNS, TCP, TLS, proxy or timeout). Check the API URL, the
    network, and the CA bundle (``SSL_CERT_FILE``) for a private server."""

    def __init__(self, message: str = "Could not reach the Thalovant API.") -> None:
        super().__init__(message)


class ThalovantAuthError(ThalovantAPIError):
    """Not signed in, wrong credentials, a locked account, or a token without the scope."""


class ThalovantPlanError(ThalovantAPIError):
    """The account's plan does not allow this (402, or 403 ``plan_limit``)."""


class ThalovantAlreadyLinkedError(ThalovantAPIError):
    """The hub already has a connection of this single-instance kind; ``client_id`` names it."""

    client_id: str | None = None


class ThalovantUnsupportedConnectionTypeError(ThalovantAPIError):
    """The API does not support the requested ``connection_type``."""


class ThalovantDeviceLoginPending(ThalovantAPIError):
    """Nobody approved the device sign-in yet (``authorization_pending``), or the device polls
    too fast (``slow_down``); poll again after :attr:`interval` seconds."""

    def __init__(self, *args: Any, interval: float = 5.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interval = interval


class ThalovantDeviceLoginExpired(ThalovantAPIError):
    """The device code expired before anyone approved it; start a new device sign-in."""


class ThalovantDeviceLoginDenied(ThalovantAPIError):
    """The person asked to approve the device sign-in denied it."""


def _sentence(problem: Mapping[str, Any] | None) -> str | None:
    if problem is None:
        return None
    for key in ("detail", "message", "error"):
        value = problem.get(key)
        if isinstance(value, str) and value.strip():
            text = " ".join(value.split())
            if len(text) > _SENTENCE_LIMIT:
                text = text[:_SENTENCE_LIMIT] + "..."
            return text
    return None


def _read_member(problem: Mapping[str, Any] | None, key: str) -> str | None:
    """The top-level string ``key`` if non-blank, else the one inside an object ``detail``."""
    if problem is None:
        return None
    value = problem.get(key)
    if isinstance(value, str) and value.strip():
        return value
    nested = problem.get("detail")
    if isinstance(nested, Mapping):
        inner = nested.get(key)
        if isinstance(inner, str) and inner.strip():
            return inner
    return None


def _retry_after(problem: Mapping[str, Any] | None, headers: Mapping[str, str] | None) -> float | None:
    def number(value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) if math.isfinite(value) and value >= 0 else None

    if problem is not None:
        found = number(problem.get("retry_after_seconds"))
        if found is not None:
            return found
        nested = problem.get("detail")
        if isinstance(nested, Mapping):
            found = number(nested.get("retry_after_seconds"))
            if found is not None:
                return found
    if headers is not None:
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        for name in ("retry-after", "ratelimit-reset"):
            raw = lowered.get(name, "").strip()
            if raw.isdigit():
                return float(int(raw))
    return None


def display_message(status: int | None, problem: Mapping[str, Any] | None) -> str:
    """The display message of controlplane.md 12.3; never echoes anything but the sentence
    and a well-formed code."""
    sentence = _sentence(problem)
    code = problem.get("code") if problem is not None else None
    suffix = ""
    if isinstance(code, str) and _CODE_PATTERN.fullmatch(code) and code != sentence:
        suffix = f"({code})"
    prefix = f"Thalovant API request failed with HTTP {status}"
    if sentence and suffix:
        return f"{prefix}: {sentence} {suffix}"
    if sentence:
        return f"{prefix}: {sentence}"
    if suffix:
        return f"{prefix}: {suffix}"
    return f"{prefix}."


def parse_problem(body: str | bytes | None) -> dict[str, Any] | None:
    """The body parsed, exactly when it is a JSON object."""
    if body is None:
        return None
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not body.strip():
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def api_error_from_response(
    status: int,
    body: str | bytes | None,
    headers: Mapping[str, str] | None = None,
) -> ThalovantAPIError:
    """Build the typed error for a non-2xx answer (controlplane.md 12.2-12.5)."""
    problem = parse_problem(body)
    code = _read_member(problem, "code")
    detail = _read_member(problem, "detail")
    message = display_message(status, problem)
    cls: type[ThalovantAPIError] = ThalovantAPIError
    if status in (401, 423) or (status == 403 and detail == "Insufficient scopes"):
        cls = ThalovantAuthError
        if status == 423:
            message += " The account is locked; wait, or ask an administrator to unlock it."
        elif status == 401:
            message += " Sign in again with login(email, password) or pass a valid access_token."
        else:
            message += " Use a token with the scope this call needs."
    elif status == 402 or (status == 403 and code == "plan_limit"):
        cls = ThalovantPlanError
    elif status == 409 and code == "home_assistant_already_linked":
        cls = ThalovantAlreadyLinkedError
    elif 300 <= status < 400:
        message = f"{message} Thalovant API redirected the request; redirects are disabled."
    error = cls(
        message,
        status_code=status,
        code=code,
        detail=detail,
        problem=problem,
        retry_after_seconds=_retry_after(problem, headers),
    )
    if isinstance(error, ThalovantAlreadyLinkedError) and problem is not None:
        error.client_id = _linked_client_id(problem)
    return error


def _linked_client_id(problem: Mapping[str, Any]) -> str | None:
    places: list[Mapping[str, Any]] = [problem]
    nested = problem.get("detail")
    if isinstance(nested, Mapping):
        places.append(nested)
    for place in places:
        for key in ("client_id", "existing_client_id", "connection_id"):
            value = place.get(key)
            if isinstance(value, str) and value:
                return value
    return None
