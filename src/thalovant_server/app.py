"""The ASGI application: ``create_app(config)``.

The lifespan opens the store (running migrations) and exposes ``app.state.store`` and
``app.state.control``; ``app.state.runtime`` is the hub runtime once one is attached (the
control plane calls its ``client_revoked``/``hub_changed`` when set).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from thalovant_server import __version__
from thalovant_server.api import api_router, problems
from thalovant_server.api.ratelimit import LoginLimiter
from thalovant_server.api.state import ControlPlane
from thalovant_server.config import ServerConfig
from thalovant_server.hub.routes import mount_data_plane
from thalovant_server.hub.runtime import HubRuntime
from thalovant_server.secrets import SealingKey
from thalovant_server.store import accounts, idempotency
from thalovant_server.store.directory import StoreDirectory
from thalovant_server.store.engine import Store


@asynccontextmanager
async def open_control_plane(config: ServerConfig) -> AsyncIterator[ControlPlane]:
    """The store (migrated), the sealing key and the limiters of one server."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = await Store.open(config.resolved_database_url)
    try:
        async with store.session() as session:
            await accounts.purge_expired_tokens(session)
            await idempotency.purge_expired(session)
        yield ControlPlane(
            config=config,
            store=store,
            sealing=SealingKey.load_or_create(config.data_dir),
            login_limiter=LoginLimiter(max_failures=config.login_max_failures, window=config.login_window_seconds),
            psk_slots=asyncio.Semaphore(config.psk_concurrency),
        )
    finally:
        await store.close()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with open_control_plane(app.state.config) as plane:
        app.state.control = plane
        app.state.store = plane.store
        app.state.runtime = HubRuntime(StoreDirectory(plane.store))
        try:
            yield
        finally:
            await app.state.runtime.close()


def create_app(config: ServerConfig) -> FastAPI:
    """The whole server as one ASGI app (no redirects, Problem+JSON for every error)."""
    app = FastAPI(
        title="Thalovant control plane",
        version=__version__,
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.runtime = None
    problems.install(app)
    app.include_router(api_router())
    mount_data_plane(app)
    return app
