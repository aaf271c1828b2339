"""Tokens: every API token expires, a token mints only narrower tokens, revoking needs the scopes,
a password change revokes the other sessions, caller-chosen client passwords must be strong."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.fixtures import legacy
from tests.server.conftest import PASSWORD, Account, Api
from tests.server.test_api_auth import assert_problem

from thalovant_server.secrets import SealingKey
from thalovant_server.store.engine import Store, create_engine
from thalovant_server.store.models import ApiToken, utcnow


def parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


async def mint(api: Api, headers: dict[str, str], status: int = 201, **body: Any) -> dict[str, Any]:
    response = await api.http.post("/v1/auth/api-tokens", json=body, headers=headers)
    assert response.status_code == status, response.text
    created: dict[str, Any] = response.json()
    return created


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {token['access_token']}"}


async def test_api_tokens_expire_by_default_and_never_beyond_the_maximum(api: Api) -> None:
    plane = api.app.state.control
    plane.config = dataclasses.replace(plane.config, api_token_default_days=7, api_token_max_days=30)
    account = await api.account()
    default = await mint(api, account.headers, name="default")
    assert parse(default["expires_at"]) - utcnow() == pytest.approx(dt.timedelta(days=7), abs=dt.timedelta(minutes=1))
    longest = await mint(api, account.headers, expires_in_days=30)
    assert parse(longest["expires_at"]) - utcnow() <= dt.timedelta(days=30)
    refused = await api.http.post("/v1/auth/api-tokens", json={"expires_in_days": 31}, headers=account.headers)
    assert_problem(refused, 422, "Schema validation failed: expires_in_days must be at most 30")
    assert refused.json()["code"] == "invalid_token_lifetime"


async def test_an_expired_token_is_refused(api: Api) -> None:
    account = await api.account()
    token = await mint(api, account.headers, expires_in_days=1)
    assert (await api.http.get("/v1/users/profile", headers=bearer(token))).status_code == 200
    async with api.store.session() as session:
        past = utcnow() - dt.timedelta(seconds=1)
        await session.execute(sa.update(ApiToken).where(ApiToken.id == token["id"]).values(expires_at=past))
    expired = await api.http.get("/v1/users/profile", headers=bearer(token))
    assert_problem(expired, 401, "Could not validate credentials")


async def test_a_token_mints_only_narrower_shorter_lived_tokens(api: Api) -> None:
    account = await api.account()
    parent = await mint(api, account.headers, scopes=["hubs:read", "clients:read"], expires_in_days=10)
    child = await mint(api, bearer(parent), scopes=["hubs:read"], expires_in_days=5)
    assert child["scopes"] == ["hubs:read"]
    wider = await api.http.post("/v1/auth/api-tokens", json={"scopes": ["hubs:write"]}, headers=bearer(parent))
    assert_problem(wider, 403, "Insufficient scopes")
    longer = await api.http.post("/v1/auth/api-tokens", json={"expires_in_days": 11}, headers=bearer(parent))
    assert_problem(longer, 403, "A token cannot mint a token that outlives it")
    assert longer.json()["code"] == "token_outlives_parent"
    # without a lifetime asked for, a child ends when its parent does at the latest
    capped = await mint(api, bearer(child))
    assert parse(capped["expires_at"]) <= parse(child["expires_at"])
    assert capped["scopes"] == ["hubs:read"]
    # a password sign-in stands for the account holder: up to the server's maximum
    assert parse((await mint(api, account.headers, expires_in_days=365))["expires_at"]) > parse(parent["expires_at"])


async def test_revoking_another_token_needs_every_scope_it_holds(api: Api) -> None:
    account = await api.account()
    broad = await mint(api, account.headers)
    narrow = await mint(api, account.headers, scopes=["hubs:read"])
    refused = await api.http.delete(f"/v1/auth/api-tokens/{broad['id']}", headers=bearer(narrow))
    assert_problem(refused, 403, "Insufficient scopes")
    assert (await api.http.get("/v1/users/profile", headers=bearer(broad))).status_code == 200
    # a token may always revoke itself; a broader one may revoke a narrower one
    other_narrow = await mint(api, account.headers, scopes=["hubs:read"])
    assert (await api.http.delete(f"/v1/auth/api-tokens/{narrow['id']}", headers=bearer(narrow))).status_code == 204
    assert (
        await api.http.delete(f"/v1/auth/api-tokens/{other_narrow['id']}", headers=bearer(broad))
    ).status_code == 204
    for gone in (narrow, other_narrow):
        assert (await api.http.get("/v1/users/profile", headers=bearer(gone))).status_code == 401


async def test_a_password_change_revokes_the_other_sessions(api: Api) -> None:
    email = await api.new_user()
    first, second = await api.login(email), await api.login(email)
    token = await mint(api, first.headers, scopes=["hubs:read"])
    url = "/v1/users/password"
    new = "a-new-and-longer-passphrase-" + secrets.token_hex(4)
    wrong = await api.http.post(url, json={"current_password": "not-it", "new_password": new}, headers=first.headers)
    assert_problem(wrong, 403, "Incorrect password")
    weak = await api.http.post(url, json={"current_password": PASSWORD, "new_password": "short"},
                               headers=first.headers)  # fmt: skip
    assert_problem(weak, 422, "Schema validation failed: new_password must be at least 12 characters")
    assert "short" not in weak.text and PASSWORD not in weak.text
    changed = await api.http.post(url, json={"current_password": PASSWORD, "new_password": new},
                                  headers=first.headers)  # fmt: skip
    assert changed.status_code == 204, changed.text
    assert (await api.http.get("/v1/users/profile", headers=first.headers)).status_code == 200
    revoked = await api.http.get("/v1/users/profile", headers=second.headers)
    assert_problem(revoked, 401, "Could not validate credentials")
    assert (await api.http.get("/v1/hubs", headers=bearer(token))).status_code == 200  # API tokens stay
    old = await api.http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    assert (await api.http.post("/v1/auth/token", json={"email": email, "password": new})).status_code == 200


async def test_caller_chosen_client_passwords_must_be_strong(api: Api) -> None:
    owner: Account = await api.account()
    hub = await api.create_hub(owner, name=f"pw-{secrets.token_hex(3)}")
    for weak in ("hunter2-x", "aaaaaaaaaaaaaaaaaaaaaaaa", "abcabcabcabcabcabcabcabc", "1234567890123456"):
        body = {"hub_id": hub["id"], "name": f"weak-{secrets.token_hex(3)}", "spec": {"version": "1", "password": weak}}
        refused = await api.http.post("/v1/clients", json=body, headers=owner.headers)
        assert refused.status_code == 422, (weak, refused.text)
        assert weak not in refused.text
    strong = secrets.token_urlsafe(24)
    made = await api.create_client(owner, hub["id"], spec={"version": "1", "password": strong})
    assert made["initial_identify"]["password"] == strong


async def test_migration_gives_tokens_without_expiry_one(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'thalovant.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(legacy.upgrade_to("0002_mqtt_password_hash"))
    hub = await legacy.insert_hub(engine)
    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                "INSERT INTO api_tokens (id, user_id, kind, name, token_hash, scopes, expires_at, created_at) "
                "VALUES (:id, :user, 'api', 'old', :hash, '[]', NULL, :created)"
            ),
            {"id": str(uuid.uuid4()), "user": hub.owner_id, "hash": "h" * 64, "created": dt.datetime(2026, 1, 1)},
        )
    store = Store(engine)
    try:
        await store.migrate(SealingKey.load_or_create(tmp_path / "data"))
        async with store.session() as session:
            expires = await session.scalar(sa.select(ApiToken.expires_at))
        assert expires is not None and expires - utcnow() > dt.timedelta(days=364)
    finally:
        await store.close()
