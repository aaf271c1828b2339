"""The skills of one hub as the control plane reports them (controlplane.md 7).

:class:`HubSkillList` is ``GET /v1/hubs/{id}/skills``; :class:`HubSkillOperation` the 202
answer of an install, update or remove (and, after waiting, its outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from thalovant.errors import ThalovantAPIError
from thalovant.operations import OperationResource

__all__ = ["HubSkill", "HubSkillList", "HubSkillOperation", "HubSkillOperationState", "HubSkillState"]

HubSkillState = Literal["pending", "installed", "failed", "removing", "drifted", "quarantined", "unmanaged"]
HubSkillOperationState = Literal["installing", "updating", "removing", "installed", "removed", "failed"]

_OPTIONAL_TEXT = (
    "title",
    "marketplace_skill_id",
    "package_name",
    "source_type",
    "install_source",
    "version",
    "version_pin",
    "installed_version",
    "observed_version",
    "previous_version",
    "latest_version",
    "available_version",
    "changelog",
    "operator_phase",
    "operator_message",
    "operator_last_error",
    "last_transition_at",
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class HubSkill:
    """One skill of a hub: its state, versions and what the runtime operator last said."""

    skill: str
    state: HubSkillState
    title: str | None = None
    marketplace_skill_id: str | None = None
    package_name: str | None = None
    source_type: str | None = None
    install_source: str | None = None
    version: str | None = None
    version_pin: str | None = None
    installed_version: str | None = None
    observed_version: str | None = None
    previous_version: str | None = None
    latest_version: str | None = None
    available_version: str | None = None
    update_available: bool = False
    changelog: str | None = None
    active: bool = True
    operator_phase: str | None = None
    operator_message: str | None = None
    operator_last_error: str | None = None
    last_transition_at: str | None = None

    @classmethod
    def from_dict(cls, row: Any) -> HubSkill:
        if not isinstance(row, Mapping):
            raise ThalovantAPIError("Thalovant API returned an unexpected hub skill row shape.")
        skill, state = _text(row.get("skill")), _text(row.get("state"))
        if skill is None or state is None:
            raise ThalovantAPIError("Thalovant API returned an unexpected hub skill row shape.")
        return cls(
            skill=skill,
            state=state,  # type: ignore[arg-type]  # the server's word; unknown states pass through
            update_available=row.get("update_available") is True,
            active=row.get("active") is not False,
            **{key: _text(row.get(key)) for key in _OPTIONAL_TEXT},
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class HubSkillList:
    """``GET /v1/hubs/{id}/skills``: the rows and where the observation comes from."""

    hub_id: str
    data: list[HubSkill] = field(default_factory=list)
    runtime_group_id: str | None = None
    observed_at: str | None = None
    source: str | None = None
    operator_phase: str | None = None
    operator_message: str | None = None

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> HubSkillList:
        hub_id, rows = _text(body.get("hub_id")), body.get("data")
        if hub_id is None or not isinstance(rows, list):
            raise ThalovantAPIError("Thalovant API returned an unexpected hub skill listing shape.")
        return cls(
            hub_id=hub_id,
            data=[HubSkill.from_dict(row) for row in rows],
            runtime_group_id=_text(body.get("runtime_group_id")),
            observed_at=_text(body.get("observed_at")),
            source=_text(body.get("source")),
            operator_phase=_text(body.get("operator_phase")),
            operator_message=_text(body.get("operator_message")),
        )

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "data"}
        out["data"] = [row.as_dict() for row in self.data]
        return out


@dataclass(frozen=True, slots=True)
class HubSkillOperation:
    """An accepted hub-skill command; after waiting, ``state`` is ``installed`` or ``removed``."""

    operation_id: str
    skill: str
    version: str | None
    state: HubSkillOperationState
    hub_id: str | None = None
    runtime_group_id: str | None = None
    previous_version: str | None = None
    operation: OperationResource | None = None

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> HubSkillOperation:
        operation_id = _text(body.get("operation_id"))
        if operation_id is None:
            raise ThalovantAPIError(
                "Thalovant API accepted the hub skill command but the answer is missing operation_id."
            )
        skill, state = _text(body.get("skill")), _text(body.get("state"))
        if skill is None or state is None:
            raise ThalovantAPIError("Thalovant API returned an unexpected hub skill operation shape.")
        embedded = body.get("operation")
        operation = None
        if isinstance(embedded, Mapping):
            try:
                operation = OperationResource.from_dict(embedded)
            except ThalovantAPIError:
                operation = None
        return cls(
            operation_id=operation_id,
            skill=skill,
            version=_text(body.get("version")),
            state=state,  # type: ignore[arg-type]  # the server's word
            hub_id=_text(body.get("hub_id")),
            runtime_group_id=_text(body.get("runtime_group_id")),
            previous_version=_text(body.get("previous_version")),
            operation=operation,
        )

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "operation"}
        out["operation"] = self.operation.as_dict() if self.operation is not None else None
        return out
