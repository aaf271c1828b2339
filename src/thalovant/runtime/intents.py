"""What a hub can be asked: intent registrations and definitions (dataplane.md 6.7).

Pure parsing of the hub's answers to ``ovos.intent.list``, ``ovos.intent.describe`` and the
adapt / padatious manifest queries; the client sends the queries and waits for the answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "IntentDefinition",
    "IntentRegistration",
    "definitions_from",
    "registrations_from",
    "registrations_from_manifest",
]

_ENGINES = {"template": "padatious", "keyword": "adapt"}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class IntentRegistration:
    """One intent a skill registered on the hub: ``method`` is ``template`` or ``keyword``."""

    skill_id: str
    intent_name: str
    lang: str
    method: str
    enabled: bool = True
    session_id: str = "default"
    definition: dict[str, Any] | None = None

    @property
    def engine(self) -> str:
        """The OVOS intent engine behind ``method`` (``padatious`` or ``adapt``)."""
        return _ENGINES.get(self.method, self.method)


@dataclass(frozen=True, slots=True)
class IntentDefinition:
    """How one intent is recognised: its ``samples`` (template phrases) and the raw definition."""

    skill_id: str
    intent_name: str
    lang: str
    method: str
    samples: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> str:
        return _ENGINES.get(self.method, self.method)


def registrations_from(answer: Mapping[str, Any], hub_lang: str) -> list[IntentRegistration]:
    """The rows of an ``ovos.intent.list.response`` (rows without a skill or name are skipped)."""
    rows = answer.get("intents")
    found: list[IntentRegistration] = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, Mapping):
            continue
        skill_id, name = _text(row.get("skill_id")), _text(row.get("intent_name"))
        if skill_id is None or name is None:
            continue
        definition = row.get("definition")
        found.append(
            IntentRegistration(
                skill_id=skill_id,
                intent_name=name,
                lang=_text(row.get("lang")) or hub_lang,
                method=_text(row.get("method")) or "template",
                enabled=row.get("enabled") is not False,
                session_id=_text(row.get("session_id")) or "default",
                definition=dict(definition) if isinstance(definition, Mapping) else None,
            )
        )
    return found


def registrations_from_manifest(answer: Mapping[str, Any], method: str, lang: str) -> list[IntentRegistration]:
    """The ``skill_id:intent_name`` entries of an adapt or padatious manifest."""
    entries = answer.get("intents")
    found: list[IntentRegistration] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, str) or ":" not in entry:
            continue
        skill_id, _, name = entry.partition(":")
        if skill_id and name:
            found.append(IntentRegistration(skill_id, name, lang, method))
    return found


def definitions_from(answer: Mapping[str, Any]) -> list[IntentDefinition]:
    """The definitions of an ``ovos.intent.describe.response``."""
    rows = answer.get("definitions")
    found: list[IntentDefinition] = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, Mapping):
            continue
        body = row.get("definition")
        body = body if isinstance(body, Mapping) else {}
        samples = body.get("samples")
        found.append(
            IntentDefinition(
                skill_id=_text(body.get("skill_id")) or "",
                intent_name=_text(body.get("intent_name")) or "",
                lang=_text(body.get("lang")) or "",
                method=_text(row.get("method")) or "template",
                samples=tuple(s for s in samples if isinstance(s, str)) if isinstance(samples, list) else (),
                raw=dict(body),
            )
        )
    return found
