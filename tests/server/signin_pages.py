"""A person using the server's sign-in pages, driven with httpx (a browser of its own per person).

These helpers do what the browser does with the real forms: read the hidden tokens out of
the page, post the form from the page's origin, and keep the session cookie.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
from tests.server.conftest import PASSWORD, Api

ORIGIN = "https://testserver"


def hidden_value(page: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert found is not None, f"no hidden {name} in page:\n{page[:2000]}"
    return found.group(1).replace("&amp;", "&").replace("&quot;", '"')


@asynccontextmanager
async def browser(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie jar of its own talking to the same app (one person's browser)."""
    transport = httpx.ASGITransport(app=api.app, client=("127.0.0.1", 50001))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        yield http


async def sign_in(
    http: httpx.AsyncClient, email: str, *, path: str = "/activate", password: str = PASSWORD
) -> httpx.Response:
    """Open ``path`` signed out, fill the sign-in form it shows, and post it."""
    page = await http.get(path)
    assert 'id="sign-in"' in page.text, page.text[:1000]
    form = {
        "signin_token": hidden_value(page.text, "signin_token"),
        "next": hidden_value(page.text, "next"),
        "email": email,
        "password": password,
    }
    return await http.post("/sign-in", data=form, headers={"origin": ORIGIN})


async def decide_device(http: httpx.AsyncClient, user_code: str, decision: str) -> httpx.Response:
    """Open the verification page for ``user_code`` (signed in) and press ``decision``."""
    page = await http.get("/activate", params={"user_code": user_code})
    assert page.status_code == 200, page.text[:1000]
    form = {
        "csrf_token": hidden_value(page.text, "csrf_token"),
        "user_code": hidden_value(page.text, "user_code"),
        "decision": decision,
    }
    return await http.post("/activate", data=form, headers={"origin": ORIGIN})


async def decide_native(http: httpx.AsyncClient, authorization_url: str, decision: str) -> httpx.Response:
    """Open a native sign-in's ``/authorize`` URL (signed in) and press ``decision``; the
    answer is the redirect back to the app."""
    parts = urlsplit(authorization_url)
    page = await http.get(f"{parts.path}?{parts.query}")
    assert page.status_code == 200, page.text[:1000]
    names = ("csrf_token", "client_id", "redirect_uri", "response_type", "code_challenge", "code_challenge_method")
    form = {name: hidden_value(page.text, name) for name in (*names, "scope", "state")}
    form["decision"] = decision
    return await http.post("/authorize", data=form, headers={"origin": ORIGIN})
