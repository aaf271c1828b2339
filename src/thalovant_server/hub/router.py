"""The per-hub router between client sessions and agents.

``handle`` takes one bus message from a client and returns the bus messages to send back,
all at once (every sentence of one answer leaves together, spec 6.3):

- a type the identity may not send gets ``hive.policy.denied`` (spec 6.5);
- ``recognizer_loop:utterance`` (ask, send_utterance, send_action, send_code) gets one
  ``speak`` per sentence, then ``ovos.utterance.handled`` with the updated session; when no
  skill answers, a fallback ``speak`` at once (``pipeline_id`` contains ``fallback``);
- ``ovos.skills.list`` and ``ovos.intent.list`` are answered from the hub's skills (spec 6.7);
- any other type goes to the skills subscribed to it.

Every reply carries the request's context like an OVOS reply: a copy of it with source and
destination swapped, the request id and session kept (the session updated). The copy is
shallow: replies are serialised before the request is dropped and nothing mutates nested
values, so it is indistinguishable on the wire from a deep copy and much cheaper.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thalovant.protocol.envelope import BusMessage
from thalovant_server.hub.agent import AgentAnswer, EmbeddedAgent
from thalovant_server.hub.directory import ALLOW_ALL, DEFAULT_ALLOWED_TYPES, is_type_allowed
from thalovant_server.hub.session import Conversation, SessionStore
from thalovant_server.hub.skills.base import Request, SkillReply
from thalovant_server.hub.skills.fallback import FALLBACK_PIPELINE_ID, FALLBACK_SKILL_ID, fallback_reply

__all__ = [
    "POLICY_DENIED",
    "SKILLS_PIPELINE_ID",
    "UTTERANCE",
    "UTTERANCE_HANDLED",
    "ClientOrigin",
    "HubRouter",
    "reply_context",
]

UTTERANCE = "recognizer_loop:utterance"
UTTERANCE_HANDLED = "ovos.utterance.handled"
POLICY_DENIED = "hive.policy.denied"
SKILLS_PIPELINE_ID = "thalovant.skills"
DEFAULT_LANG = "en-us"
HUB_SOURCE = "thalovant-hub"
MAX_UTTERANCE = 4096


@dataclass(frozen=True, slots=True)
class ClientOrigin:
    """Who sent a bus message: the identity and the connection's default session id."""

    client_id: str
    hub_id: str
    site_id: str
    connection_session_id: str
    allowed_types: frozenset[str]
    workspace_id: str = ""


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


class HubRouter:
    """Routes one hub's client bus messages to its embedded agent."""

    def __init__(self, hub_id: str, agent: EmbeddedAgent, sessions: SessionStore | None = None) -> None:
        self.hub_id = hub_id
        self.agent = agent
        self.sessions = sessions if sessions is not None else SessionStore()

    # -- entry point -------------------------------------------------------------------------

    def handle(self, origin: ClientOrigin, message: BusMessage) -> list[BusMessage]:
        """The bus messages answering ``message`` (possibly none), in sending order."""
        if not is_type_allowed(origin.allowed_types, message.type):
            return [self.denied(origin, message)]
        if message.type == UTTERANCE:
            return self._utterance(origin, message)
        if message.type == "ovos.skills.list":
            return [self._skills_list(message)]
        if message.type == "ovos.intent.list":
            return [self._intent_list(message)]
        return self._event(origin, message)

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

    def _utterance(self, origin: ClientOrigin, message: BusMessage) -> list[BusMessage]:
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
        answer = self.agent.answer(
            kind=kind,
            text=text,
            lang=lang,
            conversation=conversation,
            context=context,
            data=data,
            structured=structured,
        )
        if answer is None:
            request = Request(kind, text, lang, session_id, {}, context, self.agent.hub, input=structured, data=data)
            answer = AgentAnswer(FALLBACK_SKILL_ID, "fallback", fallback_reply(request))
            pipeline_id = FALLBACK_PIPELINE_ID
        else:
            pipeline_id = SKILLS_PIPELINE_ID
        session_out = conversation.to_session(session_in)
        self.sessions.save(origin.client_id, conversation, session_out)
        return self._render(message, answer, pipeline_id, lang, session_out, handled=True)

    def _render(
        self,
        message: BusMessage,
        answer: AgentAnswer,
        pipeline_id: str,
        lang: str,
        session: dict[str, Any],
        *,
        handled: bool,
    ) -> list[BusMessage]:
        ctx = reply_context(message.context, session=session, pipeline_id=pipeline_id, skill_id=answer.skill_id)
        reply: SkillReply = answer.reply
        out: list[BusMessage] = []
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
        if handled:
            out.append(BusMessage(UTTERANCE_HANDLED, {"name": f"{answer.skill_id}:{answer.handler}"}, ctx))
        return out

    # -- raw events ----------------------------------------------------------------------------

    def _event(self, origin: ClientOrigin, message: BusMessage) -> list[BusMessage]:
        if message.type not in self.agent.subscribed_types():
            return []
        session_in, session_id = self._session_of(origin, message.context)
        lang = _lang_of(message.data, session_in, message.context)
        conversation = Conversation(session_id, lang)
        out: list[BusMessage] = []
        for answer in self.agent.event(message.type, lang, conversation, message.context, message.data):
            out.extend(self._render(message, answer, SKILLS_PIPELINE_ID, lang, dict(session_in), handled=False))
        return out

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

    def hub_event(self, bus_type: str, data: Mapping[str, Any], session_id: str | None = None) -> BusMessage:
        """A hub-initiated bus message (for :meth:`HubRuntime.push`)."""
        context: dict[str, Any] = {"source": HUB_SOURCE, "destination": "client", "sent_at": time.time()}
        if session_id:
            context["session"] = {"session_id": session_id}
        return BusMessage(bus_type, dict(data), context)
