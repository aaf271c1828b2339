"""More about one hub: its release, ratings and live runtime capabilities (controlplane.md 4.4),
and the check that an identity's carrier is usable by this SDK."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from thalovant.control_base import ApiCalls
from thalovant.errors import ThalovantUnsupportedProtocolError
from thalovant.protocols import canonical_protocol

if TYPE_CHECKING:
    from thalovant.control import BootstrapIdentityResult, SelectedHubEndpoint

__all__ = ["HubExtraMethods"]


def _hub_path(hub_id: str, tail: str) -> str:
    return f"/v1/hubs/{hub_id}/{tail}"


class HubExtraMethods(ApiCalls):
    """Release, rating and runtime capabilities of a hub (async)."""

    async def release_hub(
        self,
        hub_id: str,
        *,
        channel: str | None = None,
        mode: str | None = None,
        version: str | None = None,
        images: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Choose what a hub runs (``POST /v1/hubs/{id}/release``) and return the updated hub.

        Options left out keep the hub's current release (else the workspace default); passing
        ``images`` means ``mode="custom"`` unless a mode is given. Only an administrator may
        name an image outside the platform's repositories (403 ``platform_image_required``)."""
        body: dict[str, Any] = {}
        for key, value in (("channel", channel), ("mode", mode), ("version", version), ("reason", reason)):
            if value is not None:
                body[key] = value
        if images is not None:
            body["images"] = dict(images)
        return await self.request("POST", _hub_path(hub_id, "release"), json_body=body)

    async def set_hub_rating(self, hub_id: str, rating: int) -> dict[str, Any]:
        """Rate a public hub of another workspace from 1 to 5; returns the hub with its
        ``rating_average``, ``rating_count`` and ``my_rating``."""
        return await self.request("PUT", _hub_path(hub_id, "rating"), json_body={"rating": rating})

    async def clear_hub_rating(self, hub_id: str) -> dict[str, Any]:
        """Take back the caller's rating of a hub; returns the hub."""
        return await self.request("DELETE", _hub_path(hub_id, "rating"))

    async def get_hub_runtime_capabilities(self, hub_id: str) -> dict[str, Any]:
        """The skills and intents a hub's runtime answers with. ``source`` says how fresh it is:
        ``ovos-runtime`` is the live runtime; ``ovos-runtime-unavailable`` is read from the hub's
        spec because the runtime could not load the hub."""
        return await self.request("GET", _hub_path(hub_id, "runtime-capabilities"))

    def require_runtime_protocol(
        self, result: BootstrapIdentityResult, *, protocol: str | None = None
    ) -> SelectedHubEndpoint:
        """The carrier a new identity will use (``protocol``, or the one selected at creation)
        after checking the hub enables it with an endpoint, and, for MQTT, that the API
        returned broker credentials; else :class:`ThalovantUnsupportedProtocolError`."""
        from thalovant.control import SelectedHubEndpoint, hub_endpoints

        wanted = canonical_protocol(protocol) if protocol is not None else result.selected_protocol
        if wanted is None:
            raise ThalovantUnsupportedProtocolError(
                f"{protocol!r} is not a carrier of this SDK." if protocol else "The hub exposes no usable carrier."
            )
        flags, endpoints = hub_endpoints(result.hub)
        endpoint = endpoints.get(wanted)
        if not flags.is_enabled(wanted) or not endpoint:
            raise ThalovantUnsupportedProtocolError(f"The hub does not serve {wanted} with an endpoint.")
        if wanted == "mqtt" and result.identity.mqtt is None:
            raise ThalovantUnsupportedProtocolError(
                "MQTT is enabled, but the API did not return client-scoped MQTT broker credentials."
            )
        return SelectedHubEndpoint(wanted, endpoint)

