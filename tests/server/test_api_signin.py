"""Device sign-in (RFC 8628) and native sign-in (PKCE): the API, the pages and their refusals.

A person is played by httpx posting the pages' real forms (tests/server/signin_pages.py); the
Chromium runs of the same pages are in tests/interop/test_signin_browser.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import update
from tests.server.conftest import Api
from tests.server.signin_pages import ORIGIN, browser, decide_device, decide_native, hidden_value, sign_in
from tests.server.test_api_auth import assert_problem

from thalovant_server.app import create_app
from thalovant_server.config import ServerConfig
from thalovant_server.store.models import utcnow
from thalovant_server.store.signin import AuthorizationCode, DeviceGrant

INTERVAL = 60  # long enough that two polls in a row are always "too fast"


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    config = ServerConfig(
        data_dir=tmp_path / "data", database_url=database_url, mqtt_broker="off", device_interval=INTERVAL
    )
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
            yield Api(app=app, http=http, config=config)


async def authorize(api: Api, **body: Any) -> dict[str, Any]:
    response = await api.http.post("/v1/auth/device/authorize", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    grant: dict[str, Any] = response.json()
    return grant


async def poll(api: Api, device_code: str) -> httpx.Response:
    return await api.http.post("/v1/auth/device/token", json={"device_code": device_code})


def oauth_error(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error_description"] == body["detail"] and body["detail"]
    return str(body["error"])


async def age_grant(api: Api, user_code: str, **values: Any) -> None:
    """Move a grant's clock: what time passing does, without waiting for it."""
    async with api.store.session() as session:
        await session.execute(
            update(DeviceGrant).where(DeviceGrant.user_code == user_code.replace("-", "")).values(**values)
        )


async def test_authorize_answers_codes_and_the_verification_page(api: Api) -> None:
    grant = await authorize(api, client_name="kitchen kiosk")
    assert set(grant) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "interval",
        "expires_in",
    }
    assert len(grant["device_code"]) >= 40
    assert len(grant["user_code"]) == 9 and grant["user_code"][4] == "-"
    assert grant["verification_uri"] == f"{ORIGIN}/activate"
    assert grant["verification_uri_complete"] == f"{ORIGIN}/activate?user_code={grant['user_code']}"
    assert grant["interval"] == INTERVAL and grant["expires_in"] == 900
    account = await api.account()
    described = await api.http.get(f"/v1/auth/device/codes/{grant['user_code']}", headers=account.headers)
    assert described.status_code == 200
    assert described.json() | {"expires_at": None} == {
        "user_code": grant["user_code"],
        "scopes": ["hubs:read", "clients:write"],
        "client_name": "kitchen kiosk",
        "client_id": None,
        "client_verified": False,
        "device_name": "kitchen kiosk",
        "expires_at": None,
    }
    # a typed code is forgiving about case and dashes
    lower = grant["user_code"].lower().replace("-", "")
    assert (await api.http.get(f"/v1/auth/device/codes/{lower}", headers=account.headers)).status_code == 200


async def test_authorize_refusals(api: Api) -> None:
    unknown = await api.http.post("/v1/auth/device/authorize", json={"client_id": "no-such-app"})
    assert assert_problem(unknown, 400, "Unknown client.")["code"] == "unknown_client"
    for body in ({"client_id": ""}, {"scopes": []}, {"scopes": ["hubs:fly"]}, {"client_name": "a\nb"}):
        response = await api.http.post("/v1/auth/device/authorize", json=body)
        assert_problem(response, 422, "Request validation failed")
    extra = await api.http.post(
        "/v1/auth/device/authorize", json={"client_id": "thalovant-home-assistant", "scopes": ["hubs:write"]}
    )
    assert (
        assert_problem(extra, 400, "Home Assistant may ask only for hubs:read, clients:read, clients:write.")["code"]
        == "invalid_scope"
    )


