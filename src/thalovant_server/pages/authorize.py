"""The browser half of native sign-in: ``/authorize`` (authorization code with PKCE).

An app opens ``/authorize?client_id&redirect_uri&response_type=code&code_challenge
&code_challenge_method=S256&scope&state``. An unknown app or a redirect URI the app did not
register is answered with an error page and never redirected (RFC 6749 4.1.2.1); other
mistakes (another response type, a ``plain`` or missing challenge, a scope the app may not
have) go back to the app as ``error=...``. A signed-in person sees the app and scopes and
approves or denies; the app's redirect URI then receives ``code`` (single use, ten minutes)
or ``error=access_denied``, with ``state`` echoed.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets as _random
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from thalovant_server.api.apps import RegisteredApp, app_registry
from thalovant_server.api.state import control
from thalovant_server.pages.browser import csrf_token, path_with_root, signed_in_post, visitor
from thalovant_server.pages.browser import sign_in_page as _sign_in_page
from thalovant_server.pages.consent import decision_form, request_summary
from thalovant_server.pages.html import esc, page
from thalovant_server.secrets import sha256_hex
from thalovant_server.store import signin
from thalovant_server.store.models import utcnow

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
PURPOSE = "authorize"
CODE_LIFETIME = dt.timedelta(minutes=10)
CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_STATE = 500
PARAMS = ("client_id", "redirect_uri", "response_type", "code_challenge", "code_challenge_method", "scope", "state")


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request."""

    app: RegisteredApp
    redirect_uri: str
    code_challenge: str
    scopes: tuple[str, ...]
    state: str | None

    def fields(self) -> list[tuple[str, str]]:
        out = [
            ("client_id", self.app.client_id),
            ("redirect_uri", self.redirect_uri),
            ("response_type", "code"),
            ("code_challenge", self.code_challenge),
            ("code_challenge_method", "S256"),
            ("scope", " ".join(self.scopes)),
        ]
        if self.state is not None:
            out.append(("state", self.state))
        return out


class _BackToApp(Exception):
    """An error the app hears about through its (validated) redirect URI."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error
        self.description = description

    def response(self) -> Response:
        params = {"error": self.error, "error_description": self.description}
        if self.state is not None:
            params["state"] = self.state
        return back_to_app(self.redirect_uri, params)


class _ErrorPage(Exception):
    """An error shown to the person, with no redirect at all."""

    def response(self) -> Response:
        body = f'<h1>Sign-in stopped</h1><p class="error" id="error">{esc(str(self))}</p>'
        return page("Sign-in stopped", body, status=400)


def back_to_app(redirect_uri: str, params: Mapping[str, str]) -> RedirectResponse:
    """A 303 to ``redirect_uri`` with ``params`` added to its query."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return RedirectResponse(urlunsplit(parts._replace(query=urlencode(query))), status_code=303)


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _validate(request: Request, params: Mapping[str, str]) -> AuthorizationRequest:
    """The request; raises :class:`_ErrorPage` or :class:`_BackToApp` when it cannot be served."""
    app = app_registry(request).get(params.get("client_id"))
    if app is None:
        raise _ErrorPage("The application asking to sign you in is not registered on this server.")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or len(redirect_uri) > 2048 or not app.allows_redirect(redirect_uri):
        raise _ErrorPage(f"{app.name} asked to return to an address it did not register.")
    state = params.get("state")
    if state is not None and len(state) > MAX_STATE:
        state = None
    if params.get("response_type") != "code":
        raise _BackToApp(redirect_uri, state, "unsupported_response_type", "response_type must be code")
    if params.get("code_challenge_method") != "S256":
        raise _BackToApp(redirect_uri, state, "invalid_request", "code_challenge_method must be S256")
    challenge = params.get("code_challenge", "")
    if not CHALLENGE.match(challenge):
        raise _BackToApp(
            redirect_uri, state, "invalid_request", "code_challenge must be the base64url S256 of the verifier"
        )
    requested = set(params.get("scope", "").replace(",", " ").split())
    if not requested <= set(app.scopes):
        raise _BackToApp(redirect_uri, state, "invalid_scope", f"{app.name} may ask only for {' '.join(app.scopes)}")
    scopes = tuple(s for s in app.scopes if s in requested) if requested else app.scopes
    return AuthorizationRequest(app, redirect_uri, challenge, scopes, state)


@router.get("/authorize")
async def show(request: Request) -> Response:
    params = {k: v for k, v in request.query_params.items() if k in PARAMS}
    try:
        wanted = _validate(request, params)
    except (_ErrorPage, _BackToApp) as exc:
        return exc.response()
    who = await visitor(request)
    if who is None:
        return _sign_in_page(request, "/authorize?" + urlencode(wanted.fields()))
    body = (
        f"<h1>Sign in to {esc(wanted.app.name)}?</h1>"
        + request_summary(
            app_name=wanted.app.name, verified=True, device_name=None, scopes=wanted.scopes, signed_in_as=who.email
        )
        + decision_form(
            path_with_root(request, "/authorize"), [("csrf_token", csrf_token(who, PURPOSE)), *wanted.fields()]
        )
    )
    return page(f"Sign in to {wanted.app.name}?", body, form_targets=[_origin(wanted.redirect_uri)])


@router.post("/authorize")
async def decide(request: Request) -> Response:
    checked = await signed_in_post(request, PURPOSE, "/authorize")
    if isinstance(checked, Response):
        return checked
    who, form = checked
    try:
        wanted = _validate(request, {k: v for k, v in form.items() if k in PARAMS})
    except (_ErrorPage, _BackToApp) as exc:
        return exc.response()
    answer: dict[str, str]
    if form.get("decision") == "approve":
        code = _random.token_urlsafe(32)
        async with control(request).store.session() as session:
            await signin.add_authorization_code(
                session,
                code_hash=sha256_hex(code),
                app_id=wanted.app.client_id,
                redirect_uri=wanted.redirect_uri,
                code_challenge=wanted.code_challenge,
                scopes=wanted.scopes,
                user_id=who.user_id,
                expires_at=utcnow() + CODE_LIFETIME,
            )
        answer = {"code": code}
    else:
        answer = {"error": "access_denied", "error_description": "The person denied the sign-in."}
    if wanted.state is not None:
        answer["state"] = wanted.state
    return back_to_app(wanted.redirect_uri, answer)
