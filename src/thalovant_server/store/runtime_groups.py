"""Runtime groups, their desired skills and their skill history.

Every workspace has one default group (created on first use by :func:`ensure_default`); a hub
whose ``runtime_group_id`` is ``None`` belongs to it. A group's configuration carries a
revision, the SHA-256 of its canonical JSON with the personas, so writers can detect that
someone else changed it in between.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from thalovant_server.store.engine import Store
from thalovant_server.store.models import DesiredSkill, Hub, RuntimeGroup, SkillHistoryEntry, utcnow

__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_SLUG",
    "LIVE_STATES",
    "config_revision",
    "create_group",
    "default_group",
    "desired_skill",
    "desired_skills",
    "ensure_default",
    "group_by_id",
    "group_of_hub",
    "history",
    "hub_count",
    "hubs_of_group",
    "record",
    "runtime_skill_names",
    "set_config",
    "set_state",
    "workspace_groups",
]

DEFAULT_NAME = "Default runtime"
DEFAULT_SLUG = "default"
DEFAULT_ENVIRONMENT = "production"
DEFAULT_SPEC: dict[str, Any] = {"replicas": 1, "resources": {}}

LIVE_STATES = frozenset({"pending", "installed"})
"""Desired-skill states whose skill the runtime runs (``failed`` and ``removing`` are left out)."""

_SLUG_CHARS = re.compile(r"[^a-z0-9]+")


def config_revision(config: Mapping[str, Any], personas: Mapping[str, Any]) -> str:
    """64 lowercase hex characters naming this exact configuration and personas."""
    text = json.dumps({"config": config, "personas": personas}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _slug(name: str) -> str:
    return _SLUG_CHARS.sub("-", name.lower()).strip("-")[:50].strip("-") or "group"


def _new_group(
    *,
    workspace_id: str,
    name: str,
    slug: str,
    description: str = "",
    environment: str = DEFAULT_ENVIRONMENT,
    created_by: str | None = None,
    default: bool = False,
    config: Mapping[str, Any] | None = None,
    personas: Mapping[str, Any] | None = None,
) -> RuntimeGroup:
    now = utcnow()
    config_doc = dict(config or {})
    personas_doc = dict(personas or {})
    group_id = str(uuid.uuid4())
    return RuntimeGroup(
        id=group_id,
        workspace_id=workspace_id,
        default_for=workspace_id if default else None,
        name=name,
        slug=slug,
        description=description,
        environment=environment,
        namespace=f"rg-{group_id[:8]}",
        status="ready",
        spec=dict(DEFAULT_SPEC),
        config=config_doc,
        personas=personas_doc,
        config_revision=config_revision(config_doc, personas_doc),
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )


async def default_group(session: AsyncSession, workspace_id: str) -> RuntimeGroup | None:
    return await session.scalar(select(RuntimeGroup).where(RuntimeGroup.default_for == workspace_id))


async def ensure_default(store: Store, workspace_ids: Sequence[str]) -> None:
    """Create the default group of each workspace that has none (its own transaction; a
    concurrent creator winning the unique ``default_for`` is fine)."""
    for workspace_id in workspace_ids:
        async with store.session() as session:
            if await default_group(session, workspace_id) is not None:
                continue
        try:
            async with store.session() as session:
                session.add(_new_group(workspace_id=workspace_id, name=DEFAULT_NAME, slug=DEFAULT_SLUG, default=True))
        except IntegrityError:
            continue


async def group_by_id(session: AsyncSession, group_id: str) -> RuntimeGroup | None:
    try:
        key = str(uuid.UUID(group_id))
    except ValueError:
        return None
    return await session.get(RuntimeGroup, key)


async def workspace_groups(session: AsyncSession, workspace_ids: Sequence[str]) -> list[RuntimeGroup]:
    """The groups of these workspaces, default groups first, then by creation."""
    statement = (
        select(RuntimeGroup)
        .where(RuntimeGroup.workspace_id.in_(list(workspace_ids)))
        .order_by(RuntimeGroup.default_for.is_(None), RuntimeGroup.created_at, RuntimeGroup.id)
    )
    return list((await session.scalars(statement)).all())


async def create_group(
    session: AsyncSession,
    *,
    workspace_id: str,
    name: str,
    description: str,
    environment: str,
    created_by: str | None,
    clone_from: RuntimeGroup | None = None,
) -> RuntimeGroup:
    """A new group; ``clone_from`` copies another group's config, personas and desired skills."""
    base = _slug(name)
    taken = set(
        (await session.scalars(select(RuntimeGroup.slug).where(RuntimeGroup.workspace_id == workspace_id))).all()
    )
    slug, n = base, 1
    while slug in taken or slug == DEFAULT_SLUG:
        n += 1
        slug = f"{base}-{n}"
    group = _new_group(
        workspace_id=workspace_id,
        name=name,
        slug=slug,
        description=description,
        environment=environment,
        created_by=created_by,
        config=clone_from.config if clone_from is not None else None,
        personas=clone_from.personas if clone_from is not None else None,
    )
    session.add(group)
    if clone_from is not None:
        for skill in await desired_skills(session, clone_from.id):
            session.add(
                DesiredSkill(
                    runtime_group_id=group.id,
                    skill_id=skill.skill_id,
                    source_type=skill.source_type,
                    source_ref=skill.source_ref,
                    marketplace_skill_id=skill.marketplace_skill_id,
                    version_pin=skill.version_pin,
                    active=skill.active,
                    state=skill.state if skill.state in LIVE_STATES else "pending",
                    installed_version=skill.installed_version,
                )
            )
    await session.flush()
    return group


