"""Request bodies and documented answers of operations, the marketplace, runtime groups and hub skills."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SKILL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
VERSION_PATTERN = r"^(latest|[0-9]+(\.[0-9]+){0,3}([.+-][0-9A-Za-z.+-]{1,40})?)$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
REVISION_PATTERN = r"^[0-9a-f]{64}$"
CATALOG_PATTERN = r"^\s*[Cc][Aa][Tt][Aa][Ll][Oo][Gg]\s*$"
"""The one source type this runtime installs from (any case, spaces around allowed)."""


def documented_pattern(pattern: str) -> dict[str, Any]:
    """A pattern the schema shows but the route checks itself (to answer with its own error code)."""
    return {"pattern": pattern}


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
    expected_revision: str = Field(pattern=REVISION_PATTERN)
    personas: dict[str, Any] | None = None


class ConfigPatch(BaseModel):
    """An unguarded replacement."""

    config: dict[str, Any]
    personas: dict[str, Any] | None = None


class ReleaseImages(BaseModel):
    """Images of a runtime release: ``core`` and the message ``bus``."""

    model_config = ConfigDict(extra="forbid")

    core: str | None = Field(default=None, min_length=1, max_length=512)
    bus: str | None = Field(default=None, min_length=1, max_length=512)


class ReleaseRequest(BaseModel):
    channel: str | None = Field(default=None, max_length=32)
    mode: str | None = Field(default=None, max_length=32)
    version: str | None = Field(default=None, max_length=64)
    images: ReleaseImages | None = None
    reason: str | None = Field(default=None, max_length=1000)


class DesiredSkillIn(BaseModel):
    skill_id: str = Field(min_length=1, max_length=64)
    marketplace_skill_id: str | None = Field(default=None, max_length=64)
    source_type: str = Field(default="catalog", min_length=1, max_length=32, pattern=CATALOG_PATTERN)
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
    version: str = Field(
        default="latest", min_length=1, max_length=64, json_schema_extra=documented_pattern(VERSION_PATTERN)
    )


class HubSkillUpdate(BaseModel):
    version: str = Field(min_length=1, max_length=64, json_schema_extra=documented_pattern(VERSION_PATTERN))


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
