"""Fixtures of the control-plane tests: an in-process app over SQLite or PostgreSQL.

``database_url`` is parametrized over both backends; the PostgreSQL one comes from the
session's real server (``postgres_url`` in tests/conftest.py, one fresh database per module),
so tests use unique e-mail addresses and slugs instead of assuming an empty database.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from thalovant_server.app import create_app
from thalovant_server.config import ServerConfig
from thalovant_server.secrets import hash_password
from thalovant_server.store import accounts
from thalovant_server.store.directory import StoreDirectory
from thalovant_server.store.engine import Store

PASSWORD = "correct-horse-battery-staple"
_PASSWORD_HASH: str | None = None


def password_hash() -> str:
    """One argon2id hash of :data:`PASSWORD`, reused (hashing costs ~0.1 s)."""
    global _PASSWORD_HASH
    if _PASSWORD_HASH is None:
        _PASSWORD_HASH = hash_password(PASSWORD)
    return _PASSWORD_HASH


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'thalovant.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@dataclass
class Account:
    user_id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    """An in-process server and a client talking to it."""

    app: Any
    http: httpx.AsyncClient
    config: ServerConfig
    accounts: list[Account] = field(default_factory=list)

    @property
    def mqtt_endpoint(self) -> str:
        """``mqtts://127.0.0.1:PORT`` of the app's running broker."""
        return f"mqtts://127.0.0.1:{self.app.state.mqtt_address.port}"

    @property
    def store(self) -> Store:
        store: Store = self.app.state.store
        return store

    def directory(self) -> StoreDirectory:
        """The hub runtime's view of the app's store (as the running server builds it)."""
        directory: StoreDirectory = self.app.state.control.directory()
        return directory

    async def new_user(self, *, email: str | None = None) -> str:
        address = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        async with self.store.session() as session:
            await accounts.create_user(session, email=address, password_hash=password_hash())
        return address

    async def login(self, email: str, *, scope: str | None = None) -> Account:
        body: dict[str, Any] = {"email": email, "password": PASSWORD}
        if scope is not None:
            body["scope"] = scope
        response = await self.http.post("/v1/auth/token", json=body)
        assert response.status_code == 200, response.text
        async with self.store.session() as session:
            user = await accounts.user_by_email(session, email)
        assert user is not None
        return Account(user_id=user.id, email=email, token=response.json()["access_token"])

    async def account(self, *, scope: str | None = None) -> Account:
        return await self.login(await self.new_user(), scope=scope)

    async def create_hub(self, account: Account, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": fields.pop("name", f"hub-{uuid.uuid4().hex[:8]}"),
            "spec": fields.pop("spec", {"version": "1", "skills": ["jokes"]}),
            **fields,
        }
        response = await self.http.post("/v1/hubs", json=body, headers=account.headers)
        assert response.status_code == 201, response.text
        hub: dict[str, Any] = response.json()
        return hub

    async def create_client(self, account: Account, hub_id: str, **fields: Any) -> dict[str, Any]:
        body = {"hub_id": hub_id, "name": fields.pop("name", f"client-{uuid.uuid4().hex[:8]}"), **fields}
        response = await self.http.post("/v1/clients", json=body, headers=account.headers)
        assert response.status_code == 201, response.text
        client: dict[str, Any] = response.json()
        return client


def data_dir_for(database_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory that goes with ``database_url``: its ``server.key`` opens the database's
    sealed secrets, so every app over one PostgreSQL database shares one directory."""
    if database_url.startswith("sqlite"):
        return tmp_path / "data"
    return tmp_path_factory.getbasetemp() / "pg-data" / hashlib.sha256(database_url.encode()).hexdigest()[:16]


@pytest.fixture
async def api(database_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    # The embedded MQTT broker runs in the app, on a free port (read app.state.mqtt_address).
    data_dir = data_dir_for(database_url, tmp_path, tmp_path_factory)
    config = ServerConfig(data_dir=data_dir, database_url=database_url, port=8443, mqtt_port=0)
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            yield Api(app=app, http=http, config=config)