def set_config(group: RuntimeGroup, config: Mapping[str, Any], personas: Mapping[str, Any] | None) -> None:
    """Replace the config (and the personas when given); a new revision."""
    group.config = dict(config)
    if personas is not None:
        group.personas = dict(personas)
    group.config_revision = config_revision(group.config, group.personas)
    group.updated_at = utcnow()


async def group_of_hub(session: AsyncSession, hub: Hub) -> RuntimeGroup | None:
    """The hub's group (its workspace default when it names none); ``None`` if the one it names is gone."""
    if hub.runtime_group_id is not None:
        return await session.get(RuntimeGroup, hub.runtime_group_id)
    return await default_group(session, hub.workspace_id)


def _members(group: RuntimeGroup) -> Any:
    if group.default_for is not None:
        return or_(
            Hub.runtime_group_id == group.id,
            (Hub.runtime_group_id.is_(None)) & (Hub.workspace_id == group.default_for),
        )
    return Hub.runtime_group_id == group.id


async def hubs_of_group(session: AsyncSession, group: RuntimeGroup) -> list[Hub]:
    statement = select(Hub).where(_members(group)).order_by(Hub.created_at, Hub.id)
    return list((await session.scalars(statement)).all())


async def hub_count(session: AsyncSession, group: RuntimeGroup) -> int:
    return int(await session.scalar(select(func.count()).select_from(Hub).where(_members(group))) or 0)


async def desired_skills(session: AsyncSession, group_id: str) -> list[DesiredSkill]:
    statement = (
        select(DesiredSkill)
        .where(DesiredSkill.runtime_group_id == group_id)
        .order_by(DesiredSkill.created_at, DesiredSkill.id)
    )
    return list((await session.scalars(statement)).all())


async def desired_skill(session: AsyncSession, group_id: str, skill_id: str) -> DesiredSkill | None:
    statement = select(DesiredSkill).where(DesiredSkill.runtime_group_id == group_id, DesiredSkill.skill_id == skill_id)
    return await session.scalar(statement)


async def runtime_skill_names(session: AsyncSession, group_id: str) -> list[str]:
    """The skills the group's runtime runs: active, and pending or installed."""
    return [s.skill_id for s in await desired_skills(session, group_id) if s.active and s.state in LIVE_STATES]


def set_state(skill: DesiredSkill, state: str, *, error: str | None = None) -> None:
    now = utcnow()
    if skill.state != state:
        skill.last_transition_at = now
    skill.state = state
    skill.last_error = error
    skill.updated_at = now


async def record(
    session: AsyncSession,
    *,
    group_id: str,
    hub_id: str | None,
    kind: str,
    action: str,
    skill: str,
    version: str | None,
    actor_email: str | None,
    operation_id: str | None = None,
) -> None:
    """Add a history line: ``kind`` ``operation`` (a request) or ``event`` (what came of it)."""
    session.add(
        SkillHistoryEntry(
            runtime_group_id=group_id,
            hub_id=hub_id,
            kind=kind,
            action=action,
            skill=skill,
            version=version,
            actor_email=actor_email,
            operation_id=operation_id,
            created_at=utcnow(),
        )
    )
    await session.flush()


async def history(session: AsyncSession, group_id: str, limit: int) -> list[SkillHistoryEntry]:
    """The newest ``limit`` lines of a group's skill history, newest first."""
    statement = (
        select(SkillHistoryEntry)
        .where(SkillHistoryEntry.runtime_group_id == group_id)
        .order_by(SkillHistoryEntry.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())
