"""Skill discovery through the ``thalovant.skills`` entry point group.

Each entry point names a :class:`Skill` subclass; its entry point name is the name a hub spec
lists. The built-in skills are known even when the distribution's metadata is not installed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import entry_points

from thalovant_server.hub.skills.base import Skill

__all__ = ["BUILTIN_SKILLS", "ENTRY_POINT_GROUP", "available_skills", "build_skills"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "thalovant.skills"

BUILTIN_SKILLS: dict[str, str] = {
    "jokes": "thalovant_server.hub.skills.jokes:JokesSkill",
    "trivia": "thalovant_server.hub.skills.trivia:TriviaSkill",
    "capabilities": "thalovant_server.hub.skills.capabilities:CapabilitiesSkill",
    "memory": "thalovant_server.hub.skills.memory:MemorySkill",
    "clock": "thalovant_server.hub.skills.clock:ClockSkill",
    "approvals": "thalovant_server.hub.skills.approvals:ApprovalsSkill",
}


def _load(target: str) -> type[Skill] | None:
    module_name, _, attr = target.partition(":")
    try:
        value = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        log.warning("skill %s cannot be loaded: %s", target, exc)
        return None
    if isinstance(value, type) and issubclass(value, Skill):
        return value
    log.warning("skill %s is not a Skill subclass", target)
    return None


@lru_cache(maxsize=1)
def available_skills() -> dict[str, type[Skill]]:
    """Every installed skill class by name (entry points win over the built-in table)."""
    found: dict[str, type[Skill]] = {}
    for name, target in BUILTIN_SKILLS.items():
        cls = _load(target)
        if cls is not None:
            found[name] = cls
    for point in entry_points(group=ENTRY_POINT_GROUP):
        cls = _load(point.value)
        if cls is not None:
            found[point.name] = cls
    return found


def build_skills(names: Iterable[str]) -> list[Skill]:
    """Instances of the named skills, in order; unknown names are logged and skipped."""
    classes = available_skills()
    skills: list[Skill] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        cls = classes.get(name)
        if cls is None:
            log.warning("hub lists unknown skill %r; skipped", name)
            continue
        skills.append(cls())
    return skills
