"""Short clean jokes; "another one" in the same conversation gives the next joke."""

from __future__ import annotations

from thalovant_server.hub.skills.base import Request, Skill, SkillReply, intent

__all__ = ["JOKES", "JokesSkill"]

JOKES: tuple[str, ...] = (
    "Why did the hub keep good logs? It wanted every punchline to be traceable.",
    "Why did the packet cross the network? To get to the other site.",
    "Why was the server so calm? It had learned to handle every request with grace.",
    "Why did the developer trust the handshake? Because it came with a pre-shared key.",
    "What do you call a router that tells stories? A tale gateway.",
    "Why did the session never get lost? It always remembered its id.",
    "Why did the cache go on holiday? It needed a little time to expire.",
)


class JokesSkill(Skill):
    """Tells the jokes of :data:`JOKES` in order, per conversation, starting with the first."""

    skill_id = "jokes"
    title = "Jokes"
    capability = "joke"
    description = "Tells short clean jokes."

    @intent(
        "tell_joke",
        examples=(
            "tell me a joke",
            "tell me a short clean joke",
            "tell me a clean joke",
            "do you know any jokes",
            "joke",
            "make me laugh",
            "say something funny",
            "another joke",
        ),
    )
    def tell_joke(self, request: Request) -> SkillReply:
        return self._next(request)

    @intent("another_joke", examples=("another one", "one more", "another", "again", "more"), follow_up=True)
    def another(self, request: Request) -> SkillReply:
        return self._next(request)

    @staticmethod
    def _next(request: Request) -> SkillReply:
        return SkillReply.say(request.next_in_rotation(JOKES))
