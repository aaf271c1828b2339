"""JSON shapes of operations, marketplace entries, runtime groups and hub skills."""

from __future__ import annotations

import uuid
from typing import Any

from thalovant_server.api.views import timestamp
from thalovant_server.hub.runtime import HubObservation
from thalovant_server.hub.skills.registry import SkillPackage
from thalovant_server.store.models import DesiredSkill, Operation, RuntimeGroup, SkillHistoryEntry

__all__ = [
    "SOURCE_CACHE",
    "SOURCE_CACHE_EMPTY",
    "SOURCE_LIVE",
    "SOURCE_PENDING",
    "catalog_entry",
    "desired_view",
    "group_view",
    "history_view",
    "marketplace_id",
    "operation_view",
]

SOURCE_LIVE = "ovos-runtime-operator"
SOURCE_PENDING = "ovos-runtime-operator-pending"
SOURCE_CACHE = "runtime-group-cache"
SOURCE_CACHE_EMPTY = "runtime-group-cache-empty"

_MARKETPLACE_NAMESPACE = uuid.UUID("6f1f3c52-5d0b-4c1e-9a57-2b8e1c0d4a11")


def marketplace_id(skill: str) -> str:
    """The stable catalog id of an installed skill package (the same on every start)."""
    return str(uuid.uuid5(_MARKETPLACE_NAMESPACE, f"thalovant.skills:{skill}"))


def operation_view(operation: Operation) -> dict[str, Any]:
    return {
        "id": operation.id,
        "kind": operation.kind,
        "aggregate_type": operation.aggregate_type,
        "aggregate_id": operation.aggregate_id,
        "status": operation.status,
        "details": dict(operation.details),
        "git_commit_sha": None,
        "error_code": operation.error_code,
        "error_message": operation.error_message,
        "created_at": timestamp(operation.created_at),
        "updated_at": timestamp(operation.updated_at),
        "committed_at": timestamp(operation.committed_at),
        "applied_at": timestamp(operation.applied_at),
        "ready_at": timestamp(operation.ready_at),
        "terminal_at": timestamp(operation.terminal_at),
        "links": {"self": f"/v1/operations/{operation.id}"},
    }


def catalog_entry(package: SkillPackage) -> dict[str, Any]:
    """A marketplace entry: one installed skill package."""
    return {
        "id": marketplace_id(package.name),
        "skill_id": package.name,
        "catalog_scope": "global",
        "catalog_origin": "installed-package",
        "title": package.title,
        "summary": package.summary,
        "category": "skills",
        "tags": [],
        "verified": package.package_name == "thalovant-selfhosted",
        "support_level": "builtin" if package.package_name == "thalovant-selfhosted" else "community",
        "source_type": "catalog",
        "source_ref": package.package_name,
        "package_name": package.package_name,
        "version": package.version,
        "intents": list(package.intents),
        "compatibility": {"runtime": "thalovant-embedded"},
        "config_schema": None,
        "secret_schema": None,
        "access_tier": "included",
        "billing_sku": None,
        "rating_average": None,
        "is_active": package.active,
        "error": package.error,
    }


def group_view(group: RuntimeGroup, hub_count: int) -> dict[str, Any]:
    return {
        "id": group.id,
        "tenant_id": group.workspace_id,
        "workspace_id": group.workspace_id,
        "owner_id": group.created_by,
        "environment": group.environment,
        "namespace": group.namespace,
        "name": group.name,
        "slug": group.slug,
        "description": group.description,
        "is_default": group.default_for is not None,
        "status": group.status,
        "spec": dict(group.spec),
        "hub_count": hub_count,
        "created_at": timestamp(group.created_at),
        "updated_at": timestamp(group.updated_at),
    }


def desired_view(skill: DesiredSkill) -> dict[str, Any]:
    return {
        "id": skill.id,
        "runtime_group_id": skill.runtime_group_id,
        "skill_id": skill.skill_id,
        "marketplace_skill_id": skill.marketplace_skill_id,
        "source_type": skill.source_type,
        "source_ref": skill.source_ref,
        "version_pin": skill.version_pin,
        "active": skill.active,
        "state": skill.state,
        "installed_version": skill.installed_version,
        "last_error": skill.last_error,
        "created_at": timestamp(skill.created_at),
        "updated_at": timestamp(skill.updated_at),
    }


def history_view(entry: SkillHistoryEntry, operation: Operation | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": f"{entry.kind}:{entry.id}",
        "kind": entry.kind,
        "action": entry.action,
        "skill": entry.skill,
        "hub_id": entry.hub_id,
        "version": entry.version,
        "actor_email": entry.actor_email,
        "created_at": timestamp(entry.created_at),
    }
    if entry.kind == "operation":
        view["operation_id"] = entry.operation_id
        view["status"] = operation.status if operation is not None else None
        view["error_code"] = operation.error_code if operation is not None else None
    elif entry.operation_id is not None:
        view["operation_id"] = entry.operation_id
    return view


def inventory_rows(group_id: str, observation: HubObservation, observed_at: str | None) -> list[dict[str, Any]]:
    """The inventory of a group as one of its loaded hubs runs it."""
    rows = []
    for name, version in observation.skills.items():
        intents = list(observation.intents.get(name, ()))
        rows.append(
            {
                "id": f"{group_id}:{name}",
                "runtime_group_id": group_id,
                "skill_id": name,
                "version": version,
                "source": SOURCE_LIVE,
                "active": True,
                "adapt_intents": [],
                "padatious_intents": intents,
                "total_intents": len(intents),
                "observed_at": observed_at,
            }
        )
    return rows
