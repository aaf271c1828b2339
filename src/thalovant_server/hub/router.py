"""The per-hub router between client sessions and agents.

``handle`` takes one bus message from a client and returns the bus messages to send back,
all at once (every sentence of one answer leaves together, spec 6.3):

- a type the identity may not send gets ``hive.policy.denied`` (spec 6.5);
- ``recognizer_loop:utterance`` (ask, send_utterance, send_action, send_code) gets one
  ``speak`` per sentence, then ``ovos.utterance.handled`` with the updated session; when no
  skill answers, a fallback ``speak`` at once (``pipeline_id`` contains ``fallback``);
- ``ovos.skills.list``, ``ovos.intent.list``, ``ovos.intent.describe`` and the adapt and
  padatious manifest queries are answered from the hub's skills (spec 6.7);
- any other type goes to the skills subscribed to it.

An ``async`` skill handler answers later: ``handle`` then hands a coroutine producing the
reply messages to the caller's ``later`` (the session's link runs it as a task and sends what
it gives) and returns the rest at once. A skill that fails, is late or is refused for too many
pending answers gets the failure event of :mod:`~thalovant_server.hub.skill_guard` instead of
its reply.

Every reply carries the request's context like an OVOS reply: a copy of it with source and
destination swapped, the request id and session kept (the session updated). The copy is
shallow: replies are serialised before the request is dropped and nothing mutates nested
values, so it is indistinguishable on the wire from a deep copy and much cheaper.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from thalovant.protocol.envelope import BusMessage
from thalovant.protocol.wire1 import PAYLOAD_NUMBERS, Wire1Frame
from thalovant_server.hub.activity import Activity, ActivitySink
from thalovant_server.hub.agent import AgentAnswer, EmbeddedAgent, Outcome, PendingAnswer
from thalovant_server.hub.directory import ALLOW_ALL, DEFAULT_ALLOWED_TYPES, is_type_allowed
from thalovant_server.hub.session import Conversation, SessionStore
from thalovant_server.hub.skill_guard import DEFAULT_SKILL_TIMEOUT, SkillFault, SkillHealth, failure_message
from thalovant_server.hub.skills.base import MAX_FILE_BYTES, Request, SkillReply
from thalovant_server.hub.skills.fallback import FALLBACK_PIPELINE_ID, FALLBACK_SKILL_ID, fallback_reply

__all__ = [
    "POLICY_DENIED",
    "SKILLS_PIPELINE_ID",
    "UTTERANCE",
    "UTTERANCE_HANDLED",
    "ClientOrigin",
    "Deferral",
    "HubRouter",
    "Reply",
    "reply_context",
]

UTTERANCE = "recognizer_loop:utterance"
UTTERANCE_HANDLED = "ovos.utterance.handled"
POLICY_DENIED = "hive.policy.denied"
SKILLS_PIPELINE_ID = "thalovant.skills"
DEFAULT_LANG = "en-us"
HUB_SOURCE = "thalovant-hub"
MAX_UTTERANCE = 4096

log = logging.getLogger(__name__)

Reply = BusMessage | Wire1Frame
"""What the router answers with: bus messages, and binary frames (files a skill sends)."""

Deferral = Callable[[Coroutine[Any, Any, list[Reply]]], bool]
"""Takes the coroutine of a later answer and runs it; ``False`` when it cannot take more."""


@dataclass(frozen=True, slots=True)
class ClientOrigin:
    """Who sent a bus message: the identity and the connection's default session id."""

    client_id: str
    hub_id: str
    site_id: str
    connection_session_id: str
    allowed_types: frozenset[str]
    workspace_id: str = ""
    carrier: str = ""


