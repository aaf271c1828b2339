"""Request bodies (validated by FastAPI) and documented response shapes (for OpenAPI)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from thalovant_server.api.auth import ALL_SCOPES
from thalovant_server.api.provisioning import CONNECTION_TYPES, MESSAGE_TYPE
from thalovant_server.store.hub_spec import FLAG_WORDS, SKILL_NAME
from thalovant_server.store.hubs import SLUG


def _any_case(word: str) -> str:
    return "".join(f"[{ch.lower()}{ch.upper()}]" if ch.isalpha() else re.escape(ch) for ch in word)


FLAG_TEXT = r"^\s*(?:" + "|".join(_any_case(word) for word in FLAG_WORDS if word) + r")?\s*$"
"""The strings a hub spec accepts as a protocol flag (``true``, ``Off``, ``1``, ...; blank is off)."""
_SCOPE = "(?:" + "|".join(re.escape(scope) for scope in ALL_SCOPES) + ")"
SCOPE_LIST = rf"^[\s,]*(?:{_SCOPE}(?:[\s,]+{_SCOPE})*)?[\s,]*$"
"""Scopes separated by spaces or commas (none means every scope)."""


class LoginRequest(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    # the route refuses other scopes with 422 ``invalid_scope``; the schema says which are known
    scope: str | None = Field(default=None, max_length=1024, json_schema_extra={"pattern": SCOPE_LIST})
    otp_code: str | None = Field(default=None, max_length=64)
    recovery_code: str | None = Field(default=None, max_length=128)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    expires_at: str
    scopes: list[str]


class ApiTokenCreate(BaseModel):
    name: str = Field(default="", max_length=200)
    # the route refuses other scopes with 422 ``invalid_scope``; the schema says which are known
    scopes: list[Annotated[str, Field(json_schema_extra={"enum": list(ALL_SCOPES)})]] | None = Field(
        default=None, max_length=16
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiTokenInfo(BaseModel):
    id: str
    name: str
    scopes: list[str]
    expires_at: str | None
    created_at: str


class ApiTokenCreated(ApiTokenInfo):
    token_id: str
    access_token: str
    token_type: str


class Profile(BaseModel):
    id: str
    email: str
    display_name: str
    role: str


class ProfileEnvelope(BaseModel):
    data: Profile


class PageMeta(BaseModel):
    count: int
    next: str | None


class PageLinks(BaseModel):
    next: str | None


class HubOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    slug: str
    public_ref: str
    name: str
    title: str
    visibility: str
    active: bool
    domain: str | None
    spec: dict[str, Any]
    data_plane_endpoints: dict[str, str]
    rating_average: float | None
    rating_count: int
    created_at: str
    updated_at: str


class HubPage(BaseModel):
    data: list[HubOut]
    meta: PageMeta
    links: PageLinks


FlagText = Annotated[str, Field(pattern=FLAG_TEXT)]


class ProtocolSetting(BaseModel):
    """A protocol given as an object; ``enabled`` defaults to true."""

    model_config = ConfigDict(extra="allow")

    enabled: StrictBool | FlagText = True


ProtocolName = Literal["wss", "websocket", "http", "https", "mqtt"]


class HubSpecIn(BaseModel):
    """A hub spec as sent: ``version`` is required; other keys pass through (see ``hub_spec``)."""

    model_config = ConfigDict(extra="allow")

    version: str = Field(min_length=1, max_length=64, pattern=r"\S")
    protocols: dict[ProtocolName, StrictBool | FlagText | ProtocolSetting] | None = None
    skills: list[Annotated[str, Field(pattern=SKILL_NAME.pattern)]] = Field(default_factory=list, max_length=64)


Visibility = Literal["public", "workspace", "private"]


class HubCreate(BaseModel):
    """``name`` and ``spec`` are required; unknown keys (namespace, ...) are ignored."""

    name: str = Field(min_length=1, max_length=200)
    spec: HubSpecIn
    slug: str | None = Field(default=None, max_length=63, pattern=SLUG.pattern)
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    domain: str | None = Field(default=None, max_length=253)
    active: StrictBool = True
    visibility: Visibility | None = None
    owner_id: str | None = Field(default=None, max_length=64)
    runtime_group_id: str | None = Field(default=None, max_length=64)


class HubPatch(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    namespace: str | None = Field(default=None, max_length=200)
    domain: str | None = Field(default=None, max_length=253)
    slug: str | None = Field(default=None, max_length=63, pattern=SLUG.pattern)
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    active: StrictBool | None = None
    visibility: Visibility | None = None
    spec: HubSpecIn | None = None
    runtime_group_id: str | None = Field(default=None, max_length=64)


def _document_allowed_types(schema: dict[str, Any]) -> None:
    schema.setdefault("properties", {})["allowed_types"] = {
        "type": "array",
        "items": {"type": "string", "pattern": MESSAGE_TYPE.pattern},
        "description": "Bus message types this identity may send (\"*\" for any); default: the hub's set",
    }


class ClientSpecIn(BaseModel):
    """The client spec the SDK sends; other keys (``label``, ...) pass through. A
    ``connection_type`` outside the list is refused with 422 ``schema_validation_failed``."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_document_allowed_types)

    version: str = Field(default="1", min_length=1, max_length=32)
    apiKey: str | None = Field(default=None, min_length=16, max_length=256)
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    siteId: str | None = Field(default=None, min_length=1, max_length=200)
    connection_type: str | None = Field(
        default=None, max_length=64, json_schema_extra={"enum": [*CONNECTION_TYPES, None]}
    )


class ClientCreate(BaseModel):
    hub_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    spec: ClientSpecIn = Field(default_factory=ClientSpecIn)
    active: StrictBool = True
    owner_id: str | None = Field(default=None, max_length=64)


class ClientOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    hub_id: str
    name: str
    site_id: str
    active: bool
    etag: str
    created_at: str


class ClientCreated(ClientOut):
    spec: dict[str, Any]
    initial_identify: dict[str, Any]


class ClientPage(BaseModel):
    data: list[ClientOut]
    meta: PageMeta
    links: PageLinks


class ApiTokenPage(BaseModel):
    data: list[ApiTokenInfo]
    meta: PageMeta
    links: PageLinks
