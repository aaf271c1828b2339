"""The data-plane routes of the shared port: ``/hubs/{hub_id}`` (WSS).

``mount_data_plane(app, runtime)`` adds them to the ASGI app. ``runtime`` may be ``None``
when the runtime is only created in the app's lifespan: each connection then uses
``app.state.runtime``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from thalovant_server.carriers.wss import serve_websocket
from thalovant_server.hub.runtime import HubRuntime

__all__ = ["WSS_PATH", "mount_data_plane"]

WSS_PATH = "/hubs/{hub_id}"


def mount_data_plane(app: Any, runtime: HubRuntime | None = None) -> None:
    """Add the WSS route of every hub to ``app`` (a Starlette or FastAPI application)."""

    async def hub_websocket(websocket: WebSocket) -> None:
        live = runtime if runtime is not None else getattr(websocket.app.state, "runtime", None)
        if not isinstance(live, HubRuntime):
            with contextlib.suppress(Exception):
                await websocket.close(1013, "hub runtime not ready")
            return
        await serve_websocket(websocket, live)

    app.router.routes.append(WebSocketRoute(WSS_PATH, hub_websocket, name="hub_wss"))
