"""Durable memory and the analytics overview of the workspace (controlplane.md 9 and 10).

Memory items have a ``scope`` (``workspace``, ``hub`` or ``client``), a ``kind``, ``content``,
optionally a ``subject`` (what a hub recalls them by), consent, retention and expiry; deleting
is soft. What a hub's memory skill was told shows up as ``client`` items of kind ``fact``:
correcting or deleting one here changes what the hub recalls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thalovant.control_base import ApiCalls

__all__ = ["MemoryMethods"]

_CAMEL = {
    "ownerId": "owner_id",
    "hubId": "hub_id",
    "clientId": "client_id",
    "consentScope": "consent_scope",
    "consentVersion": "consent_version",
    "retentionPolicy": "retention_policy",
    "expiresAt": "expires_at",
    "clearExpiresAt": "clear_expires_at",
}


def _snake(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {_CAMEL.get(key, key): value for key, value in payload.items()}


class MemoryMethods(ApiCalls):
    """Memory items and the analytics overview (async)."""

    async def list_memory_items(
        self,
        *,
        scope: str | None = None,
        kind: str | None = None,
        owner_id: str | None = None,
        hub_id: str | None = None,
        query: str | None = None,
        include_deleted: bool = False,
        include_expired: bool = False,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """Memory items of the caller's workspaces, newest first, in an offset page
        (``{"data", "meta": {"count", "total", "limit", "offset", "next_offset"}, "links"}``)."""
        params = {
            "scope": scope,
            "kind": kind,
            "owner_id": owner_id,
            "hub_id": hub_id,
            "q": query,
            "include_deleted": include_deleted,
            "include_expired": include_expired,
            "limit": limit,
            "offset": offset,
        }
        return await self.request("GET", "/v1/memory", params=params)

    async def get_memory_summary(self, *, owner_id: str | None = None) -> dict[str, Any]:
        """``total``, ``by_scope``, ``by_kind`` (live items), ``expired`` and ``deleted``."""
        return await self.request("GET", "/v1/memory/summary", params={"owner_id": owner_id})

    async def create_memory_item(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create an item (camelCase keys are accepted and sent as snake_case)."""
        return await self.request("POST", "/v1/memory", json_body=_snake(payload))

    async def get_memory_item(self, memory_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/memory/{memory_id}")

    async def update_memory_item(self, memory_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Correct an item; ``clear_expires_at=True`` removes its expiry."""
        return await self.request("PATCH", f"/v1/memory/{memory_id}", json_body=_snake(payload))

    async def delete_memory_item(self, memory_id: str) -> None:
        """Soft-delete an item (hubs forget it at once)."""
        await self.request("DELETE", f"/v1/memory/{memory_id}")

    async def get_analytics_overview(
        self,
        *,
        range: str | None = None,  # the API's query name
        bucket: str | None = None,
        hub_id: str | None = None,
        client_id: str | None = None,
        country: str | None = None,
        message: str | None = None,
        utterance: str | None = None,
        intent: str | None = None,
        time_start: str | None = None,
        time_end: str | None = None,
        weekday: int | None = None,
        hour: int | None = None,
    ) -> dict[str, Any]:
        """Counts over the workspace's hubs' request log: ``meta``, ``totals``, ``by_intent``,
        ``by_skill``, ``by_carrier``, ``by_kind``, ``buckets`` and ``top_utterances`` (only from
        hubs that record utterances)."""
        params = {
            "range": range,
            "bucket": bucket,
            "hub_id": hub_id,
            "client_id": client_id,
            "country": country,
            "message": message,
            "utterance": utterance,
            "intent": intent,
            "time_start": time_start,
            "time_end": time_end,
            "weekday": weekday,
            "hour": hour,
        }
        return await self.request("GET", "/v1/analytics/overview", params=params)

