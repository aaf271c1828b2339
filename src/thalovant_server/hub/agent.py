"""The embedded agent: runs a hub's skills in-process and picks the one that handles an input.

Selection rules, deterministic for a given input, session and skill order:

- action (``context.input.kind == "action"``): the skill with the longest matching action
  prefix (a prefix matches the payload exactly or followed by a space);
- code (``data.input`` with a ``kind``): the first skill with a handler for that kind, else
  one for ``*``;
- utterance: the best intent score (:mod:`matching`); follow-up intents count only while
  their skill is active; among equal scores an active skill wins, the most recent first,
  then skill order;
- raw event: every skill subscribed to the bus type, in skill order.

What a dispatch gives is an :data:`Outcome`: an :class:`AgentAnswer`, ``None`` (no skill
claims the input), a :class:`~thalovant_server.hub.skill_guard.SkillFault` (the chosen handler
raised or answered nonsense; it never breaks the session), or a :class:`PendingAnswer` (an
``async`` handler whose answer is still to come; :meth:`PendingAnswer.settle` awaits it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from thalovant_server.hub import skill_guard
from thalovant_server.hub.matching import CompiledIntent, IntentIndex
from thalovant_server.hub.memory_book import MemoryBook
from thalovant_server.hub.session import Conversation
from thalovant_server.hub.skill_guard import SkillFault
from thalovant_server.hub.skills.base import HubView, IntentSpec, Request, Skill, SkillReply

__all__ = ["AgentAnswer", "EmbeddedAgent", "Outcome", "PendingAnswer"]


@dataclass(frozen=True, slots=True)
class AgentAnswer:
    """A skill's reply to one input, with who answered and through which handler."""

    skill_id: str
    handler: str
    reply: SkillReply


@dataclass(frozen=True, slots=True)
class PendingAnswer:
    """An ``async`` handler's answer still to come."""

    skill: Skill
    handler: str
    awaitable: Awaitable[Any]
    request: Request
    conversation: Conversation

    @property
    def skill_id(self) -> str:
        return self.skill.skill_id

    async def settle(self, timeout: float) -> AgentAnswer | SkillFault | None:
        """The answer, within ``timeout`` seconds, or the fault (see :mod:`skill_guard`)."""
        reply = await skill_guard.settle(self.skill.skill_id, self.handler, self.awaitable, timeout)
        if reply is None or isinstance(reply, SkillFault):
            return reply
        return EmbeddedAgent.finish(self.skill, self.handler, reply, self.conversation, self.request)

    def discard(self) -> None:
        """Give up on the answer without awaiting it."""
        skill_guard.discard(self.awaitable)


Outcome = AgentAnswer | PendingAnswer | SkillFault | None
"""What one dispatch gives; see the module docstring."""


@dataclass(slots=True)
class _Turn:
    """One input as every skill handler sees it, whoever is chosen to answer. Never changed
    once made (not frozen only because a frozen dataclass costs several times more to build,
    once per ask)."""

    text: str
    lang: str
    conversation: Conversation
    context: dict[str, Any]
    data: dict[str, Any]
    structured: dict[str, Any]
    client_id: str = ""


@dataclass(frozen=True, slots=True)
class _IntentEntry:
    skill: Skill
    spec: IntentSpec
    order: int


