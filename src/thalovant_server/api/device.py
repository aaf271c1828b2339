"""Device sign-in (RFC 8628): ``/v1/auth/device/authorize``, ``/token`` and ``/codes/{user_code}``.

A device asks for a code pair; a person signs in on the server's verification page
(``/activate``, see :mod:`thalovant_server.pages.activate`), sees the requesting app and scopes,
and approves or denies; the device polls ``/token`` meanwhile:

- ``authorization_pending`` while nobody decided; ``slow_down`` (and an interval 5 s longer
  from then on) when a poll comes sooner than the interval after the previous one;
- ``access_denied`` once denied, ``expired_token`` once the code's lifetime is over;
- on approval, a 365-day API token (``tvt_...``) with the approved scopes and its ``token_id``,
  handed out once (a second poll gets ``invalid_grant``); an unknown device code is
  ``invalid_grant`` as well.

A registered app (``client_id``, see :mod:`apps`) is named by the platform and may ask only for
its own scopes; approving it again replaces the token it already holds. Authorizations are
anonymous, so they are limited per client address and in total.
"""

from __future__ import annotations

import datetime as dt
import secrets as _random
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select, update

from thalovant_server.api.apps import DEVICE_DEFAULT_SCOPES, app_registry
from thalovant_server.api.auth import Principal, authenticate
from thalovant_server.api.fields import Scope
from thalovant_server.api.limits import over_limit, spend
from thalovant_server.api.oauth import NO_STORE, OAUTH_ERROR_RESPONSES, IssuedToken, issue_app_token, oauth_error
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.state import control
from thalovant_server.api.views import timestamp
from thalovant_server.secrets import sha256_hex
from thalovant_server.store import signin
from thalovant_server.store.models import utcnow
from thalovant_server.store.signin import APPROVED, DENIED, ISSUED, PENDING, DeviceGrant

__all__ = [
    "USER_CODE_ALPHABET",
    "display_user_code",
    "live_grant",
    "normalise_user_code",
    "router",
    "verification_base",
]

router = APIRouter(prefix="/v1/auth/device", tags=["auth"])

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5
MAX_PENDING = 10_000
AUTHORIZE_PER_ADDRESS = 30
AUTHORIZE_WINDOW = 600.0
GUESSES_PER_PERSON = 20
GUESS_WINDOW = 600.0


class DeviceAuthorizeRequest(BaseModel):
    scopes: list[Scope] | None = Field(default=None, min_length=1, max_length=6)
    client_name: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    client_id: str | None = Field(default=None, min_length=1, max_length=64)


class DeviceAuthorization(BaseModel):
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    interval: int
    expires_in: int


class DeviceTokenRequest(BaseModel):
    device_code: str = Field(min_length=1, max_length=256)
    grant_type: str | None = Field(default=None, max_length=200)
    client_id: str | None = Field(default=None, max_length=64)


class DeviceLoginRequest(BaseModel):
    user_code: str
    scopes: list[str]
    client_name: str | None
    client_id: str | None
    client_verified: bool
    device_name: str | None
    expires_at: str


def normalise_user_code(text: str) -> str | None:
    """The stored form of a typed user code (``wdjb-mjht`` gives ``WDJBMJHT``), or ``None``
    when it cannot be one."""
    code = "".join(ch for ch in text.upper() if ch not in "- ")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


