"""The data-plane routes of the shared port, under ``/hubs/{hub_id}``: WSS and HTTPS polling.

``mount_data_plane(app, runtime)`` adds the HTTPS polling routes to the ASGI app;
``websocket_route_of(app)`` is the listener's WebSocket route (upgrades do not go through
ASGI). ``runtime`` may be ``None`` when the runtime is only created in the app's lifespan: each
connection or request then uses ``app.state.runtime``.

Routing table::

    WS   /hubs/{hub_id}                       WSS carrier (spec 4.1), the listener's route
    POST /hubs/{hub_id}/connect               HTTPS polling carrier (spec 4.2)
    GET  /hubs/{hub_id}/get_messages
    GET  /hubs/{hub_id}/get_binary_messages
    POST /hubs/{hub_id}/send_message
    POST /hubs/{hub_id}/disconnect
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from thalovant_server.carriers.https import PollingCarrier, idle_timeout_from_env
from thalovant_server.carriers.websocket import Route
from thalovant_server.carriers.wss import websocket_route
from thalovant_server.hub.runtime import HubRuntime

__all__ = ["WSS_PATH", "mount_data_plane", "websocket_route_of"]

WSS_PATH = "/hubs/{hub_id}"


def mount_data_plane(
    app: Any, runtime: HubRuntime | None = None, *, https_idle_timeout: float | None = None
) -> PollingCarrier:
    """Add every hub's HTTPS polling routes to ``app`` (Starlette or FastAPI).

    ``https_idle_timeout`` defaults to ``THALOVANT_HTTPS_IDLE_TIMEOUT``, else 60 s. The polling
    routes go first in the routing table (a poll is the most frequent request of the port);
    their paths are disjoint from the API's. Returns the HTTPS carrier (also at
    ``app.state.https_carrier``).
    """

    def runtime_of(request: Request) -> HubRuntime | None:
        return runtime if runtime is not None else _runtime_of(request.app)

    polling = PollingCarrier(
        runtime_of, idle_timeout=https_idle_timeout if https_idle_timeout is not None else idle_timeout_from_env()
    )
    app.router.routes[0:0] = polling.routes(WSS_PATH)
    app.state.https_carrier = polling
    return polling


def websocket_route_of(app: Any) -> Route:
    """The WSS carrier's route for the listener serving ``app`` (its runtime: ``app.state.runtime``)."""
    return websocket_route(lambda: _runtime_of(app))


def _runtime_of(app: Any) -> HubRuntime | None:
    """``app.state.runtime`` once the app's lifespan made it, else ``None``."""
    live = getattr(app.state, "runtime", None)
    return live if isinstance(live, HubRuntime) else None