class EmbeddedAgent:
    """The skills of one hub and the dispatch between them."""

    def __init__(self, hub_id: str, skills: Sequence[Skill], memory: MemoryBook | None = None) -> None:
        self.hub = HubView(hub_id, tuple(skills), memory)
        intents: list[CompiledIntent] = []
        for skill in skills:
            for spec in skill.intents:
                intents.append(CompiledIntent(_IntentEntry(skill, spec, len(intents)), spec.examples, spec.patterns))
        self._intents = IntentIndex(intents)
        self._actions = sorted(
            ((spec.prefix.casefold(), skill, spec.method) for skill in skills for spec in skill.actions),
            key=lambda item: -len(item[0]),
        )
        self._codes: dict[str, tuple[Skill, str]] = {}
        for skill in skills:
            for code_spec in skill.codes:
                self._codes.setdefault(code_spec.kind, (skill, code_spec.method))
        self._subscribers: dict[str, list[tuple[Skill, str]]] = {}
        for skill in skills:
            for sub in skill.subscriptions:
                self._subscribers.setdefault(sub.bus_type, []).append((skill, sub.method))

    @property
    def skills(self) -> tuple[Skill, ...]:
        return self.hub.skills

    def without(self, skill_id: str) -> EmbeddedAgent:
        """The same hub without one skill (a quarantined one)."""
        return EmbeddedAgent(
            self.hub.hub_id, [skill for skill in self.skills if skill.skill_id != skill_id], self.hub.memory
        )

    def subscribed_types(self) -> frozenset[str]:
        return frozenset(self._subscribers)

    # -- inputs ----------------------------------------------------------------------------

    def answer(
        self,
        *,
        kind: str,
        text: str,
        lang: str,
        conversation: Conversation,
        context: dict[str, Any],
        data: dict[str, Any],
        structured: dict[str, Any],
        client_id: str = "",
    ) -> Outcome:
        """The outcome of the skill that handles an utterance, action or code; ``None`` if none does.
        ``client_id`` names the identity that asked (skills that keep memory need it)."""
        turn = _Turn(text, lang, conversation, context, data, structured, client_id)
        if kind == "action":
            return self._action(turn)
        if kind == "code":
            found = self._code(turn)
            if found is not None:
                return found
            # a code no skill claims is still offered to the intents as text
        return self._utterance(kind, turn)

    def event(
        self, bus_type: str, lang: str, conversation: Conversation, context: dict[str, Any], data: dict[str, Any]
    ) -> list[AgentAnswer | PendingAnswer | SkillFault]:
        """Outcomes of every skill subscribed to ``bus_type`` (skills returning ``None`` skipped)."""
        turn = _Turn("", lang, conversation, context, data, {})
        answers: list[AgentAnswer | PendingAnswer | SkillFault] = []
        for skill, method in self._subscribers.get(bus_type, ()):
            answer = self._invoke(skill, method, self._request(skill, "event", "", turn, bus_type=bus_type), turn)
            if answer is not None:
                answers.append(answer)
        return answers

    # -- selection -------------------------------------------------------------------------

    def _action(self, turn: _Turn) -> Outcome:
        payload = turn.text.strip()
        folded = payload.casefold()
        for prefix, skill, method in self._actions:
            if folded == prefix or folded.startswith(prefix + " "):
                answer = self._invoke(skill, method, self._request(skill, "action", payload, turn), turn)
                if answer is not None:
                    return answer
        return None

    def _code(self, turn: _Turn) -> Outcome:
        kind = turn.structured.get("kind")
        target = self._codes.get(kind.casefold()) if isinstance(kind, str) else None
        target = target or self._codes.get("*")
        if target is None:
            return None
        skill, method = target
        value = turn.structured.get("value")
        utterance = value if isinstance(value, str) else turn.text
        return self._invoke(skill, method, self._request(skill, "code", utterance, turn), turn)

    def _utterance(self, kind: str, turn: _Turn) -> Outcome:
        found = self._intents.match_text(turn.text)
        if not found:
            return None
        ranks = turn.conversation.active_ranks()
        best: tuple[float, int, int] | None = None
        chosen: tuple[_IntentEntry, dict[str, str]] | None = None
        for match in found:
            entry = match.key
            assert isinstance(entry, _IntentEntry)
            rank = ranks.get(entry.skill.skill_id)
            if entry.spec.follow_up and rank is None:
                continue
            key = (match.score, -(rank if rank is not None else 1_000), -entry.order)
            if best is None or key > best:
                best = key
                chosen = (entry, match.slots)
        if chosen is None:
            return None
        entry, slots = chosen
        request = self._request(entry.skill, kind, turn.text, turn)
        request.slots = dict(slots)  # the handler's own: the match is shared
        request.intent = entry.spec.name
        return self._invoke(entry.skill, entry.spec.method, request, turn, handler=entry.spec.name)

    # -- helpers ---------------------------------------------------------------------------

    def _request(
        self, skill: Skill, kind: str, utterance: str, turn: _Turn, *, bus_type: str = "recognizer_loop:utterance"
    ) -> Request:
        return Request(
            kind=kind,
            utterance=utterance,
            lang=turn.lang,
            session_id=turn.conversation.session_id,
            state=turn.conversation.state_for(skill.skill_id),
            context=turn.context,
            hub=self.hub,
            input=turn.structured,
            data=turn.data,
            bus_type=bus_type,
            client_id=turn.client_id,
        )

    @classmethod
    def _invoke(cls, skill: Skill, method: str, request: Request, turn: _Turn, handler: str | None = None) -> Outcome:
        """Run one handler; its outcome (``None`` when it declines)."""
        name = handler or method
        result = skill_guard.call_handler(skill.skill_id, name, skill.handler(method), request)
        if result is None or isinstance(result, SkillFault):
            return result
        if isinstance(result, SkillReply):
            return cls.finish(skill, name, result, turn.conversation, request)
        return PendingAnswer(skill, name, result, request, turn.conversation)

    @staticmethod
    def finish(
        skill: Skill, handler: str, reply: SkillReply, conversation: Conversation, request: Request
    ) -> AgentAnswer:
        """Apply a reply to the conversation (skill state, active skills); the answer to render."""
        if reply.state is not None:
            conversation.skill_state[skill.skill_id] = dict(reply.state)
        elif not request.state:
            conversation.skill_state.pop(skill.skill_id, None)
        if request.kind != "event":
            if reply.stay_active:
                conversation.activate(skill.skill_id)
            else:
                conversation.deactivate(skill.skill_id)
        return AgentAnswer(skill.skill_id, handler, reply)
