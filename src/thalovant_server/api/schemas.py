"""Request bodies (validated by FastAPI) and documented response shapes (for OpenAPI)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class LoginRequest(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    scope: str | None = Field(default=None, max_length=1024)
    otp_code: str | None = Field(default=None, max_length=64)
    recovery_code: str | None = Field(default=None, max_length=128)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    expires_at: str
    scopes: list[str]


class ApiTokenCreate(BaseModel):
    name: str = Field(default="", max_length=200)
    scopes: list[str] | None = Field(default=None, max_length=16)
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
    created_at: str
    updated_at: str


class HubPage(BaseModel):
    data: list[HubOut]
    meta: PageMeta
    links: PageLinks


class HubCreate(BaseModel):
    """``name`` and ``spec`` are required; unknown keys (namespace, ...) are ignored."""

    name: str = Field(min_length=1, max_length=200)
    spec: dict[str, Any]
    slug: str | None = Field(default=None, max_length=63)
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    domain: str | None = Field(default=None, max_length=253)
    active: bool = True
    visibility: str | None = Field(default=None, max_length=20)
    owner_id: str | None = Field(default=None, max_length=64)
    runtime_group_id: str | None = Field(default=None, max_length=64)


class HubPatch(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    namespace: str | None = Field(default=None, max_length=200)
    domain: str | None = Field(default=None, max_length=253)
    slug: str | None = Field(default=None, max_length=63)
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    active: bool | None = None
    visibility: str | None = Field(default=None, max_length=20)
    spec: dict[str, Any] | None = None
    runtime_group_id: str | None = Field(default=None, max_length=64)


class ClientSpecIn(BaseModel):
    """The client spec the SDK sends; other keys (``label``, ...) pass through."""

    model_config = ConfigDict(extra="allow")

    version: str = Field(default="1", min_length=1, max_length=32)
    apiKey: str | None = Field(default=None, min_length=16, max_length=256)
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    siteId: str | None = Field(default=None, min_length=1, max_length=200)
    connection_type: str | None = Field(default=None, max_length=64)


class ClientCreate(BaseModel):
    hub_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    spec: ClientSpecIn = Field(default_factory=ClientSpecIn)
    active: bool = True
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
