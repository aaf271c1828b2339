"""Sign-in, bearer tokens, scopes, the login limiter and API tokens (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from tests.server.conftest import PASSWORD, Api

from thalovant_server.api.ratelimit import LoginLimiter
from thalovant_server.store.models import ApiToken

PROBLEM = "application/problem+json"


def assert_problem(response: object, status: int, detail: str) -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["detail"] == detail
    assert str(body["instance"]).startswith("urn:problem:")
    assert isinstance(body["title"], str) and body["title"]
    return dict(body)


async def test_login_answers_a_session_token_without_token_id(api: Api) -> None:
    email = await api.new_user()
    response = await api.http.post("/v1/auth/token", json={"email": email.upper(), "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["expires_at"].endswith("Z")
    assert "token_id" not in body
    assert set(body["scopes"]) == {
        "hubs:read",
        "hubs:write",
        "hubs:inspect",
        "hubs:preview",
        "clients:read",
        "clients:write",
    }
    profile = await api.http.get("/v1/users/profile", headers={"authorization": f"Bearer {body['access_token']}"})
    assert profile.status_code == 200
    data = profile.json()["data"]
    assert data["email"] == email
    assert set(data) >= {"id", "email", "display_name", "role"}


async def test_wrong_credentials_are_401_problems(api: Api) -> None:
    email = await api.new_user()
    wrong = await api.http.post("/v1/auth/token", json={"email": email, "password": "not-it"})
    assert_problem(wrong, 401, "Incorrect email or password")
    unknown = await api.http.post("/v1/auth/token", json={"email": "nobody@example.com", "password": PASSWORD})
    assert_problem(unknown, 401, "Incorrect email or password")


async def test_missing_or_bad_bearer_is_401(api: Api) -> None:
    for headers in ({}, {"authorization": "Bearer tvpat_unknown"}, {"authorization": "Basic abc"}):
        response = await api.http.get("/v1/hubs", headers=headers)
        assert_problem(response, 401, "Could not validate credentials")
        assert response.headers["www-authenticate"] == "Bearer"
    assert_problem(await api.http.get("/v1/users/profile"), 401, "Could not validate credentials")


async def test_expired_session_token_is_refused(api: Api) -> None:
    account = await api.account()
    async with api.store.session() as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == account.user_id)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert_problem(await api.http.get("/v1/hubs", headers=account.headers), 401, "Could not validate credentials")


async def test_scopes_gate_routes(api: Api) -> None:
    reader = await api.account(scope="hubs:read")
    assert (await api.http.get("/v1/hubs", headers=reader.headers)).status_code == 200
    create = await api.http.post("/v1/hubs", json={"name": "x", "spec": {"version": "1"}}, headers=reader.headers)
    assert_problem(create, 403, "Insufficient scopes")
    clients = await api.http.get("/v1/clients", headers=reader.headers)
    assert_problem(clients, 403, "Insufficient scopes")
    new_client = await api.http.post("/v1/clients", json={"hub_id": "x", "name": "y"}, headers=reader.headers)
    assert_problem(new_client, 403, "Insufficient scopes")


async def test_unknown_scope_is_refused(api: Api) -> None:
    email = await api.new_user()
    response = await api.http.post(
        "/v1/auth/token", json={"email": email, "password": PASSWORD, "scope": "hubs:everything"}
    )
    body = assert_problem(
        response,
        422,
        "Schema validation failed: 'hubs:everything' is not one of "
        "['hubs:read', 'hubs:write', 'hubs:inspect', 'hubs:preview', 'clients:read', 'clients:write']",
    )
    assert body["code"] == "invalid_scope"


async def test_login_backs_off_per_account_with_a_growing_retry_after(api: Api) -> None:
    now = [1000.0]
    api.app.state.control.login_limiter = LoginLimiter(free_failures=5, max_delay=300, clock=lambda: now[0])
    email = await api.new_user()
    for _ in range(5):
        response = await api.http.post("/v1/auth/token", json={"email": email, "password": "wrong"})
        assert response.status_code == 401
    waits = []
    for _ in range(4):
        limited = await api.http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        body = assert_problem(limited, 429, "Too many failed sign-in attempts. Retry later.")
        assert limited.headers["retry-after"] == str(body["retry_after_seconds"])
        waits.append(body["retry_after_seconds"])
        now[0] += body["retry_after_seconds"]
        again = await api.http.post("/v1/auth/token", json={"email": email, "password": "wrong"})
        assert again.status_code == 401  # one attempt per back-off period
    assert waits == [1, 2, 4, 8]
    now[0] += 16
    assert (await api.http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})).status_code == 200


async def test_login_limit_per_client_address(api: Api) -> None:
    now = [50.0]
    api.app.state.control.login_limiter = LoginLimiter(free_failures=5, max_delay=60, clock=lambda: now[0])
    for index in range(5):
        response = await api.http.post(
            "/v1/auth/token", json={"email": f"ghost{index}@example.com", "password": "wrong"}
        )
        assert response.status_code == 401
    email = await api.new_user()
    limited = await api.http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) == limited.json()["retry_after_seconds"] == 1


async def test_api_tokens_create_list_use_and_revoke(api: Api) -> None:
    account = await api.account()
    created = await api.http.post(
        "/v1/auth/api-tokens", json={"name": "ci", "scopes": ["hubs:read"]}, headers=account.headers
    )
    assert created.status_code == 201
    token = created.json()
    assert token["access_token"].startswith("tvpat_")
    assert token["token_id"] == token["id"]
    assert token["scopes"] == ["hubs:read"]
    listed = await api.http.get("/v1/auth/api-tokens", headers=account.headers)
    assert listed.status_code == 200
    entries = listed.json()["data"]
    assert [entry["id"] for entry in entries] == [token["id"]]
    assert token["access_token"] not in listed.text
    pat = {"authorization": f"Bearer {token['access_token']}"}
    assert (await api.http.get("/v1/hubs", headers=pat)).status_code == 200
    assert_problem(
        await api.http.post("/v1/auth/api-tokens", json={"scopes": ["hubs:write"]}, headers=pat),
        403,
        "Insufficient scopes",
    )
    missing = await api.http.delete("/v1/auth/api-tokens/00000000-0000-0000-0000-000000000000", headers=pat)
    assert_problem(missing, 404, "API token not found")
    revoked = await api.http.delete(f"/v1/auth/api-tokens/{token['id']}", headers=pat)
    assert revoked.status_code == 204
    assert revoked.content == b""
    assert_problem(await api.http.get("/v1/hubs", headers=pat), 401, "Could not validate credentials")


async def test_another_users_token_cannot_be_revoked(api: Api) -> None:
    alice, bob = await api.account(), await api.account()
    created = await api.http.post("/v1/auth/api-tokens", json={}, headers=alice.headers)
    token_id = created.json()["token_id"]
    assert_problem(
        await api.http.delete(f"/v1/auth/api-tokens/{token_id}", headers=bob.headers), 404, "API token not found"
    )
    alice_pat = {"authorization": f"Bearer {created.json()['access_token']}"}
    assert (await api.http.get("/v1/users/profile", headers=alice_pat)).status_code == 200
