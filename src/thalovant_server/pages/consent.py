"""The part of a sign-in page that says who asks for what: the app, the device, the scopes."""

from __future__ import annotations

from collections.abc import Sequence

from thalovant_server.pages.html import esc, hidden

__all__ = ["SCOPE_TEXT", "decision_form", "request_summary"]

SCOPE_TEXT = {
    "hubs:read": "See your hubs and their settings",
    "hubs:write": "Create, change and delete your hubs",
    "hubs:inspect": "Inspect the skills and runtime of your hubs",
    "hubs:preview": "Preview your hubs",
    "clients:read": "See your client identities",
    "clients:write": "Create and delete client identities",
}


def request_summary(
    *, app_name: str | None, verified: bool, device_name: str | None, scopes: Sequence[str], signed_in_as: str
) -> str:
    """HTML: the requesting app (verified or not), the device's own label, and the scopes."""
    name = app_name or device_name or "An unnamed application"
    badge = (
        '<span class="verified" id="client-verified">(verified application)</span>'
        if verified
        else '<span class="unverified" id="client-unverified">(name given by the device, not verified)</span>'
    )
    device = (
        f'<p>Device: <strong id="device-name">{esc(device_name)}</strong></p>'
        if device_name and device_name != app_name
        else ""
    )
    items = "".join(
        f'<li data-scope="{esc(scope)}">{esc(SCOPE_TEXT.get(scope, scope))} <code>{esc(scope)}</code></li>'
        for scope in scopes
    )
    return (
        f'<p><strong id="client-name">{esc(name)}</strong> {badge} asks to use your Thalovant account.</p>'
        f"{device}"
        f'<p>It will be able to:</p><ul id="scopes">{items}</ul>'
        f'<p>Signed in as <strong id="signed-in-as">{esc(signed_in_as)}</strong>.</p>'
    )


def decision_form(action: str, fields: Sequence[tuple[str, str]]) -> str:
    """HTML: a form posting ``fields`` plus ``decision=approve`` or ``decision=deny``."""
    return (
        f'<form id="decision" method="post" action="{esc(action)}">{hidden(fields)}'
        '<button class="primary" id="approve" type="submit" name="decision" value="approve">Approve</button>'
        '<button id="deny" type="submit" name="decision" value="deny">Deny</button></form>'
    )
