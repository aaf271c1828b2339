"""What this hub can do, built from the capability phrases of the hub's own skills.

A hub running jokes and trivia says "This hub can answer quick joke and trivia requests."
Skills without a capability phrase (memory, capabilities itself) add nothing.
The skill also acknowledges client status reports (``thalovant.client.status``).
"""

from __future__ import annotations

from collections.abc import Sequence

from thalovant_server.hub.skills.base import HubView, Request, Skill, SkillReply, intent, subscribe

__all__ = ["CapabilitiesSkill", "capability_sentence", "join_phrases"]


def join_phrases(phrases: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def capability_sentence(hub: HubView) -> str:
    """The answer to "What can this hub do?" for ``hub``."""
    phrases: list[str] = []
    for skill in hub.skills:
        if skill.capability and skill.capability not in phrases:
            phrases.append(skill.capability)
    if not phrases:
        return "This hub has no skills that answer requests yet."
    return f"This hub can answer quick {join_phrases(phrases)} requests."


class CapabilitiesSkill(Skill):
    """Describes the hub's skills; acknowledges client status events."""

    skill_id = "capabilities"
    title = "Hub capabilities"
    description = "Says what this hub can do."

    @intent(
        "describe_hub",
        examples=(
            "what can this hub do",
            "what can you do",
            "what are your capabilities",
            "what skills do you have",
            "help",
            "what do you do",
        ),
    )
    def describe(self, request: Request) -> SkillReply:
        return SkillReply.say(capability_sentence(request.hub), stay_active=False)

    @subscribe("thalovant.client.status")
    def client_status(self, request: Request) -> SkillReply:
        state = request.data.get("state")
        return SkillReply(
            events=[
                (
                    "thalovant.client.status.response",
                    {"ok": True, "state": state if isinstance(state, str) else None, "hub_id": request.hub.hub_id},
                )
            ],
            stay_active=False,
        )
