"""Trivia facts, one per request; "another one" continues the list."""

from __future__ import annotations

from thalovant_server.hub.skills.base import Request, Skill, SkillReply, action, intent

__all__ = ["FACTS", "TriviaSkill"]

FACTS: tuple[str, ...] = (
    "Honey never spoils: archaeologists have found edible honey in ancient Egyptian tombs.",
    "Octopuses have three hearts and blue blood.",
    "A day on Venus is longer than a year on Venus.",
    "Bananas are berries, but strawberries are not.",
    "The Eiffel Tower can be about fifteen centimetres taller in summer, when the iron expands.",
    "Sea otters hold hands while they sleep so that they do not drift apart.",
)

_MORE = {"buttons": [{"title": "Another fact", "payload": "/trivia"}]}


class TriviaSkill(Skill):
    """Answers trivia requests from :data:`FACTS`, in order per conversation."""

    skill_id = "trivia"
    title = "Trivia"
    capability = "trivia"
    description = "Shares short trivia facts."

    @intent(
        "trivia_fact",
        examples=(
            "tell me a trivia fact",
            "trivia",
            "tell me some trivia",
            "give me a fun fact",
            "fun fact",
            "tell me something interesting",
            "trivia question",
            "another fact",
        ),
    )
    def fact(self, request: Request) -> SkillReply:
        return self._next(request)

    @intent("another_fact", examples=("another one", "one more", "another", "more"), follow_up=True)
    def another(self, request: Request) -> SkillReply:
        return self._next(request)

    @action("/trivia")
    def button(self, request: Request) -> SkillReply:
        return self._next(request)

    @staticmethod
    def _next(request: Request) -> SkillReply:
        return SkillReply.say(request.next_in_rotation(FACTS), display=_MORE)
