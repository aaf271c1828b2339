"""JSON shapes of hubs, clients and list pages (what the API answers)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.config import ServerConfig
from thalovant_server.store import ratings
from thalovant_server.store.hub_spec import enabled_protocols
from thalovant_server.store.models import Client, Hub
from thalovant_server.store.ratings import UNRATED, RatingSummary


def timestamp(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` suffix."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def hub_protocols(hub: Hub, config: ServerConfig) -> dict[str, bool]:
    """What the hub serves: its spec's flags, MQTT only when the server runs a broker."""
    flags = enabled_protocols(hub.spec)
    flags["mqtt"] = flags["mqtt"] and config.mqtt_enabled
    return flags


def mqtt_endpoint(config: ServerConfig) -> str:
    """The ``mqtts://host:port`` URL of the server's MQTT broker (the port it actually bound)."""
    return f"mqtts://{config.host_for_url}:{config.mqtt_port}"


def data_plane_endpoints(hub: Hub, config: ServerConfig) -> dict[str, str]:
    """Full URLs of the hub's enabled carriers (never one the hub does not serve)."""
    flags = hub_protocols(hub, config)
    base = f"{config.host_for_url}:{config.advertised_port}"
    endpoints: dict[str, str] = {}
    if flags["wss"]:
        endpoints["wss"] = f"wss://{base}/hubs/{hub.id}"
    if flags["http"]:
        endpoints["https"] = f"https://{base}/hubs/{hub.id}"
    if flags["mqtt"]:
        endpoints["mqtt"] = mqtt_endpoint(config)
    return endpoints


def hub_view(hub: Hub, config: ServerConfig, *, private: bool, rating: RatingSummary = UNRATED) -> dict[str, Any]:
    """A hub resource; ``private`` adds the workspace fields and the etag. ``rating`` is the
    hub's rating summary (only public hubs are rated)."""
    view: dict[str, Any] = {
        "id": hub.id,
        "slug": hub.slug,
        "public_ref": hub.public_ref,
        "name": hub.name,
        "title": hub.title,
        "description": hub.description,
        "visibility": hub.visibility,
        "active": hub.active,
        "domain": hub.domain,
        "spec": hub.spec,
        "data_plane_endpoints": data_plane_endpoints(hub, config),
        "rating_average": rating.average,
        "rating_count": rating.count,
        "created_at": timestamp(hub.created_at),
        "updated_at": timestamp(hub.updated_at),
    }
    if private:
        view.update(
            owner_id=hub.owner_id, workspace_id=hub.workspace_id, runtime_group_id=hub.runtime_group_id, etag=hub.etag
        )
    return view


async def rated_hub_views(
    session: AsyncSession, rows: Sequence[Hub], config: ServerConfig, *, private: bool
) -> list[dict[str, Any]]:
    """:func:`hub_view` of each hub, with its rating summary read in one query."""
    rated = await ratings.summaries(session, [hub.id for hub in rows])
    return [hub_view(hub, config, private=private, rating=rated[hub.id]) for hub in rows]


async def rated_hub_view(session: AsyncSession, hub: Hub, config: ServerConfig, *, private: bool) -> dict[str, Any]:
    """:func:`hub_view` of one hub with its rating summary."""
    return (await rated_hub_views(session, [hub], config, private=private))[0]


def client_spec_view(client: Client) -> dict[str, Any]:
    """The client's spec without secrets: references in place of the access key and password."""
    spec: dict[str, Any] = dict(client.spec_extras)
    spec.update(
        version=str(client.spec_extras.get("version", "1")),
        siteId=client.site_id,
        apiKeyRef={"name": f"client/{client.id}", "key": "access_key"},
        passwordRef={"name": f"client/{client.id}", "key": "password"},
    )
    if client.connection_type is not None:
        spec["connection_type"] = client.connection_type
    return spec


def client_view(client: Client, *, include_spec: bool = True) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": client.id,
        "hub_id": client.hub_id,
        "owner_id": client.owner_id,
        "workspace_id": client.workspace_id,
        "name": client.name,
        "site_id": client.site_id,
        "active": client.active,
        "etag": client.etag,
        "created_at": timestamp(client.created_at),
        "updated_at": timestamp(client.updated_at),
    }
    if include_spec:
        view["spec"] = client_spec_view(client)
    return view


def page_envelope(
    items: Sequence[dict[str, Any]], next_cursor: str | None, *, path: str, query: dict[str, str]
) -> dict[str, Any]:
    """``{"data", "meta": {"count", "next"}, "links": {"next"}}`` with a relative next link."""
    next_link = None
    if next_cursor is not None:
        next_link = f"{path}?{urlencode({**query, 'cursor': next_cursor})}"
    return {
        "data": list(items),
        "meta": {"count": len(items), "next": next_cursor},
        "links": {"next": next_link},
    }
