"""Remembers facts the user states, within one conversation (session) only.

"Remember that my favorite color is blue." stores ``favorite color -> blue`` in the skill's
session state; "What color did I mention?" finds it again. Another session has its own state
and so knows nothing of it.
"""

from __future__ import annotations

from typing import Any

from thalovant_server.hub.skills.base import Request, Skill, SkillReply, intent

__all__ = ["MemorySkill"]

_MAX_FACTS = 32
_MAX_TEXT = 200


def _second_person(text: str) -> str:
    words = {"my": "your", "i": "you", "me": "you", "mine": "yours", "am": "are"}
    return " ".join(words.get(w, w) for w in text.split())


def _facts(state: dict[str, Any]) -> dict[str, str]:
    facts = state.get("facts")
    if not isinstance(facts, dict):
        facts = {}
        state["facts"] = facts
    return {str(k): str(v) for k, v in facts.items()}


class MemorySkill(Skill):
    """Keeps ``subject -> value`` facts in the conversation's session state."""

    skill_id = "memory"
    title = "Conversation memory"
    description = "Remembers what you tell it during a conversation."

    @intent(
        "remember",
        patterns=(
            r"^(?:please )?remember (?:that )?(?P<subject>.+?) (?:is|are|was|were) (?P<value>.+)$",
            r"^(?:please )?(?:note|keep in mind) (?:that )?(?P<subject>.+?) (?:is|are|was|were) (?P<value>.+)$",
        ),
    )
    def remember(self, request: Request) -> SkillReply:
        subject = request.slots.get("subject", "")[:_MAX_TEXT]
        value = request.slots.get("value", "")[:_MAX_TEXT]
        words = subject.split()
        key = " ".join(words[1:]) if words and words[0] in {"my", "the", "our"} else subject
        facts = _facts(request.state)
        facts.pop(key, None)
        facts[key] = value
        while len(facts) > _MAX_FACTS:
            facts.pop(next(iter(facts)))
        request.state["facts"] = facts
        return SkillReply.say(f"Okay, I will remember that {_second_person(subject)} is {value}.")

    @intent(
        "recall",
        patterns=(
            r"^what (?P<subject>.+?) did i (?:mention|say|tell you|give)\b",
            r"^(?:what is|what was|what s|do you remember|tell me) my (?P<subject>.+)$",
            r"^what did i (?:tell you|say|mention)(?: about (?:my )?(?P<subject>.+))?$",
        ),
    )
    def recall(self, request: Request) -> SkillReply:
        facts = _facts(request.state)
        if not facts:
            return SkillReply.say("You have not told me anything to remember in this conversation yet.")
        subject = request.slots.get("subject", "")
        wanted = set(subject.split()) - {"my", "the", "a", "an", "your"}
        if not wanted:
            listed = "; ".join(f"your {k} is {v}" for k, v in facts.items())
            return SkillReply.say(f"You told me that {listed}.")
        for key in reversed(list(facts)):
            if wanted & set(key.split()):
                return SkillReply.say(f"You mentioned that your {key} is {facts[key]}.")
        return SkillReply.say(f"You have not told me about your {subject} in this conversation.")