async def test_describe_needs_a_signed_in_person_and_a_live_code(api: Api) -> None:
    grant = await authorize(api)
    anonymous = await api.http.get(f"/v1/auth/device/codes/{grant['user_code']}")
    assert_problem(anonymous, 401, "Could not validate credentials")
    account = await api.account()
    for code in ("BBBB-BBBB", "not-a-code", "X" * 32):
        response = await api.http.get(f"/v1/auth/device/codes/{code}", headers=account.headers)
        assert_problem(response, 404, "Device code not found")
    await age_grant(api, grant["user_code"], expires_at=utcnow() - dt.timedelta(seconds=1))
    expired = await api.http.get(f"/v1/auth/device/codes/{grant['user_code']}", headers=account.headers)
    assert_problem(expired, 404, "Device code not found")


async def test_polling_pending_slow_down_and_expiry(api: Api) -> None:
    grant = await authorize(api)
    assert oauth_error(await poll(api, "not-a-device-code")) == "invalid_grant"
    first = await poll(api, grant["device_code"])
    assert oauth_error(first) == "authorization_pending" and first.json()["interval"] == INTERVAL
    second = await poll(api, grant["device_code"])
    assert oauth_error(second) == "slow_down" and second.json()["interval"] == INTERVAL + 5
    third = await poll(api, grant["device_code"])
    assert oauth_error(third) == "slow_down" and third.json()["interval"] == INTERVAL + 10
    # a device that waited the (longer) interval is pending again, not slowed down
    await age_grant(api, grant["user_code"], last_polled_at=utcnow() - dt.timedelta(seconds=INTERVAL + 10))
    assert oauth_error(await poll(api, grant["device_code"])) == "authorization_pending"
    await age_grant(api, grant["user_code"], expires_at=utcnow() - dt.timedelta(seconds=1))
    expired = await poll(api, grant["device_code"])
    assert oauth_error(expired) == "expired_token"
    assert grant["device_code"] not in expired.text


async def test_approval_on_the_page_issues_one_token(api: Api) -> None:
    grant = await authorize(api, scopes=["hubs:read", "clients:read"], client_name="laptop")
    email = await api.new_user()
    async with browser(api) as person:
        signed_in = await sign_in(person, email, path=f"/activate?user_code={grant['user_code']}")
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == f"/activate?user_code={grant['user_code']}"
        cookie = signed_in.headers["set-cookie"]
        assert "thalovant_session=" in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        review = await person.get(signed_in.headers["location"])
        assert email in review.text and "laptop" in review.text and "clients:read" in review.text
        done = await decide_device(person, grant["user_code"], "approve")
    assert done.status_code == 200 and 'data-outcome="approved"' in done.text
    token = await poll(api, grant["device_code"])
    assert token.status_code == 200, token.text
    answer = token.json()
    assert answer["access_token"].startswith("tvt_") and answer["token_type"] == "bearer"
    assert answer["scopes"] == ["hubs:read", "clients:read"] and answer["token_id"]
    assert answer["expires_in"] == 365 * 86400
    profile = await api.http.get("/v1/users/profile", headers={"authorization": f"Bearer {answer['access_token']}"})
    assert profile.status_code == 200 and profile.json()["data"]["email"] == email
    assert oauth_error(await poll(api, grant["device_code"])) == "invalid_grant"
    account = await api.account()
    decided = await api.http.get(f"/v1/auth/device/codes/{grant['user_code']}", headers=account.headers)
    assert_problem(decided, 404, "Device code not found")


async def test_denial_on_the_page(api: Api) -> None:
    grant = await authorize(api)
    async with browser(api) as person:
        await sign_in(person, await api.new_user())
        done = await decide_device(person, grant["user_code"], "deny")
        assert 'data-outcome="denied"' in done.text
        again = await person.get("/activate", params={"user_code": grant["user_code"]})
        assert again.status_code == 404 and "not valid" in again.text
    assert oauth_error(await poll(api, grant["device_code"])) == "access_denied"
    assert oauth_error(await poll(api, grant["device_code"])) == "access_denied"


