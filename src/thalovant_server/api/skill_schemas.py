"""Request bodies and documented answers of operations, the marketplace, runtime groups and hub skills."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SKILL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class OperationOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    aggregate_type: str
    aggregate_id: str | None
    status: str
    details: dict[str, Any]
    error_code: str | None
    error_message: str | None
    created_at: str
    updated_at: str
    committed_at: str | None
    applied_at: str | None
    ready_at: str | None
    terminal_at: str | None
    links: dict[str, str | None]


class MarketplaceEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    skill_id: str
    title: str
    summary: str
    version: str
    intents: list[str]
    package_name: str
    is_active: bool


class MarketplaceList(BaseModel):
    data: list[MarketplaceEntry]


class RuntimeGroupOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    tenant_id: str
    environment: str
    namespace: str
    name: str
    slug: str
    is_default: bool
    status: str
    spec: dict[str, Any]


class RuntimeGroupList(BaseModel):
    data: list[RuntimeGroupOut]


class RuntimeGroupCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    environment: str | None = Field(default=None, min_length=1, max_length=32)
    owner_id: str | None = Field(default=None, max_length=64)
    clone_from_default: bool = False


class RuntimeGroupPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    spec: dict[str, Any] | None = None


class RuntimeGroupConfig(BaseModel):
    revision: str
    runtime_group_id: str
    config: dict[str, Any]
    personas: dict[str, Any]


class ConfigPut(BaseModel):
    """A guarded replacement: refused with 412 when ``expected_revision`` is not the current one."""

    config: dict[str, Any]
    expected_revision: str = Field(min_length=1, max_length=128)
    personas: dict[str, Any] | None = None


class ConfigPatch(BaseModel):
    """An unguarded replacement (unless ``If-Match`` names a revision)."""

    config: dict[str, Any]
    personas: dict[str, Any] | None = None


class ReleaseRequest(BaseModel):
    channel: str | None = Field(default=None, max_length=32)
    mode: str | None = Field(default=None, max_length=32)
    version: str | None = Field(default=None, max_length=64)
    images: dict[str, str] | None = None
    reason: str | None = Field(default=None, max_length=1000)


class DesiredSkillIn(BaseModel):
    skill_id: str = Field(min_length=1, max_length=64)
    marketplace_skill_id: str | None = Field(default=None, max_length=64)
    source_type: str = Field(default="catalog", min_length=1, max_length=32)
    source_ref: str | None = Field(default=None, max_length=512)
    version_pin: str | None = Field(default=None, max_length=64)
    active: bool = True


class DesiredSkillOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    runtime_group_id: str
    skill_id: str
    source_type: str
    source_ref: str
    active: bool


class ObservedList(BaseModel):
    """The envelope of the group marketplace and inventory views."""

    model_config = ConfigDict(extra="allow")

    runtime_group_id: str
    observed_at: str | None
    source: str
    operator_phase: str | None
    operator_message: str | None
    data: list[dict[str, Any]]


class HubSkillInstall(BaseModel):
    skill: str = Field(min_length=1, max_length=64)
    version: str = Field(default="latest", min_length=1, max_length=64)


class HubSkillUpdate(BaseModel):
    version: str = Field(min_length=1, max_length=64)


class HubSkillRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    skill: str
    state: str


class HubSkillList(BaseModel):
    model_config = ConfigDict(extra="allow")

    hub_id: str
    runtime_group_id: str | None
    source: str
    data: list[HubSkillRow]


class HubSkillAccepted(BaseModel):
    model_config = ConfigDict(extra="allow")

    operation_id: str
    skill: str
    state: str
    version: str | None
    hub_id: str
    runtime_group_id: str
    previous_version: str | None


class HubSkillHistory(BaseModel):
    hub_id: str
    runtime_group_id: str
    data: list[dict[str, Any]]