def display_user_code(code: str) -> str:
    half = USER_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def _new_user_code() -> str:
    return "".join(_random.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def verification_base(request: Request) -> str:
    """The origin (and mount path) of the server's pages, ending with ``/``: the public host
    when one is configured, else where this request arrived."""
    config = control(request).config
    if config.public_host:
        return f"https://{config.host_for_url}:{config.advertised_port}/"
    return str(request.base_url)


@router.post(
    "/authorize",
    response_model=None,
    responses={200: {"model": DeviceAuthorization}},
    openapi_extra={"security": []},
)
async def authorize(body: DeviceAuthorizeRequest, request: Request) -> JSONResponse:
    """Start a device sign-in: a device code (secret, for polling) and a user code (for a person)."""
    plane = control(request)
    app = app_registry(request).get(body.client_id)
    if body.client_id is not None and app is None:
        raise ApiProblem(400, "Unknown client.", code="unknown_client")
    if app is not None:
        scopes = tuple(body.scopes) if body.scopes else app.scopes
        if not set(scopes) <= set(app.scopes):
            raise ApiProblem(400, f"{app.name} may ask only for {', '.join(app.scopes)}.", code="invalid_scope")
    else:
        scopes = tuple(body.scopes) if body.scopes else DEVICE_DEFAULT_SCOPES
    spend(
        request,
        "device-authorize",
        request.client.host if request.client else "unknown",
        events=AUTHORIZE_PER_ADDRESS,
        window=AUTHORIZE_WINDOW,
        detail="Too many device sign-ins from this address. Retry later.",
        code="device_rate_limited",
    )
    device_code = _random.token_urlsafe(32)
    config = plane.config
    now = utcnow()
    async with plane.store.session() as session:
        await signin.purge_expired(session)
        pending = await session.scalar(
            select(func.count(DeviceGrant.id)).where(DeviceGrant.status == PENDING, DeviceGrant.expires_at > now)
        )
        if (pending or 0) >= MAX_PENDING:
            raise ApiProblem(503, "Device sign-in is temporarily unavailable.", code="service_unavailable")
        for _attempt in range(8):
            user_code = _new_user_code()
            try:
                await signin.add_device_grant(
                    session,
                    device_code_hash=sha256_hex(device_code),
                    user_code=user_code,
                    app_id=app.client_id if app else None,
                    client_name=app.name if app else body.client_name,
                    device_name=body.client_name,
                    scopes=list(scopes),
                    interval=config.device_interval,
                    expires_at=now + dt.timedelta(seconds=config.device_code_lifetime),
                )
                break
            except signin.UserCodeTaken:
                continue
        else:
            raise ApiProblem(503, "Device sign-in is temporarily unavailable.", code="service_unavailable")
    shown = display_user_code(user_code)
    base = verification_base(request)
    answer = {
        "device_code": device_code,
        "user_code": shown,
        "verification_uri": f"{base}activate",
        "verification_uri_complete": f"{base}activate?user_code={shown}",
        "interval": config.device_interval,
        "expires_in": config.device_code_lifetime,
    }
    return JSONResponse(answer, headers=NO_STORE)


@router.post(
    "/token",
    response_model=None,
    responses={200: {"model": IssuedToken}, **OAUTH_ERROR_RESPONSES},
    openapi_extra={"security": []},
)
async def token(body: DeviceTokenRequest, request: Request) -> JSONResponse:
    """Poll a device sign-in: the token once approved, else an OAuth error (see the module)."""
    plane = control(request)
    now = utcnow()
    async with plane.store.session() as session:
        grant = await signin.device_grant_by_code_hash(session, sha256_hex(body.device_code))
        if grant is None:
            return oauth_error("invalid_grant", "Device code not found.")
        if grant.status == DENIED:
            return oauth_error("access_denied", "The sign-in request was denied.")
        if grant.status == ISSUED:
            return oauth_error("invalid_grant", "This device code was already used.")
        if grant.expired(now):
            return oauth_error("expired_token", "The device code expired. Start the sign-in again.")
        if grant.status == PENDING:
            previous = grant.last_polled_at
            grant.last_polled_at = now
            if previous is not None and (now - previous).total_seconds() < grant.interval:
                grant.interval += SLOW_DOWN_STEP
                return oauth_error("slow_down", "Polling too fast; wait longer between polls.", interval=grant.interval)
            return oauth_error(
                "authorization_pending", "Waiting for the sign-in to be approved.", interval=grant.interval
            )
        assert grant.status == APPROVED and grant.user_id is not None
        claimed = await session.execute(
            update(DeviceGrant)
            .where(DeviceGrant.id == grant.id, DeviceGrant.status == APPROVED)
            .values(status=ISSUED)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return oauth_error("invalid_grant", "This device code was already used.")
        if grant.app_id is not None:
            await signin.revoke_tokens_of_app(session, user_id=grant.user_id, app_id=grant.app_id, keep_grant=grant.id)
        name = grant.client_name or grant.device_name or "Device sign-in"
        _secret, issued, answer = await issue_app_token(session, user_id=grant.user_id, scopes=grant.scopes, name=name)
        await session.execute(
            update(DeviceGrant)
            .where(DeviceGrant.id == grant.id)
            .values(token_id=issued.id)
            .execution_options(synchronize_session=False)
        )
    return JSONResponse(answer, headers=NO_STORE)


async def live_grant(request: Request, user_code: str, *, person: str) -> DeviceGrant | None:
    """The pending, unexpired grant with this (typed) user code, else ``None``.

    Codes are short, so guessing is limited (RFC 8628 5.1): after :data:`GUESSES_PER_PERSON`
    codes that matched nothing within :data:`GUESS_WINDOW` seconds, ``person`` (a user id) and
    the client address get 429 until the window moves on, matching code or not."""
    address = request.client.host if request.client else "unknown"
    keys = (f"person:{person}", f"address:{address}")
    wait = over_limit(request, "device-code-guesses", keys[0], events=GUESSES_PER_PERSON, window=GUESS_WINDOW)
    wait = wait or over_limit(request, "device-code-guesses", keys[1], events=GUESSES_PER_PERSON, window=GUESS_WINDOW)
    if wait is not None:
        raise ApiProblem(
            429,
            "Too many device codes that matched nothing. Retry later.",
            code="device_code_guesses",
            headers={"Retry-After": str(wait)},
            retry_after_seconds=wait,
        )
    code = normalise_user_code(user_code)
    grant = None
    if code is not None:
        async with control(request).store.session() as session:
            grant = await signin.device_grant_by_user_code(session, code)
    if grant is None or grant.status != PENDING or grant.expired():
        for key in keys:
            spend(
                request,
                "device-code-guesses",
                key,
                events=GUESSES_PER_PERSON,
                window=GUESS_WINDOW,
                detail="Too many device codes that matched nothing. Retry later.",
                code="device_code_guesses",
            )
        return None
    return grant


def describe(grant: DeviceGrant) -> dict[str, Any]:
    """What a person deciding on ``grant`` is shown."""
    return {
        "user_code": display_user_code(grant.user_code),
        "scopes": list(grant.scopes),
        "client_name": grant.client_name,
        "client_id": grant.app_id,
        "client_verified": grant.app_id is not None,
        "device_name": grant.device_name,
        "expires_at": timestamp(grant.expires_at),
    }


@router.get("/codes/{user_code}", response_model=None, responses={200: {"model": DeviceLoginRequest}})
async def describe_code(
    request: Request,
    user_code: str = Path(max_length=32),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    """A pending sign-in request, for the signed-in person about to decide on it; a code that is
    unknown, expired or already decided is 404 ``Device code not found`` (and counts as a guess)."""
    grant = await live_grant(request, user_code, person=principal.user_id)
    if grant is None:
        raise ApiProblem(404, "Device code not found")
    return describe(grant)
