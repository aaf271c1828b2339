"""Skill packages installed on the server: the ``thalovant.skills`` entry point group.

Each entry point names a :class:`Skill` subclass; its entry point name is the skill name a
hub spec or a runtime group lists, and its distribution gives the package name and version.
The built-in skills are known even when this distribution's metadata is not installed.

:func:`installed_packages` is the catalog the marketplace shows (cached; :func:`refresh`
scans again, e.g. after ``pip install`` of a new skill package). :func:`load_skills` builds
the instances a hub runs and says why any named skill could not be built.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from thalovant_server import __version__ as SERVER_VERSION
from thalovant_server.hub.skills.base import Skill

__all__ = [
    "BUILTIN_SKILLS",
    "ENTRY_POINT_GROUP",
    "LoadedSkills",
    "SkillPackage",
    "available_skills",
    "build_skills",
    "installed_packages",
    "load_skills",
    "refresh",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "thalovant.skills"
SERVER_DISTRIBUTION = "thalovant-selfhosted"

BUILTIN_SKILLS: dict[str, str] = {
    "jokes": "thalovant_server.hub.skills.jokes:JokesSkill",
    "trivia": "thalovant_server.hub.skills.trivia:TriviaSkill",
    "capabilities": "thalovant_server.hub.skills.capabilities:CapabilitiesSkill",
    "memory": "thalovant_server.hub.skills.memory:MemorySkill",
    "clock": "thalovant_server.hub.skills.clock:ClockSkill",
    "approvals": "thalovant_server.hub.skills.approvals:ApprovalsSkill",
}


@dataclass(frozen=True, slots=True)
class SkillPackage:
    """One installed skill: where it comes from and, when it imports, its class.

    ``error`` says why a package is unusable (import failure, not a :class:`Skill`); such a
    package is listed as inactive and never runs.
    """

    name: str
    target: str
    package_name: str
    version: str
    skill_class: type[Skill] | None
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.skill_class is not None

    @property
    def title(self) -> str:
        cls = self.skill_class
        if cls is not None and cls.title:
            return cls.title
        return self.name.replace("_", " ").replace("-", " ").title()

    @property
    def summary(self) -> str:
        return self.skill_class.description if self.skill_class is not None else ""

    @property
    def intents(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.skill_class.intents) if self.skill_class is not None else ()


def _import(target: str) -> tuple[type[Skill] | None, str | None]:
    module_name, _, attr = target.partition(":")
    try:
        value = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # a broken third-party package must not break the catalog
        log.warning("skill %s cannot be loaded: %s", target, type(exc).__name__)
        return None, f"cannot import {target}: {type(exc).__name__}"
    if isinstance(value, type) and issubclass(value, Skill):
        return value, None
    log.warning("skill %s is not a Skill subclass", target)
    return None, f"{target} is not a Skill subclass"


def _package(name: str, target: str, point: EntryPoint | None) -> SkillPackage:
    dist = point.dist if point is not None else None
    package_name = dist.name if dist is not None else SERVER_DISTRIBUTION
    version = dist.version if dist is not None else SERVER_VERSION
    cls, error = _import(target)
    return SkillPackage(name, target, package_name, version, cls, error)


@lru_cache(maxsize=1)
def installed_packages() -> dict[str, SkillPackage]:
    """Every installed skill package by skill name (entry points win over the built-in table)."""
    found = {name: _package(name, target, None) for name, target in BUILTIN_SKILLS.items()}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found[point.name] = _package(point.name, point.value, point)
    return found


def refresh() -> dict[str, SkillPackage]:
    """Scan the installed distributions again (new or upgraded skill packages)."""
    importlib.invalidate_caches()
    installed_packages.cache_clear()
    return installed_packages()


def available_skills() -> dict[str, type[Skill]]:
    """The usable skill classes by name."""
    return {name: pkg.skill_class for name, pkg in installed_packages().items() if pkg.skill_class is not None}


@dataclass(slots=True)
class LoadedSkills:
    """The skill instances of one hub by name, in order, and the names that failed, with why."""

    by_name: dict[str, Skill] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def skills(self) -> list[Skill]:
        return list(self.by_name.values())


def load_skills(names: Iterable[str]) -> LoadedSkills:
    """Instances of the named skills, in order (duplicates once); failures are logged and kept."""
    packages = installed_packages()
    loaded = LoadedSkills()
    for name in names:
        if name in loaded.by_name or name in loaded.failures:
            continue
        package = packages.get(name)
        if package is None:
            log.warning("hub lists unknown skill %r; skipped", name)
            loaded.failures[name] = f"no installed skill package provides {name!r}"
            continue
        if package.skill_class is None:
            loaded.failures[name] = package.error or "unusable package"
            continue
        try:
            loaded.by_name[name] = package.skill_class()
        except Exception as exc:
            log.warning("skill %r failed to start: %s", name, type(exc).__name__)
            loaded.failures[name] = f"{name} failed to start: {type(exc).__name__}"
    return loaded


def build_skills(names: Iterable[str]) -> list[Skill]:
    """Instances of the named skills, in order; unknown or failing names are logged and skipped."""
    return load_skills(names).skills
