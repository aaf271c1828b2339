"""Passwordless sign-in: device sign-in (RFC 8628) and native sign-in (authorization code
with PKCE, RFC 7636), as controlplane.md 3.3 and 3.5 describe.

Device sign-in, for a device without a good browser (a kiosk, a CLI on a server)::

    grant = api.begin_device_login(client_name="kitchen kiosk")
    print("Visit", grant.verification_uri, "and enter", grant.user_code)
    token = api.poll_device_login(grant)   # raises ThalovantDeviceLoginPending until approved

or all of it, opening the browser, with ``api.login_with_browser()``.

Native sign-in, for an app that can open a browser and receive a redirect::

    attempt = begin_native_sign_in(client_id="thalovant-cli", redirect_uri="http://127.0.0.1:8765/callback")
    # open attempt.authorization_url; the browser comes back to the redirect URI
    code = attempt.code_from(redirected_url)
    api.complete_native_sign_in(code, attempt.verifier, "thalovant-cli", attempt.redirect_uri)

Both leave the new API token in the client (``access_token``, ``token_id``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
import webbrowser
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from thalovant.control_base import ApiCalls
from thalovant.errors import (
    ThalovantAPIError,
    ThalovantDeviceLoginDenied,
    ThalovantDeviceLoginExpired,
    ThalovantDeviceLoginPending,
    ThalovantTimeoutError,
)

__all__ = [
    "DEFAULT_NATIVE_SCOPES",
    "HOME_ASSISTANT_CLIENT_ID",
    "HOME_ASSISTANT_SCOPES",
    "ApiToken",
    "DeviceAuthorization",
    "DeviceLoginRequest",
    "NativeSignIn",
    "SignInMethods",
    "begin_native_sign_in",
    "challenge_for",
    "new_verifier",
]

DEFAULT_NATIVE_SCOPES = ("hubs:read", "clients:read", "clients:write")
HOME_ASSISTANT_SCOPES = ("hubs:read", "clients:read", "clients:write")
HOME_ASSISTANT_CLIENT_ID = "thalovant-home-assistant"
DEFAULT_DEVICE_INTERVAL = 5.0
DEFAULT_DEVICE_EXPIRES_IN = 900
SLOW_DOWN_STEP = 5.0
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_UNSAFE_URL = "Device verification URLs must use HTTP or HTTPS without embedded credentials."


def _browser_url(value: Any) -> str:
    """``value`` if a browser may safely be sent there: http(s), a host, no credentials, no
    whitespace or control characters; else :class:`ThalovantAPIError`."""
    if not isinstance(value, str) or not value:
        raise ThalovantAPIError(_UNSAFE_URL)
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ThalovantAPIError(_UNSAFE_URL)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ThalovantAPIError(_UNSAFE_URL)
    return value


def _timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _required_text(payload: Mapping[str, Any], key: str, what: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ThalovantAPIError(f"Thalovant API {what} did not include {key}.")
    return value


def _scopes(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list | tuple):
        return tuple(str(s) for s in value if isinstance(s, str))
    return ()


@dataclass(frozen=True)
class DeviceAuthorization:
    """The answer of ``POST /v1/auth/device/authorize``. ``device_code`` is the device's
    secret for polling (kept out of ``repr``); the person types ``user_code`` at
    ``verification_uri`` (or opens ``verification_uri_complete``)."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval: float
    expires_in: int

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> DeviceAuthorization:
        """Parse the authorize answer; refuses URLs a browser should not be sent to."""
        what = "device authorization"
        complete = payload.get("verification_uri_complete")
        interval = payload.get("interval")
        expires_in = payload.get("expires_in")
        return cls(
            device_code=_required_text(payload, "device_code", what),
            user_code=_required_text(payload, "user_code", what),
            verification_uri=_browser_url(_required_text(payload, "verification_uri", what)),
            verification_uri_complete=_browser_url(complete) if complete is not None else None,
            interval=float(interval)
            if isinstance(interval, int | float) and not isinstance(interval, bool) and interval >= 0
            else DEFAULT_DEVICE_INTERVAL,
            expires_in=int(expires_in)
            if isinstance(expires_in, int) and not isinstance(expires_in, bool)
            else DEFAULT_DEVICE_EXPIRES_IN,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe, ``device_code`` included (keep it private)."""
        return {
            "device_code": self.device_code,
            "user_code": self.user_code,
            "verification_uri": self.verification_uri,
            "verification_uri_complete": self.verification_uri_complete,
            "interval": self.interval,
            "expires_in": self.expires_in,
        }


@dataclass(frozen=True)
class DeviceLoginRequest:
    """A pending device sign-in as the person deciding on it sees it
    (``GET /v1/auth/device/codes/{user_code}``). ``client_verified`` holds only for a
    registered app (``client_id`` present): ``client_name`` is then the platform's own name for
    it and ``device_name`` the label the device gave itself."""

    scopes: tuple[str, ...]
    client_name: str | None
    expires_at: dt.datetime | None
    client_id: str | None = None
    client_verified: bool = False
    device_name: str | None = None

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> DeviceLoginRequest:
        def text(key: str) -> str | None:
            value = payload.get(key)
            return value if isinstance(value, str) and value else None

        client_id = text("client_id")
        return cls(
            scopes=_scopes(payload.get("scopes")),
            client_name=text("client_name"),
            expires_at=_timestamp(payload.get("expires_at")),
            client_id=client_id,
            client_verified=payload.get("client_verified") is True and client_id is not None,
            device_name=text("device_name"),
        )


@dataclass(frozen=True)
class ApiToken:
    """An API token a sign-in gave; ``access_token`` is the credential (kept out of ``repr``)."""

    access_token: str = field(repr=False)
    token_type: str
    scopes: tuple[str, ...]
    expires_at: dt.datetime | None
    token_id: str | None

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> ApiToken:
        token_type = payload.get("token_type")
        token_id = payload.get("token_id")
        return cls(
            access_token=_required_text(payload, "access_token", "token response"),
            token_type=token_type if isinstance(token_type, str) and token_type else "bearer",
            scopes=_scopes(payload.get("scopes")),
            expires_at=_timestamp(payload.get("expires_at")),
            token_id=token_id if isinstance(token_id, str) and token_id else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe, the credential included: store it as a secret."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "scopes": list(self.scopes),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "token_id": self.token_id,
        }


def new_verifier() -> str:
    """A PKCE code verifier: 64 random bytes, base64url without padding (86 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(64)).decode("ascii").rstrip("=")


def challenge_for(verifier: str) -> str:
    """The S256 code challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class NativeSignIn:
    """One native sign-in attempt: the URL to open, and the secrets to keep until the redirect."""

    authorization_url: str
    state: str = field(repr=False)
    verifier: str = field(repr=False)
    redirect_uri: str

    def code_from(self, redirect: str) -> str | None:
        """The authorization code in the URL the browser was sent back to, or ``None`` when it
        is not a successful answer to this attempt (another ``state``, an ``error``, no code)."""
        query = parse_qs(urlsplit(redirect).query)
        states = query.get("state", [])
        codes = query.get("code", [])
        if query.get("error") or len(states) != 1 or len(codes) != 1 or not codes[0]:
            return None
        if not hmac.compare_digest(states[0].encode(), self.state.encode()):
            return None
        return codes[0]


def begin_native_sign_in(
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Iterable[str] | None = None,
    dashboard_url: str | None = None,
) -> NativeSignIn:
    """Start a native sign-in: the ``/authorize`` URL to open and the verifier and state to keep.

    ``dashboard_url`` is where the server's sign-in pages are; a self-hosted server serves them
    itself, so the default is the API URL (``THALOVANT_API_URL``, the config file, or
    ``https://localhost:8443``). It must be https, or http on a loopback host, with no query,
    fragment or credentials. ``redirect_uri`` must be one the server registered for
    ``client_id``.
    """
    from thalovant.control import resolve_api_url

    base = (dashboard_url or resolve_api_url(None)).strip().rstrip("/")
    if base.lower().endswith("/v1"):
        base = base[:-3]
    parts = urlsplit(base)
    loopback_http = parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK
    if not (parts.scheme == "https" or loopback_http) or not parts.hostname:
        raise ValueError(f"dashboard_url must be https (or http on a loopback address), not {base!r}.")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("dashboard_url must not carry a query, a fragment or credentials.")
    wanted = tuple(scopes) if scopes is not None else DEFAULT_NATIVE_SCOPES
    verifier = new_verifier()
    state = secrets.token_urlsafe(24)
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "code_challenge": challenge_for(verifier),
            "code_challenge_method": "S256",
            "scope": " ".join(wanted),
            "state": state,
        }
    )
    return NativeSignIn(f"{base}/authorize?{query}", state, verifier, redirect_uri)


def _device_error(exc: ThalovantAPIError, interval: float) -> ThalovantAPIError:
    """The typed error of a refused device poll (400 with an OAuth ``error``)."""
    problem = exc.problem or {}
    error = problem.get("error") if exc.status_code == 400 else None
    common: dict[str, Any] = {
        "status_code": exc.status_code,
        "code": error if isinstance(error, str) else exc.code,
        "detail": exc.detail,
        "problem": exc.problem,
    }
    if error in ("authorization_pending", "slow_down"):
        told = problem.get("interval")
        if isinstance(told, int | float) and not isinstance(told, bool) and told >= 0:
            interval = float(told)
        elif error == "slow_down":
            interval += SLOW_DOWN_STEP
        return ThalovantDeviceLoginPending("The device sign-in has not been approved yet.", interval=interval, **common)
    if error == "expired_token":
        return ThalovantDeviceLoginExpired("The device sign-in expired; start a new one.", **common)
    if error == "access_denied":
        return ThalovantDeviceLoginDenied("The device sign-in was denied.", **common)
    return exc


class SignInMethods(ApiCalls):
    """Device and native sign-in (async)."""

    def _keep_token(self, answer: Mapping[str, Any]) -> ApiToken:
        token = ApiToken.from_dict(answer)
        self.access_token = token.access_token
        self.token_id = token.token_id
        return token

    async def begin_device_login(
        self, *, scopes: Iterable[str] | None = None, client_name: str | None = None, client_id: str | None = None
    ) -> DeviceAuthorization:
        """Start a device sign-in (``POST /v1/auth/device/authorize``, anonymous). Without
        ``scopes`` the server's default applies (``hubs:read clients:write``; a registered
        app's own scopes for ``client_id``)."""
        body: dict[str, Any] = {}
        wanted = list(scopes) if scopes is not None else []
        if wanted:
            body["scopes"] = wanted
        if client_name is not None:
            body["client_name"] = client_name
        if client_id is not None:
            body["client_id"] = client_id
        answer = await self.request("POST", "/v1/auth/device/authorize", auth=False, json_body=body)
        return DeviceAuthorization.from_dict(answer)

    async def _poll_device(self, authorization: DeviceAuthorization | str) -> dict[str, Any]:
        if isinstance(authorization, DeviceAuthorization):
            device_code, interval = authorization.device_code, authorization.interval
        else:
            device_code, interval = authorization, DEFAULT_DEVICE_INTERVAL
        try:
            answer = await self.request(
                "POST", "/v1/auth/device/token", auth=False, json_body={"device_code": device_code}
            )
        except ThalovantAPIError as exc:
            raise _device_error(exc, interval) from None
        self._keep_token(answer)
        return answer

    async def poll_device_login(self, authorization: DeviceAuthorization | str) -> ApiToken:
        """Poll once (``POST /v1/auth/device/token``). Returns the token once approved (and
        keeps it); raises :class:`ThalovantDeviceLoginPending` (with the interval to wait),
        :class:`ThalovantDeviceLoginExpired` or :class:`ThalovantDeviceLoginDenied`."""
        return ApiToken.from_dict(await self._poll_device(authorization))

    async def describe_device_login(self, user_code: str) -> DeviceLoginRequest:
        """What a pending device sign-in asks for, for the signed-in person about to decide
        (``GET /v1/auth/device/codes/{user_code}``); 404 once it expired or was decided."""
        answer = await self.request("GET", f"/v1/auth/device/codes/{quote(user_code, safe='')}")
        return DeviceLoginRequest.from_dict(answer)

    async def login_with_browser(
        self,
        *,
        scopes: Iterable[str] | None = None,
        client_name: str | None = None,
        open_browser: bool = True,
        prompt: Callable[[dict[str, Any]], None] | None = None,
        timeout: float = 900.0,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """Device sign-in from start to token: tell the person where to go (``prompt`` gets the
        authorization without its device code; else a line is printed), open the browser
        unless ``open_browser`` is false, and poll until approved. Returns the token answer
        and keeps the token. Raises :class:`ThalovantTimeoutError` after ``timeout`` seconds,
        or the denied/expired errors of :meth:`poll_device_login`."""
        grant = await self.begin_device_login(scopes=scopes, client_name=client_name, client_id=client_id)
        shown = {k: v for k, v in grant.as_dict().items() if k != "device_code"}
        if prompt is not None:
            prompt(shown)
        else:
            print(f"To sign in, visit {grant.verification_uri} and enter the code {grant.user_code}", flush=True)
        if open_browser:
            await asyncio.to_thread(webbrowser.open, grant.verification_uri_complete or grant.verification_uri)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = grant.interval
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ThalovantTimeoutError(f"Nobody approved the device sign-in within {timeout:g} s.")
            await asyncio.sleep(min(interval, remaining))
            try:
                return await self._poll_device(dataclasses.replace(grant, interval=interval))
            except ThalovantDeviceLoginPending as pending:
                interval = pending.interval

    async def complete_native_sign_in(
        self, code: str, verifier: str, client_id: str, redirect_uri: str
    ) -> dict[str, Any]:
        """Exchange a native sign-in's code and verifier for an API token
        (``POST /v1/auth/native/token``); keeps the token and returns the token answer."""
        answer = await self.request(
            "POST",
            "/v1/auth/native/token",
            auth=False,
            json_body={"code": code, "code_verifier": verifier, "client_id": client_id, "redirect_uri": redirect_uri},
        )
        self._keep_token(answer)
        return answer

