"""Remembers facts the user states.

"Remember that my favorite color is blue." keeps ``favorite color -> blue``; "What color did
I mention?" finds it again. On a server the facts go to the hub's memory book
(:mod:`thalovant_server.hub.memory_book`): they belong to the client identity, outlive the
conversation and the server, and the hub's owner sees, corrects and deletes them through
``/v1/memory``. Without a memory book (a bare agent) they live in the conversation's session
state only.
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
    title = "Memory"
    description = "Remembers what you tell it, for the owner to see and correct."

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
        book = request.hub.memory
        if book is not None and request.client_id:
            book.remember(request.hub.hub_id, request.client_id, key, value)
        else:
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
        book = request.hub.memory
        kept = book is not None and bool(request.client_id)
        facts = book.facts(request.client_id) if book is not None and kept else _facts(request.state)
        if not facts:
            if kept:
                return SkillReply.say("You have not told me anything to remember yet.")
            return SkillReply.say("You have not told me anything to remember in this conversation yet.")
        subject = request.slots.get("subject", "")
        wanted = set(subject.split()) - {"my", "the", "a", "an", "your"}
        if not wanted:
            listed = "; ".join(f"your {k} is {v}" for k, v in facts.items())
            return SkillReply.say(f"You told me that {listed}.")
        for key in reversed(list(facts)):
            if wanted & set(key.split()):
                return SkillReply.say(f"You mentioned that your {key} is {facts[key]}.")
        where = "" if kept else " in this conversation"
        return SkillReply.say(f"You have not told me about your {subject}{where}.")
