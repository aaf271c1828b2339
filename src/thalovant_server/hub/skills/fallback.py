"""The answer when no skill claims an input: spoken at once, so no caller waits 5 s."""

from __future__ import annotations

from thalovant_server.hub.skills.base import Request, SkillReply

__all__ = ["FALLBACK_PIPELINE_ID", "FALLBACK_SKILL_ID", "fallback_reply"]

FALLBACK_SKILL_ID = "thalovant.fallback"
FALLBACK_PIPELINE_ID = "thalovant.fallback"
"""Pipeline id stamped on fallback answers; it contains ``fallback`` (spec 6.3, ``claimed``)."""

_MAX_ECHO = 80


def fallback_reply(request: Request) -> SkillReply:
    """A short sentence saying this input is not handled here (never empty)."""
    said = " ".join(request.utterance.split())
    if len(said) > _MAX_ECHO:
        said = said[: _MAX_ECHO - 3] + "..."
    if request.kind == "action":
        text = f"No skill on this hub handles the action {said}." if said else "No skill handles that action."
    elif request.kind == "code":
        kind = request.input.get("kind")
        text = (
            f"No skill on this hub handles {kind} codes."
            if isinstance(kind, str) and kind
            else ("No skill on this hub handles that code.")
        )
    else:
        text = "Sorry, I can't help with that yet. Ask what this hub can do."
    return SkillReply.say(text, stay_active=False)