async def test_pages_refuse_forged_and_cross_site_posts(api: Api) -> None:
    grant = await authorize(api)
    email = await api.new_user()
    async with browser(api) as person:
        signed_out = await person.post("/activate", data={"user_code": grant["user_code"], "decision": "approve"})
        assert signed_out.status_code == 401 and 'id="sign-in"' in signed_out.text
        wrong = await sign_in(person, email, password="not-the-password")
        assert (
            wrong.status_code == 401
            and "Incorrect" in wrong.text
            and "thalovant_session" not in wrong.headers.get("set-cookie", "")
        )
        no_token = await person.post("/sign-in", data={"email": email, "password": "x"}, headers={"origin": ORIGIN})
        assert no_token.status_code == 403
        await sign_in(person, email)
        page = await person.get("/activate", params={"user_code": grant["user_code"]})
        csrf = hidden_value(page.text, "csrf_token")
        form = {"csrf_token": csrf, "user_code": grant["user_code"], "decision": "approve"}
        other_site = await person.post("/activate", data=form, headers={"origin": "https://evil.example"})
        assert other_site.status_code == 403
        forged = await person.post("/activate", data=form | {"csrf_token": "0" * 64}, headers={"origin": ORIGIN})
        assert forged.status_code == 403
        oversized = await person.post("/activate", content=b"a=" + b"x" * 20000, headers={"origin": ORIGIN})
        assert oversized.status_code == 403
    assert oauth_error(await poll(api, grant["device_code"])) == "authorization_pending"


async def test_pages_escape_what_devices_send_and_lock_themselves_down(api: Api) -> None:
    grant = await authorize(api, client_name='<script>alert("x")</script>')
    async with browser(api) as person:
        await sign_in(person, await api.new_user())
        page = await person.get("/activate", params={"user_code": grant["user_code"]})
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert 'id="client-unverified"' in page.text
    headers = page.headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    assert "<script" not in page.text and "src=" not in page.text


async def test_a_registered_app_holds_one_token_per_person(api: Api) -> None:
    email = await api.new_user()
    tokens: list[str] = []
    async with browser(api) as person:
        await sign_in(person, email)
        for _ in range(2):
            grant = await authorize(api, client_id="thalovant-home-assistant", client_name="HA kitchen")
            page = await person.get("/activate", params={"user_code": grant["user_code"]})
            assert 'id="client-verified"' in page.text and "Home Assistant" in page.text and "HA kitchen" in page.text
            await decide_device(person, grant["user_code"], "approve")
            answer = (await poll(api, grant["device_code"])).json()
            assert answer["scopes"] == ["hubs:read", "clients:read", "clients:write"]
            tokens.append(answer["access_token"])
    first, second = ({"authorization": f"Bearer {token}"} for token in tokens)
    assert_problem(await api.http.get("/v1/users/profile", headers=first), 401, "Could not validate credentials")
    assert (await api.http.get("/v1/users/profile", headers=second)).status_code == 200


# -- native sign-in ------------------------------------------------------------------------


def pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(64)).decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize_url(challenge: str, **overrides: str) -> str:
    params = {
        "client_id": "thalovant-cli",
        "redirect_uri": "http://127.0.0.1:8765/callback",
        "response_type": "code",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "hubs:read clients:read",
        "state": "st-123",
        **overrides,
    }
    return "/authorize?" + urlencode(params)


def redirect_query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text[:500]
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:8765/callback?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def exchange(api: Api, code: str, verifier: str, **overrides: str) -> httpx.Response:
    body = {
        "code": code,
        "code_verifier": verifier,
        "client_id": "thalovant-cli",
        "redirect_uri": "http://127.0.0.1:8765/callback",
        **overrides,
    }
    return await api.http.post("/v1/auth/native/token", json=body)


