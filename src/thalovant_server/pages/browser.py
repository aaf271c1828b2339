"""Who is signed in on the server's pages, and the protections of their forms.

A person signs in with their e-mail address and password (the same accounts, the same
argon2id check and the same failure limiter as ``POST /v1/auth/token``); the server then keeps
a browser session: a random token in an ``HttpOnly``, ``SameSite=Lax`` cookie (``Secure``
over HTTPS), stored only as SHA-256. That cookie is never a credential of the ``/v1`` API.

Every form that changes something carries a CSRF token derived from the session secret
(HMAC-SHA256, so a page of another site cannot know it) and is refused when the browser's
``Origin`` names another origin. The sign-in form itself, which has no session yet, uses a
double-submitted random token (a cookie and a form field that must agree).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import secrets as _random
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from thalovant_server.api.state import control
from thalovant_server.pages.html import esc, hidden, page
from thalovant_server.secrets import constant_time_equal, sha256_hex, verify_password
from thalovant_server.store import accounts, signin
from thalovant_server.store.models import utcnow

__all__ = [
    "SESSION_COOKIE",
    "FormRefused",
    "Visitor",
    "csrf_token",
    "path_with_root",
    "read_form",
    "refused_page",
    "require_form",
    "sign_in",
    "sign_in_page",
    "signed_in_post",
    "visitor",
]

SESSION_COOKIE = "thalovant_session"
SIGNIN_COOKIE = "thalovant_signin"
SESSION_LIFETIME = dt.timedelta(hours=8)
MAX_FORM_BYTES = 16 * 1024
NEXT_PATHS = ("/activate", "/authorize")


class FormRefused(Exception):
    """A form post that must not be acted on (bad CSRF token, foreign origin, too large)."""


@dataclass(frozen=True)
class Visitor:
    """The person signed in on this browser."""

    user_id: str
    email: str
    display_name: str
    session_token: str


def path_with_root(request: Request, path: str) -> str:
    """``path`` under the application's mount path (for links and redirects)."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return root + path


def csrf_token(visitor: Visitor, purpose: str) -> str:
    """The CSRF token of ``visitor``'s forms for ``purpose`` (e.g. ``activate``)."""
    mac = hmac.new(visitor.session_token.encode("utf-8"), f"csrf:{purpose}".encode(), hashlib.sha256)
    return mac.hexdigest()


async def visitor(request: Request) -> Visitor | None:
    """The signed-in person of this request, from the session cookie; ``None`` if nobody."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > 256:
        return None
    async with control(request).store.session() as session:
        row = await signin.browser_session_by_hash(session, sha256_hex(token))
        user = await accounts.user_by_id(session, row.user_id) if row is not None else None
    if user is None:
        return None
    return Visitor(user_id=user.id, email=user.email, display_name=user.display_name, session_token=token)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # no Origin (an old browser, a non-browser client): the CSRF token alone decides;
        # "null" is what a sandboxed or privacy-mode origin sends, never this site's pages
        return origin is None
    expected = f"{request.url.scheme}://{request.url.netloc}"
    return origin.rstrip("/") == expected


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (at most 16 KiB; the first value of each name)."""
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise FormRefused("form too large")
        chunks.append(chunk)
    fields: dict[str, str] = {}
    for name, value in parse_qsl(b"".join(chunks).decode("utf-8", errors="replace"), keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


async def require_form(request: Request, who: Visitor, purpose: str) -> dict[str, str]:
    """The form of a state-changing POST by ``who``, after the origin and CSRF checks."""
    if not _same_origin(request):
        raise FormRefused("cross-origin form post")
    form = await read_form(request)
    if not constant_time_equal(form.get("csrf_token", ""), csrf_token(who, purpose)):
        raise FormRefused("CSRF token mismatch")
    return form


async def signed_in_post(request: Request, purpose: str, back_to: str) -> tuple[Visitor, dict[str, str]] | Response:
    """``(visitor, form)`` of a state-changing POST that passed the checks, else the page to
    answer: the sign-in form (no session, coming back to ``back_to``) or the refusal."""
    who = await visitor(request)
    if who is None:
        return sign_in_page(request, back_to, error="Your session ended; sign in again.", status=401)
    try:
        return who, await require_form(request, who, purpose)
    except FormRefused:
        return refused_page()


def refused_page() -> Response:
    """The answer to a form post that failed the origin or CSRF checks."""
    return page("Request refused", '<p class="error">This form was not sent from this page.</p>', status=403)


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path of one of the sign-in pages, nothing else."""
    if not raw:
        return "/activate"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or parts.path not in NEXT_PATHS:
        return "/activate"
    return parts.path + (f"?{parts.query}" if parts.query else "")


def sign_in_page(request: Request, next_path: str, *, error: str | None = None, status: int = 200) -> Response:
    """The sign-in form; sets the double-submit cookie its post must echo."""
    token = _random.token_urlsafe(24)
    problem = f'<p class="error">{esc(error)}</p>' if error else ""
    body = (
        "<h1>Sign in to Thalovant</h1>"
        "<p>Sign in to review the request waiting for you.</p>"
        f"{problem}"
        f'<form id="sign-in" method="post" action="{esc(path_with_root(request, "/sign-in"))}">'
        f"{hidden([('signin_token', token), ('next', next_path)])}"
        '<label for="email">E-mail address</label>'
        '<input id="email" name="email" type="email" autocomplete="username" required maxlength="320">'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password" required '
        'maxlength="1024">'
        '<button class="primary" type="submit">Sign in</button></form>'
    )
    response = page("Sign in", body, status=status)
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=path_with_root(request, "/sign-in"),
    )
    return response


async def sign_in(request: Request) -> Response:
    """``POST /sign-in``: check the password, open a browser session, go on to ``next``."""
    if not _same_origin(request):
        raise FormRefused("cross-origin form post")
    form = await read_form(request)
    next_path = safe_next(form.get("next"))
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not constant_time_equal(form.get("signin_token", ""), expected):
        raise FormRefused("sign-in token mismatch")
    plane = control(request)
    email = accounts.normalise_email(form.get("email", ""))[:320]
    password = form.get("password", "")[:1024]
    account_key = f"account:{email}"
    address_key = f"address:{request.client.host if request.client else 'unknown'}"
    wait = plane.login_limiter.retry_after(account_key, address_key)
    if wait is not None:
        return sign_in_page(
            request, next_path, error=f"Too many failed sign-ins. Try again in {wait} seconds.", status=429
        )
    async with plane.store.session() as session:
        user = await accounts.user_by_email(session, email) if email else None
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
    if not ok or user is None:
        plane.login_limiter.failed(account_key, address_key)
        return sign_in_page(request, next_path, error="Incorrect e-mail address or password.", status=401)
    plane.login_limiter.succeeded(account_key)
    token = _random.token_urlsafe(32)
    async with plane.store.session() as session:
        await signin.add_browser_session(
            session, user_id=user.id, token_hash=sha256_hex(token), expires_at=utcnow() + SESSION_LIFETIME
        )
    response = RedirectResponse(path_with_root(request, next_path), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=path_with_root(request, "/") or "/",
    )
    response.delete_cookie(SIGNIN_COOKIE, path=path_with_root(request, "/sign-in"))
    return response
