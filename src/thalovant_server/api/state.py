"""What the routes need from the application, read from ``app.state`` in one place."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request

from thalovant.protocol.noise import KeyPair
from thalovant_server.api.ratelimit import LoginLimiter
from thalovant_server.config import ServerConfig
from thalovant_server.secrets import SealingKey
from thalovant_server.store.directory import StoreDirectory
from thalovant_server.store.engine import Store


class Runtime(Protocol):
    """The hub runtime as the control plane sees it (``app.state.runtime``)."""

    async def client_revoked(self, client_id: str) -> None: ...

    async def hub_changed(self, hub_id: str) -> None: ...


@dataclass
class ControlPlane:
    """The control plane's shared objects (``app.state.control``)."""

    config: ServerConfig
    store: Store
    sealing: SealingKey
    noise_key: KeyPair
    login_limiter: LoginLimiter
    argon2_slots: asyncio.Semaphore
    """Bounds the argon2id work running at once (PSK derivations, password checks; 64 MiB each)."""

    def directory(self) -> StoreDirectory:
        """The hub runtime's view of this server's store (every hub presents :attr:`noise_key`)."""
        return StoreDirectory(self.store, noise_key=self.noise_key, sealing=self.sealing)


def control(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.control
    return plane


def runtime(request: Request) -> Runtime | None:
    found: Any = getattr(request.app.state, "runtime", None)
    return found  # type: ignore[no-any-return]


async def notify_client_revoked(request: Request, client_ids: list[str]) -> None:
    live = runtime(request)
    if live is None:
        return
    for client_id in client_ids:
        await live.client_revoked(client_id)


async def notify_hub_changed(request: Request, hub_id: str) -> None:
    live = runtime(request)
    if live is not None:
        await live.hub_changed(hub_id)