async def test_native_sign_in_gives_a_token_once_and_a_replay_revokes_it(api: Api) -> None:
    verifier, challenge = pkce()
    async with browser(api) as person:
        await sign_in(person, await api.new_user(), path=authorize_url(challenge))
        answer = redirect_query(await decide_native(person, f"{ORIGIN}{authorize_url(challenge)}", "approve"))
    assert answer["state"] == "st-123" and answer["code"]
    assert oauth_error(await exchange(api, answer["code"], pkce()[0])) == "invalid_grant"  # another verifier
    assert oauth_error(await exchange(api, answer["code"], verifier, redirect_uri="http://127.0.0.1:9/cb")) == (
        "invalid_grant"
    )
    token = await exchange(api, answer["code"], verifier)
    assert token.status_code == 200, token.text
    issued = token.json()
    assert issued["scopes"] == ["hubs:read", "clients:read"] and issued["token_id"]
    auth = {"authorization": f"Bearer {issued['access_token']}"}
    assert (await api.http.get("/v1/users/profile", headers=auth)).status_code == 200
    replay = await exchange(api, answer["code"], verifier)
    assert oauth_error(replay) == "invalid_grant" and "revoked" in replay.json()["detail"]
    assert_problem(await api.http.get("/v1/users/profile", headers=auth), 401, "Could not validate credentials")


async def test_native_denial_and_expired_codes(api: Api) -> None:
    verifier, challenge = pkce()
    async with browser(api) as person:
        await sign_in(person, await api.new_user(), path=authorize_url(challenge))
        denied = redirect_query(await decide_native(person, f"{ORIGIN}{authorize_url(challenge)}", "deny"))
        assert denied["error"] == "access_denied" and denied["state"] == "st-123" and "code" not in denied
        answer = redirect_query(await decide_native(person, f"{ORIGIN}{authorize_url(challenge)}", "approve"))
    async with api.store.session() as session:
        await session.execute(update(AuthorizationCode).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    assert oauth_error(await exchange(api, answer["code"], verifier)) == "invalid_grant"
    assert oauth_error(await exchange(api, "never-issued", verifier)) == "invalid_grant"
    short = await exchange(api, answer["code"], "too-short")
    assert_problem(short, 422, "Request validation failed")


async def test_authorize_page_never_redirects_to_an_unregistered_place(api: Api) -> None:
    _verifier, challenge = pkce()
    async with browser(api) as person:
        await sign_in(person, await api.new_user(), path=authorize_url(challenge))
        for overrides in (
            {"client_id": "no-such-app"},
            {"redirect_uri": "https://evil.example/callback"},
            {"redirect_uri": "http://127.0.0.1:8765/other"},
            {"redirect_uri": "http://user@127.0.0.1:8765/callback"},
        ):
            page = await person.get(authorize_url(challenge, **overrides))
            assert page.status_code == 400 and 'id="error"' in page.text, overrides
            assert "location" not in page.headers
        # a loopback redirect URI may use any port (RFC 8252 7.3)
        other_port = await person.get(authorize_url(challenge, redirect_uri="http://127.0.0.1:40123/callback"))
        assert other_port.status_code == 200 and 'id="approve"' in other_port.text
        for overrides, error in (
            ({"code_challenge_method": "plain"}, "invalid_request"),
            ({"code_challenge": "short"}, "invalid_request"),
            ({"response_type": "token"}, "unsupported_response_type"),
            ({"scope": "hubs:write"}, "invalid_scope"),
        ):
            refused = redirect_query(await person.get(authorize_url(challenge, **overrides)))
            assert refused["error"] == error and refused["state"] == "st-123", overrides


async def test_guessing_user_codes_is_limited(api: Api) -> None:
    grant = await authorize(api)
    guesser = await api.account()
    for _ in range(20):
        response = await api.http.get("/v1/auth/device/codes/BBBB-BBBB", headers=guesser.headers)
        assert_problem(response, 404, "Device code not found")
    limited = await api.http.get(f"/v1/auth/device/codes/{grant['user_code']}", headers=guesser.headers)
    problem = assert_problem(limited, 429, "Too many device codes that matched nothing. Retry later.")
    assert problem["code"] == "device_code_guesses" and int(limited.headers["retry-after"]) >= 1
    async with browser(api) as person:  # the page counts the same guesses (same address)
        await sign_in(person, await api.new_user())
        page = await person.get("/activate", params={"user_code": grant["user_code"]})
    assert page.status_code == 429 and "Too many device codes" in page.text
