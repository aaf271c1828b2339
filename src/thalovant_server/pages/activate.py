"""The device verification page (``verification_uri`` of device sign-in): ``/activate``.

``GET /activate[?user_code=...]`` asks a person who is not signed in to sign in first, then
for the code unless the link carried it, then shows the request (app, device, scopes, expiry)
with Approve and Deny. ``POST /activate`` records the decision, once: a code that is unknown,
expired or already decided is refused with a page that says so.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import update
from starlette.responses import Response

from thalovant_server.api.device import describe, display_user_code, live_grant
from thalovant_server.api.problems import ApiProblem
from thalovant_server.api.state import control
from thalovant_server.pages.browser import Visitor, csrf_token, path_with_root, signed_in_post, visitor
from thalovant_server.pages.browser import sign_in_page as _sign_in_page
from thalovant_server.pages.consent import decision_form, request_summary
from thalovant_server.pages.html import esc, page
from thalovant_server.store.models import utcnow
from thalovant_server.store.signin import APPROVED, DENIED, PENDING, DeviceGrant

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
PURPOSE = "activate"


def _code_form(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    problem = f'<p class="error" id="error">{esc(error)}</p>' if error else ""
    body = (
        "<h1>Connect a device</h1>"
        f"{problem}"
        "<p>Enter the code your device shows.</p>"
        f'<form id="enter-code" method="get" action="{esc(path_with_root(request, "/activate"))}">'
        '<label for="user_code">Code</label>'
        '<input id="user_code" name="user_code" type="text" class="code" autocomplete="off" '
        'required maxlength="16" placeholder="XXXX-XXXX">'
        '<button class="primary" type="submit">Continue</button></form>'
    )
    return page("Connect a device", body, status=status)


def _review(request: Request, who: Visitor, grant: DeviceGrant) -> Response:
    shown = describe(grant)
    minutes = max(1, int((grant.expires_at - utcnow()).total_seconds() // 60))
    body = (
        "<h1>Approve this sign-in?</h1>"
        f'<p>Code <span class="code" id="user-code">{esc(shown["user_code"])}</span> '
        f"(expires in about {minutes} minutes)</p>"
        + request_summary(
            app_name=grant.client_name,
            verified=grant.app_id is not None,
            device_name=grant.device_name,
            scopes=grant.scopes,
            signed_in_as=who.email,
        )
        + "<p>Approve only if you started this sign-in on your own device.</p>"
        + decision_form(
            path_with_root(request, "/activate"),
            [("csrf_token", csrf_token(who, PURPOSE)), ("user_code", shown["user_code"])],
        )
    )
    return page("Approve this sign-in?", body)


async def _guessed(request: Request, who: Visitor, user_code: str) -> DeviceGrant | Response | None:
    """The live grant of a typed code, or the page saying this person guessed too often."""
    try:
        return await live_grant(request, user_code, person=who.user_id)
    except ApiProblem as exc:
        body = f'<h1>Too many codes</h1><p class="error" id="error">{esc(exc.detail)}</p>'
        response = page("Too many codes", body, status=exc.status)
        response.headers.update(exc.headers)
        return response


@router.get("/activate")
async def show(request: Request, user_code: str | None = None) -> Response:
    who = await visitor(request)
    current = "/activate" + (f"?{request.url.query}" if request.url.query else "")
    if who is None:
        return _sign_in_page(request, current)
    if not user_code:
        return _code_form(request)
    grant = await _guessed(request, who, user_code[:32])
    if isinstance(grant, Response):
        return grant
    if grant is None:
        return _code_form(request, error="That code is not valid, has expired, or was already used.", status=404)
    return _review(request, who, grant)


@router.post("/activate")
async def decide(request: Request) -> Response:
    checked = await signed_in_post(request, PURPOSE, "/activate")
    if isinstance(checked, Response):
        return checked
    who, form = checked
    decision = form.get("decision")
    if decision not in ("approve", "deny"):
        return page("Request refused", '<p class="error">Choose Approve or Deny.</p>', status=400)
    grant = await _guessed(request, who, form.get("user_code", "")[:32])
    if isinstance(grant, Response):
        return grant
    if grant is None:
        return _code_form(request, error="That code is not valid, has expired, or was already used.", status=404)
    async with control(request).store.session() as session:
        result = await session.execute(
            update(DeviceGrant)
            .where(DeviceGrant.id == grant.id, DeviceGrant.status == PENDING)
            .values(status=APPROVED if decision == "approve" else DENIED, user_id=who.user_id, decided_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    if getattr(result, "rowcount", 0) != 1:
        return _code_form(request, error="That code was already used.", status=409)
    code = esc(display_user_code(grant.user_code))
    if decision == "approve":
        body = (
            '<h1 id="outcome" data-outcome="approved">Device connected</h1>'
            f'<p>You approved the sign-in with code <span class="code">{code}</span>. '
            "You can return to your device.</p>"
        )
        return page("Device connected", body)
    body = (
        '<h1 id="outcome" data-outcome="denied">Sign-in denied</h1>'
        f'<p>The device with code <span class="code">{code}</span> was not given access.</p>'
    )
    return page("Sign-in denied", body)
