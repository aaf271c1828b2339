"""The control-plane calls about what hubs run: operations, hub skills, runtime groups, marketplace.

:class:`AsyncRuntimeControl` holds the implementation; ``AsyncThalovantControlPlane`` inherits
it and ``ThalovantControlPlane`` has the generated sync twin of each method
(:mod:`thalovant.runtime.twin`).

Hub-skill commands answer at once with the accepted operation (``wait=False``) or, with
``wait=True``, poll it every 2 s until it is ``ready`` (``state`` then ``installed`` or
``removed``) or fails (``ThalovantAPIError`` with the operation's message). A change applies
to every hub of the hub's runtime group, live.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from thalovant.errors import (
    ThalovantAdmissionFailedError,
    ThalovantAdmissionTimeoutError,
    ThalovantAPIError,
    ThalovantTimeoutError,
)
from thalovant.hub_skills import HubSkillList, HubSkillOperation, HubSkillOperationState
from thalovant.operations import OperationResource, operation_id_of, operation_path, wait_for

if TYPE_CHECKING:
    from thalovant.control import BootstrapIdentityResult

__all__ = ["AsyncRuntimeControl", "deep_merge"]

T = TypeVar("T")

SKILL_POLL_SECONDS = 2.0
CONFIG_ATTEMPTS = 3
_REVISION = re.compile(r"^[0-9a-f]{64}$")


def deep_merge(base: Mapping[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``delta`` merged in: mappings key by key, anything else (lists too) replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in delta.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _hub_skills_path(hub_id: str, skill: str | None = None) -> str:
    path = f"/v1/hubs/{quote(str(hub_id), safe='')}/skills"
    return path if skill is None else f"{path}/{quote(str(skill), safe='')}"


class AsyncRuntimeControl:
    """Operations, hub skills, runtime groups and the marketplace (asyncio)."""

    api_url: str

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        raise NotImplementedError  # the control-plane client provides it

    # -- operations ----------------------------------------------------------------------------

    async def get_operation(self, operation_id: str) -> OperationResource:
        """One read of an operation."""
        return OperationResource.from_dict(await self.request("GET", operation_path(str(operation_id))))

    async def _read(self, path: str, timeout: float) -> dict[str, Any]:
        return await self.request("GET", path, timeout=timeout)

    async def wait_for_operation(
        self,
        operation: OperationResource | Mapping[str, Any] | str,
        *,
        timeout: float = 120.0,
        poll_interval: float = 2.0,
    ) -> OperationResource:
        """Poll until the operation is ``ready`` and return it; ``failed`` or ``timed_out`` raise
        ``ThalovantAPIError`` with its code and message; ``ThalovantTimeoutError`` at ``timeout``."""
        operation_id = operation_id_of(operation, self.api_url)
        done = await wait_for(self._read, operation_id, timeout=timeout, poll_interval=poll_interval)
        assert done is not None
        if done.status != "ready":
            message = done.error_message or done.error_code or done.status
            raise ThalovantAPIError(
                f"Operation {done.id} {done.status}: {message}", code=done.error_code, detail=message
            )
        return done

    async def wait_for_admission(
        self,
        connection: BootstrapIdentityResult | OperationResource | Mapping[str, Any] | str | None,
        *,
        timeout: float = 180.0,
        poll_interval: float = 2.0,
    ) -> None:
        """Wait until a new client identity is admitted (its ``client.sync`` operation is ready).

        Returns at once when there is no operation to wait for; an operation the API no longer
        tracks (404) counts as admitted. Raises ``ThalovantAdmissionFailedError`` or
        ``ThalovantAdmissionTimeoutError``.
        """
        target: OperationResource | Mapping[str, Any] | str | None
        if connection is None or isinstance(connection, OperationResource | str | Mapping):
            target = connection
        else:
            target = connection.operation
        if target is None or (isinstance(target, Mapping) and not target):
            return
        operation_id = operation_id_of(target, self.api_url)
        try:
            done = await wait_for(
                self._read, operation_id, timeout=timeout, poll_interval=poll_interval, not_found_is_done=True
            )
        except ThalovantTimeoutError:
            raise ThalovantAdmissionTimeoutError(
                f"The client was not admitted within {timeout:g} s; it may still admit it later."
            ) from None
        except ThalovantAPIError as exc:
            raise ThalovantAdmissionFailedError(
                f"Could not follow the admission of the client: {exc.message}",
                status_code=exc.status_code,
                code=exc.code,
                detail=exc.detail,
                problem=exc.problem,
            ) from None
        if done is not None and done.status != "ready":
            raise ThalovantAdmissionFailedError(
                f"The client was not admitted: {done.error_message or done.error_code or done.status}",
                error_code=done.error_code,
            )

    # -- hub skills ----------------------------------------------------------------------------

    async def list_hub_skills(self, hub_id: str) -> HubSkillList:
        """The hub's skills and their state (``hubs:inspect``)."""
        return HubSkillList.from_dict(await self.request("GET", _hub_skills_path(hub_id)))

    async def list_hub_skill_history(self, hub_id: str, *, limit: int = 50) -> dict[str, Any]:
        """The hub's skill history, newest first (``limit`` 1-200)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
            raise ValueError("limit must be an integer from 1 to 200")
        return await self.request("GET", _hub_skills_path(hub_id) + "/history", params={"limit": limit})

    async def install_hub_skill(
        self, hub_id: str, skill: str, *, version: str = "latest", wait: bool = False, timeout: float = 120.0
    ) -> HubSkillOperation:
        """Install a skill on the hub's runtime group (every hub of it)."""
        body = await self.request("POST", _hub_skills_path(hub_id), json_body={"skill": skill, "version": version})
        return await self._accepted(body, wait, timeout)

    async def update_hub_skill(
        self, hub_id: str, skill: str, *, version: str, wait: bool = False, timeout: float = 120.0
    ) -> HubSkillOperation:
        """Move an installed skill to another version."""
        body = await self.request("PATCH", _hub_skills_path(hub_id, skill), json_body={"version": version})
        return await self._accepted(body, wait, timeout)

    async def remove_hub_skill(
        self, hub_id: str, skill: str, *, wait: bool = False, timeout: float = 120.0
    ) -> HubSkillOperation:
        """Remove a skill from the hub's runtime group."""
        body = await self.request("DELETE", _hub_skills_path(hub_id, skill))
        return await self._accepted(body, wait, timeout)

    async def _accepted(self, body: Mapping[str, Any], wait: bool, timeout: float) -> HubSkillOperation:
        accepted = HubSkillOperation.from_dict(body)
        if not wait:
            return accepted
        deadline = time.monotonic() + timeout
        path = operation_path(accepted.operation_id)
        while True:
            try:
                current = OperationResource.from_dict(
                    await self.request("GET", path, timeout=max(0.001, deadline - time.monotonic()))
                )
            except ThalovantAPIError as exc:
                raise ThalovantAPIError(
                    f"Could not read accepted hub skill operation {accepted.operation_id}: {exc.message}",
                    status_code=exc.status_code,
                    code=exc.code,
                    detail=exc.detail,
                    problem=exc.problem,
                ) from None
            if current.status == "ready":
                state: HubSkillOperationState = "removed" if accepted.state == "removing" else "installed"
                return HubSkillOperation(
                    accepted.operation_id,
                    accepted.skill,
                    accepted.version,
                    state,
                    accepted.hub_id,
                    accepted.runtime_group_id,
                    accepted.previous_version,
                    current,
                )
            if current.status in ("failed", "timed_out"):
                message = current.error_message or current.error_code or current.status
                raise ThalovantAPIError(
                    f"Hub skill {accepted.skill} {current.status}: {message}", code=current.error_code, detail=message
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ThalovantTimeoutError(
                    f"Hub skill operation {accepted.operation_id} did not finish within {timeout:g} s."
                )
            await asyncio.sleep(min(SKILL_POLL_SECONDS, remaining))

    # -- runtime groups ------------------------------------------------------------------------

    async def list_runtime_groups(self, *, owner_id: str | None = None) -> dict[str, Any]:
        return await self.request("GET", "/v1/runtime-groups", params={"owner_id": owner_id})

    async def get_runtime_group(self, runtime_group_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/runtime-groups/{runtime_group_id}")

    async def create_runtime_group(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A new group (``name``; optionally ``description``, ``environment``, ``clone_from_default``)."""
        return await self.request("POST", "/v1/runtime-groups", json_body=dict(payload))

    async def update_runtime_group(self, runtime_group_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", f"/v1/runtime-groups/{runtime_group_id}", json_body=dict(payload))

    async def delete_runtime_group(self, runtime_group_id: str) -> None:
        await self.request("DELETE", f"/v1/runtime-groups/{runtime_group_id}")

    async def get_runtime_group_config(self, runtime_group_id: str) -> dict[str, Any]:
        """``revision``, ``runtime_group_id``, ``config`` and ``personas``."""
        return await self.request("GET", f"/v1/runtime-groups/{runtime_group_id}/config")

    async def update_runtime_group_config(
        self,
        runtime_group_id: str,
        config: Mapping[str, Any],
        *,
        personas: Mapping[str, Any] | None = None,
        merge: bool = True,
    ) -> dict[str, Any]:
        """Change a group's configuration (the API replaces it; it does not merge).

        ``merge=True`` reads the current configuration, deep-merges ``config`` into it and
        writes it back under the read revision; when someone else wrote in between (412) it
        reads and merges again, up to three writes. ``merge=False`` replaces the whole config.
        ``personas`` are replaced only when given.
        """
        path = f"/v1/runtime-groups/{runtime_group_id}/config"
        if not merge:
            body: dict[str, Any] = {"config": dict(config)}
            if personas is not None:
                body["personas"] = dict(personas)
            return await self.request("PATCH", path, json_body=body)
        for attempt in range(CONFIG_ATTEMPTS):
            current = await self.request("GET", path)
            revision, stored = current.get("revision"), current.get("config")
            if not isinstance(revision, str) or not _REVISION.match(revision) or not isinstance(stored, Mapping):
                raise ThalovantAPIError(
                    "This API does not support safe configuration merges; pass merge=False to replace the config."
                )
            body = {"config": deep_merge(stored, config), "expected_revision": revision}
            if personas is not None:
                body["personas"] = dict(personas)
            try:
                return await self.request("PUT", path, json_body=body)
            except ThalovantAPIError as exc:
                if exc.status_code != 412 or attempt == CONFIG_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def release_runtime_group(
        self,
        runtime_group_id: str,
        *,
        channel: str | None = None,
        mode: str | None = None,
        version: str | None = None,
        images: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        options = {"channel": channel, "mode": mode, "version": version, "reason": reason}
        body: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        if images is not None:
            body["images"] = dict(images)
        return await self.request("POST", f"/v1/runtime-groups/{runtime_group_id}/release", json_body=body)

    async def install_runtime_group_skill(
        self,
        runtime_group_id: str,
        skill_id: str,
        *,
        marketplace_skill_id: str | None = None,
        source_type: str = "catalog",
        source_ref: str | None = None,
        version_pin: str | None = None,
        active: bool = True,
    ) -> dict[str, Any]:
        """Add or change a desired skill of the group (an upsert); the desired skill."""
        body: dict[str, Any] = {"skill_id": skill_id, "source_type": source_type, "active": active}
        for key, value in (
            ("marketplace_skill_id", marketplace_skill_id),
            ("source_ref", source_ref),
            ("version_pin", version_pin),
        ):
            if value is not None:
                body[key] = value
        return await self.request("POST", f"/v1/runtime-groups/{runtime_group_id}/skills", json_body=body)

    async def uninstall_runtime_group_skill(self, runtime_group_id: str, skill_id: str) -> None:
        await self.request("DELETE", f"/v1/runtime-groups/{runtime_group_id}/skills/{skill_id}")

    async def list_runtime_group_marketplace(
        self, runtime_group_id: str, *, refresh_inventory: bool = False
    ) -> dict[str, Any]:
        return await self.request(
            "GET",
            f"/v1/runtime-groups/{runtime_group_id}/marketplace",
            params={"refresh_inventory": refresh_inventory},
        )

    async def list_runtime_group_inventory(self, runtime_group_id: str, *, refresh: bool = False) -> dict[str, Any]:
        return await self.request(
            "GET", f"/v1/runtime-groups/{runtime_group_id}/inventory", params={"refresh": refresh}
        )

    async def list_marketplace_skills(
        self, *, owner_id: str | None = None, include_inactive: bool = False, force_refresh: bool = False
    ) -> dict[str, Any]:
        """The skill packages installed on the server: ``{"data": [...]}``."""
        params = {"owner_id": owner_id, "include_inactive": include_inactive, "force_refresh": force_refresh}
        return await self.request("GET", "/v1/marketplace/skills", params=params)
