"""The database schema as SQLAlchemy 2 ORM models (the migrations in ``migrations/`` create it).

Portable across SQLite and PostgreSQL: ids are UUID strings, times are UTC (see
:class:`UTCDateTime`), JSON documents use the generic ``JSON`` type. Every listed table has an
index on ``(created_at, id)`` (after its filter columns) for keyset pagination.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in Python; naive UTC in SQLite, ``timestamptz`` in PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20), default="user")
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "workspace_id", name="uq_membership"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20), default="owner")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """A bearer token: ``kind`` is ``api`` (tvpat_, long-lived) or ``session`` (login)."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_created", "user_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Hub(Base):
    __tablename__ = "hubs"
    __table_args__ = (
        Index("ix_hubs_public_page", "visibility", "active", "created_at", "id"),
        Index("ix_hubs_workspace_page", "workspace_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    public_ref: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[str] = mapped_column(String(20), default="workspace")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    domain: Mapped[str | None] = mapped_column(String(253), nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    etag: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(64), unique=True)
    noise_private_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    runtime_group_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    """The hub's runtime group; ``None`` means its workspace's default group."""
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Client(Base):
    """A client identity of one hub. The password is never stored: only the derived PSK."""

    __tablename__ = "clients"
    __table_args__ = (
        UniqueConstraint("hub_id", "name", name="uq_clients_hub_name"),
        Index("ix_clients_workspace_page", "workspace_id", "created_at", "id"),
        Index("ix_clients_hub_page", "hub_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    hub_id: Mapped[str] = mapped_column(ForeignKey("hubs.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    name: Mapped[str] = mapped_column(String(200))
    site_id: Mapped[str] = mapped_column(String(200))
    access_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    psk: Mapped[bytes] = mapped_column(LargeBinary(32))
    pinned_client_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    allowed_types: Mapped[list[str]] = mapped_column(JSON)
    connection_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    spec_extras: Mapped[dict[str, Any]] = mapped_column(JSON)
    mqtt_username: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    mqtt_topic_prefix: Mapped[str | None] = mapped_column(String(256), nullable=True)
    etag: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class IdempotencyRecord(Base):
    """The stored answer of a POST made with an ``Idempotency-Key`` (sealed: it may hold secrets)."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("user_id", "scope", "key", name="uq_idempotency_user_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class Operation(Base):
    """A long-running change, readable at ``/v1/operations/{id}`` (states: :mod:`thalovant_server.operations`)."""

    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_status", "status"),
        Index("ix_operations_workspace_page", "workspace_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    committed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    applied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ready_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    terminal_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RuntimeGroup(Base):
    """The runtime that serves a set of hubs: its configuration and its desired skills.

    ``default_for`` holds the workspace id on that workspace's default group (unique), ``None``
    on every other group. ``config_revision`` is the SHA-256 of the config and personas.
    """

    __tablename__ = "runtime_groups"
    __table_args__ = (UniqueConstraint("workspace_id", "slug", name="uq_runtime_groups_workspace_slug"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    default_for: Mapped[str | None] = mapped_column(String(36), unique=True, nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(Text, default="")
    environment: Mapped[str] = mapped_column(String(32))
    namespace: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(20))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    personas: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_revision: Mapped[str] = mapped_column(String(64))
    inventory: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    inventory_observed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DesiredSkill(Base):
    """A skill a runtime group should run, and what the runtime last made of it (``state``)."""

    __tablename__ = "runtime_group_skills"
    __table_args__ = (UniqueConstraint("runtime_group_id", "skill_id", name="uq_runtime_group_skills_skill"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    runtime_group_id: Mapped[str] = mapped_column(ForeignKey("runtime_groups.id", ondelete="CASCADE"), index=True)
    skill_id: Mapped[str] = mapped_column(String(64))
    source_type: Mapped[str] = mapped_column(String(32))
    source_ref: Mapped[str] = mapped_column(String(512))
    marketplace_skill_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    version_pin: Mapped[str | None] = mapped_column(String(64), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(16))
    installed_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_transition_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SkillHistoryEntry(Base):
    """One line of a runtime group's skill history: a request (``operation``) or an outcome (``event``)."""

    __tablename__ = "skill_history"
    __table_args__ = (Index("ix_skill_history_group", "runtime_group_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    runtime_group_id: Mapped[str] = mapped_column(ForeignKey("runtime_groups.id", ondelete="CASCADE"))
    hub_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    skill: Mapped[str] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