def _first_entry(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def reply_context(context: Mapping[str, Any], **updates: Any) -> dict[str, Any]:
    """The context of a reply to a message with ``context`` (OVOS ``Message.reply``)."""
    out = dict(context)
    source = context.get("source")
    destination = _first_entry(context.get("destination"))
    if source is not None:
        out["destination"] = source
    else:
        out.pop("destination", None)
    if destination is not None:
        out["source"] = destination
    else:
        out["source"] = HUB_SOURCE
    out.update(updates)
    return out


def _text_of(data: Mapping[str, Any]) -> str:
    utterances = data.get("utterances")
    if isinstance(utterances, list):
        for item in utterances:
            if isinstance(item, str) and item.strip():
                return item.strip()[:MAX_UTTERANCE]
    for key in ("utterance", "text"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:MAX_UTTERANCE]
    return ""


def _lang_of(data: Mapping[str, Any], session: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    for value in (data.get("lang"), session.get("lang"), context.get("lang")):
        if isinstance(value, str) and 0 < len(value) <= 32:
            return value
    return DEFAULT_LANG


def _file_frame(attached: Any, skill_id: str, spoken: str, lang: str, ctx: Mapping[str, Any]) -> Wire1Frame | None:
    """The binary frame of a skill's file (``utterance`` and ``request_id`` let clients match it)."""
    data = getattr(attached, "data", None)
    if not isinstance(data, bytes) or len(data) > MAX_FILE_BYTES:
        log.warning("skill %s sent a file that is not bytes or larger than %d bytes; dropped", skill_id, MAX_FILE_BYTES)
        return None
    metadata: dict[str, Any] = {"lang": lang, "skill_id": skill_id}
    if spoken:
        metadata["utterance"] = spoken
    request_id = ctx.get("request_id")
    if isinstance(request_id, str):
        metadata["request_id"] = request_id
    if attached.file_name:
        metadata["file_name"] = attached.file_name
    return Wire1Frame("bin", metadata, data, PAYLOAD_NUMBERS[attached.kind])


@dataclass(slots=True)
class _UtteranceTurn:
    """One utterance being answered: what the ending of the turn needs, now or later. Never
    changed once made (not frozen only because a frozen dataclass costs several times more to
    build, once per ask)."""

    origin: ClientOrigin
    message: BusMessage
    conversation: Conversation
    session_in: dict[str, Any]
    kind: str
    text: str
    lang: str
    structured: dict[str, Any]


@dataclass(slots=True)
class _Concluded:
    """The bookkeeping of an answered turn, done by :meth:`HubRouter.settle`."""

    turn: _UtteranceTurn
    answer: AgentAnswer
    pipeline_id: str
    session: dict[str, Any]
    at: float


class HubRouter:
    """Routes one hub's client bus messages to its embedded agent.

    With a ``sink``, every answered utterance, action or code is recorded as an
    :class:`~thalovant_server.hub.activity.Activity` (with its text only when
    ``record_utterances``).

    The bookkeeping of an answered turn (the hub's copy of its conversation, its activity) is
    left to :meth:`settle`, so that the caller can write the answer first; :meth:`handle`
    settles what is left before it routes anything, so a session's next turn always sees its
    previous one.
    """

    def __init__(
        self,
        hub_id: str,
        agent: EmbeddedAgent,
        sessions: SessionStore | None = None,
        *,
        skill_timeout: float = DEFAULT_SKILL_TIMEOUT,
        sink: ActivitySink | None = None,
        record_utterances: bool = False,
    ) -> None:
        self.hub_id = hub_id
        self.agent = agent
        self.sessions = sessions if sessions is not None else SessionStore()
        self.skill_timeout = skill_timeout
        self.health = SkillHealth()
        self.sink = sink
        self.record_utterances = record_utterances
        self._unsettled: list[_Concluded] = []

    # -- entry point -------------------------------------------------------------------------

    def handle(self, origin: ClientOrigin, message: BusMessage, later: Deferral | None = None) -> list[Reply]:
        """The bus messages answering ``message`` now (possibly none), in sending order.

        Answers of ``async`` handlers go to ``later``; without one (or when it refuses) the
        client gets the ``skill_busy`` failure event for them.
        """
        if self._unsettled:
            self.settle()
        if not is_type_allowed(origin.allowed_types, message.type):
            return [self.denied(origin, message)]
        if message.type == UTTERANCE:
            return self._utterance(origin, message, later)
        manifest = self._MANIFESTS.get(message.type)
        if manifest is not None:
            return [manifest(self, message)]
        return self._event(origin, message, later)

    def _fault(self, message: BusMessage, fault: SkillFault) -> list[Reply]:
        if self.health.fault(fault):
            self.agent = self.agent.without(fault.skill_id)
        return [failure_message(fault, reply_context(message.context))]

    def _defer(
        self,
        message: BusMessage,
        later: Deferral | None,
        pending: PendingAnswer,
        work: Coroutine[Any, Any, list[Reply]],
    ) -> list[Reply]:
        """Hand ``work`` to ``later``; the ``skill_busy`` failure now when it is not taken."""
        if later is not None and later(work):
            return []
        work.close()
        pending.discard()
        return self._fault(message, SkillFault.busy(pending.skill_id, pending.handler))

    def denied(self, origin: ClientOrigin, message: BusMessage) -> BusMessage:
        """``hive.policy.denied`` for a type the identity may not send, with the request's context."""
        allowed = origin.allowed_types or DEFAULT_ALLOWED_TYPES
        listed = sorted(t for t in allowed if t != ALLOW_ALL)
        return BusMessage(
            POLICY_DENIED,
            {
                "denied_type": message.type,
                "code": "acl_disallowed_type",
                "reason": f"message type {message.type!r} is not allowed for this client",
                "data": {"allowed": listed},
            },
            reply_context(message.context),
        )

    # -- utterances ----------------------------------------------------------------------------

    def _session_of(self, origin: ClientOrigin, context: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        raw = context.get("session")
        session: dict[str, Any] = raw if isinstance(raw, dict) else {}
        sid = session.get("session_id")
        if not isinstance(sid, str) or not sid or sid == "default" or len(sid) > 256:
            sid = origin.connection_session_id
        return session, sid

    def _utterance(self, origin: ClientOrigin, message: BusMessage, later: Deferral | None) -> list[Reply]:
        data, context = message.data, message.context
        session_in, session_id = self._session_of(origin, context)
        lang = _lang_of(data, session_in, context)
        text = _text_of(data)
        kind, structured = "utterance", {}
        ctx_input = context.get("input")
        data_input = data.get("input")
        if isinstance(ctx_input, dict) and ctx_input.get("kind") == "action":
            kind, structured = "action", dict(ctx_input)
            payload = ctx_input.get("payload")
            if isinstance(payload, str) and payload.strip():
                text = payload.strip()[:MAX_UTTERANCE]
        elif isinstance(data_input, dict) and "value" in data_input:
            kind, structured = "code", dict(data_input)
        elif isinstance(ctx_input, dict) and "value" in ctx_input:
            kind, structured = "code", dict(ctx_input)
        conversation = self.sessions.load(origin.client_id, session_id, lang, session_in)
        outcome = self.agent.answer(
            kind=kind,
            text=text,
            lang=lang,
            conversation=conversation,
            context=context,
            data=data,
            structured=structured,
            client_id=origin.client_id,
        )
        turn = _UtteranceTurn(origin, message, conversation, session_in, kind, text, lang, structured)
        if isinstance(outcome, PendingAnswer):
            return self._defer(message, later, outcome, self._settle_utterance(turn, outcome))
        return self._conclude(turn, outcome)

    async def _settle_utterance(self, turn: _UtteranceTurn, pending: PendingAnswer) -> list[Reply]:
        return self._conclude(turn, await pending.settle(self.skill_timeout))

    def _conclude(self, turn: _UtteranceTurn, outcome: Outcome) -> list[Reply]:
        """The messages ending an utterance turn: the answer (or fallback) and the updated session."""
        assert not isinstance(outcome, PendingAnswer)
        if isinstance(outcome, SkillFault):
            return self._fault(turn.message, outcome)
        if outcome is None:
            request = Request(
                turn.kind,
                turn.text,
                turn.lang,
                turn.conversation.session_id,
                {},
                turn.message.context,
                self.agent.hub,
                input=turn.structured,
                data=turn.message.data,
            )
            outcome = AgentAnswer(FALLBACK_SKILL_ID, "fallback", fallback_reply(request))
            pipeline_id = FALLBACK_PIPELINE_ID
        else:
            self.health.answered(outcome.skill_id)
            pipeline_id = SKILLS_PIPELINE_ID
        session_out = turn.conversation.to_session(turn.session_in)
        self._unsettled.append(_Concluded(turn, outcome, pipeline_id, session_out, time.time()))
        return self._render(turn.message, outcome, pipeline_id, turn.lang, session_out, handled=True)

    @property
    def unsettled(self) -> bool:
        """Whether answered turns wait for their bookkeeping (:meth:`settle`)."""
        return bool(self._unsettled)

    def settle(self) -> None:
        """Do the bookkeeping of every turn answered so far, in order: keep its conversation
        (:class:`SessionStore`) and record its activity in the sink."""
        concluded, self._unsettled = self._unsettled, []
        for done in concluded:
            turn = done.turn
            self.sessions.save(turn.origin.client_id, turn.conversation, done.session)
            if self.sink is not None:
                self.sink.record(
                    Activity(
                        hub_id=self.hub_id,
                        client_id=turn.origin.client_id,
                        carrier=turn.origin.carrier,
                        kind=turn.kind,
                        skill=done.answer.skill_id,
                        intent=done.answer.handler,
                        handled=done.pipeline_id == SKILLS_PIPELINE_ID,
                        lang=turn.lang,
                        utterance=turn.text if self.record_utterances else None,
                        at=done.at,
                    )
                )

    def _render(
        self,
        message: BusMessage,
        answer: AgentAnswer,
        pipeline_id: str,
        lang: str,
        session: dict[str, Any],
        *,
        handled: bool,
    ) -> list[Reply]:
        ctx = reply_context(message.context, session=session, pipeline_id=pipeline_id, skill_id=answer.skill_id)
        reply: SkillReply = answer.reply
        out: list[Reply] = []
        spoken = " ".join(s for s in reply.speech if isinstance(s, str) and s.strip())
        first = True
        for sentence in reply.speech:
            if not isinstance(sentence, str) or not sentence.strip():
                continue
            data: dict[str, Any] = {"utterance": sentence, "lang": lang, "expect_response": False}
            data["meta"] = {"skill": answer.skill_id, "intent": answer.handler}
            if first and reply.display:
                data["display"] = reply.display
            first = False
            out.append(BusMessage("speak", data, ctx))
        if first and reply.display:
            out.append(BusMessage("speak", {"utterance": "", "lang": lang, "display": reply.display}, ctx))
        for bus_type, data in reply.events:
            out.append(BusMessage(bus_type, dict(data), ctx))
        for attached in reply.files:
            frame = _file_frame(attached, answer.skill_id, spoken, lang, ctx)
            if frame is not None:
                out.append(frame)
        if handled:
            out.append(BusMessage(UTTERANCE_HANDLED, {"name": f"{answer.skill_id}:{answer.handler}"}, ctx))
        return out

    # -- raw events ----------------------------------------------------------------------------

    def _event(self, origin: ClientOrigin, message: BusMessage, later: Deferral | None) -> list[Reply]:
        if message.type not in self.agent.subscribed_types():
            return []
        session_in, session_id = self._session_of(origin, message.context)
        lang = _lang_of(message.data, session_in, message.context)
        conversation = Conversation(session_id, lang)
        out: list[Reply] = []
        for outcome in self.agent.event(message.type, lang, conversation, message.context, message.data):
            if isinstance(outcome, PendingAnswer):
                out.extend(self._defer(message, later, outcome, self._settle_event(message, outcome, lang, session_in)))
            else:
                out.extend(self._event_reply(message, outcome, lang, session_in))
        return out

    async def _settle_event(
        self, message: BusMessage, pending: PendingAnswer, lang: str, session_in: dict[str, Any]
    ) -> list[Reply]:
        outcome = await pending.settle(self.skill_timeout)
        return [] if outcome is None else self._event_reply(message, outcome, lang, session_in)

    def _event_reply(
        self, message: BusMessage, outcome: AgentAnswer | SkillFault, lang: str, session_in: dict[str, Any]
    ) -> list[Reply]:
        if isinstance(outcome, SkillFault):
            return self._fault(message, outcome)
        self.health.answered(outcome.skill_id)
        return self._render(message, outcome, SKILLS_PIPELINE_ID, lang, dict(session_in), handled=False)

    # -- manifests (spec 6.7) ------------------------------------------------------------------

    def _skills_list(self, message: BusMessage) -> BusMessage:
        skills = []
        for skill in self.agent.skills:
            skills.append(
                {
                    "skill_id": skill.skill_id,
                    "session_id": "default",
                    "capabilities": [skill.capability] if skill.capability else [],
                    "description": skill.description,
                    "intents": [spec.name for spec in skill.intents],
                }
            )
        return BusMessage("ovos.skills.list.response", {"ok": True, "skills": skills}, reply_context(message.context))

    def _intent_list(self, message: BusMessage) -> BusMessage:
        lang = message.data.get("lang")
        with_definitions = message.data.get("include_definitions") is True
        intents = []
        for skill in self.agent.skills:
            for spec in skill.intents:
                row: dict[str, Any] = {
                    "skill_id": skill.skill_id,
                    "intent_name": spec.name,
                    "lang": lang if isinstance(lang, str) and lang else DEFAULT_LANG,
                    "method": "template",
                    "enabled": True,
                    "session_id": "default",
                }
                if with_definitions:
                    row["definition"] = {"samples": list(spec.examples), "patterns": list(spec.patterns)}
                intents.append(row)
        ctx = reply_context(message.context)
        session = ctx.get("session")
        session = dict(session) if isinstance(session, dict) else {}
        session.setdefault("lang", DEFAULT_LANG)
        ctx["session"] = session
        return BusMessage("ovos.intent.list.response", {"ok": True, "intents": intents}, ctx)

    def _describe_intent(self, message: BusMessage) -> BusMessage:
        """``ovos.intent.describe``: the definition of one intent of one skill, or ``ok: false``."""
        data = message.data
        skill_id, intent_name = data.get("skill_id"), data.get("intent_name")
        lang = data.get("lang") if isinstance(data.get("lang"), str) and data.get("lang") else DEFAULT_LANG
        ctx = reply_context(message.context)
        for skill in self.agent.skills:
            if skill.skill_id != skill_id:
                continue
            for spec in skill.intents:
                if spec.name == intent_name:
                    definition = {
                        "skill_id": skill.skill_id,
                        "intent_name": spec.name,
                        "lang": lang,
                        "samples": list(spec.examples),
                        "patterns": list(spec.patterns),
                    }
                    answer = {"ok": True, "definitions": [{"method": "template", "definition": definition}]}
                    return BusMessage("ovos.intent.describe.response", answer, ctx)
        error = f"no intent {intent_name!r} of skill {skill_id!r} on this hub"
        return BusMessage("ovos.intent.describe.response", {"ok": False, "error": error}, ctx)

    def _padatious_manifest(self, message: BusMessage) -> BusMessage:
        """Every intent of this hub: they are example-based, as padatious intents are."""
        names = [f"{skill.skill_id}:{spec.name}" for skill in self.agent.skills for spec in skill.intents]
        return BusMessage("intent.service.padatious.manifest", {"intents": names}, reply_context(message.context))

    def _adapt_manifest(self, message: BusMessage) -> BusMessage:
        """No keyword (adapt) intents on this hub."""
        return BusMessage("intent.service.adapt.manifest", {"intents": []}, reply_context(message.context))

    _MANIFESTS: ClassVar[dict[str, Callable[[HubRouter, BusMessage], BusMessage]]] = {
        "ovos.skills.list": _skills_list,
        "ovos.intent.list": _intent_list,
        "ovos.intent.describe": _describe_intent,
        "intent.service.padatious.manifest.get": _padatious_manifest,
        "intent.service.adapt.manifest.get": _adapt_manifest,
    }

    def hub_event(self, bus_type: str, data: Mapping[str, Any], session_id: str | None = None) -> BusMessage:
        """A hub-initiated bus message (for :meth:`HubRuntime.push`)."""
        context: dict[str, Any] = {"source": HUB_SOURCE, "destination": "client", "sent_at": time.time()}
        if session_id:
            context["session"] = {"session_id": session_id}
        return BusMessage(bus_type, dict(data), context)
