"""Unit tests of the skill API, the built-in skills and the router (no network)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from thalovant.protocol.envelope import BusMessage
from thalovant_server.hub.agent import EmbeddedAgent
from thalovant_server.hub.directory import DEFAULT_ALLOWED_TYPES
from thalovant_server.hub.router import ClientOrigin, HubRouter
from thalovant_server.hub.session import ACTIVE_SKILL_SECONDS
from thalovant_server.hub.skills.base import Request, Skill, SkillReply, action, code, intent, subscribe
from thalovant_server.hub.skills.capabilities import capability_sentence
from thalovant_server.hub.skills.fallback import FALLBACK_SKILL_ID
from thalovant_server.hub.skills.jokes import JOKES
from thalovant_server.hub.skills.registry import available_skills, build_skills

GUIDE_JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."
JOKE_GARDEN = ("jokes", "trivia", "capabilities", "memory")


def make_router(skills: tuple[str, ...] = JOKE_GARDEN) -> HubRouter:
    return HubRouter("hub-1", EmbeddedAgent("hub-1", build_skills(skills)))


ORIGIN = ClientOrigin("client-1", "hub-1", "site-1", "thalovant-python-conn", frozenset())


def utterance(
    text: str,
    *,
    session: dict[str, Any] | None = None,
    request_id: str = "req-1",
    data: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> BusMessage:
    ctx: dict[str, Any] = {
        "request_id": request_id,
        "thalovant_request_id": request_id,
        "source": "ThalovantPythonSDK/0.9.7",
        "platform": "ThalovantPythonSDK/0.9.7",
        "destination": "HiveMind",
        "session": {"session_id": "sess-1", "site_id": "site-1", "lang": "en-us", "request_id": request_id}
        | (session or {}),
    }
    ctx.update(context or {})
    return BusMessage("recognizer_loop:utterance", {"utterances": [text], "lang": "en-us"} | (data or {}), ctx)


def speech(replies: list[BusMessage]) -> list[str]:
    return [m.data["utterance"] for m in replies if m.type == "speak"]


def handled_session(replies: list[BusMessage]) -> dict[str, Any]:
    assert replies[-1].type == "ovos.utterance.handled"
    session = replies[-1].context["session"]
    assert isinstance(session, dict)
    return session


def carry(session: dict[str, Any]) -> dict[str, Any]:
    """What the public SDK carries into the next ask of the same session (spec 6.6)."""
    keep = ("converse_handlers", "active_handlers", "active_skills", "context", "utterance_states", "response_mode")
    return {k: session[k] for k in keep if session.get(k)}


def test_registry_finds_every_builtin_skill() -> None:
    names = set(available_skills())
    assert {"jokes", "trivia", "capabilities", "memory", "clock", "approvals"} <= names
    assert [s.skill_id for s in build_skills(["jokes", "nope", "jokes", "clock"])] == ["jokes", "clock"]


def test_first_joke_is_the_guides_and_another_one_differs() -> None:
    router = make_router()
    first = router.handle(ORIGIN, utterance("Tell me a short clean joke."))
    assert speech(first) == [GUIDE_JOKE]
    session = handled_session(first)
    second = router.handle(ORIGIN, utterance("another one", session=carry(session), request_id="req-2"))
    assert speech(second) and speech(second)[0] != GUIDE_JOKE
    assert speech(second)[0] in JOKES


def test_another_one_uses_the_clients_snapshot_as_authoritative() -> None:
    router = make_router()
    first = router.handle(ORIGIN, utterance("Tell me a joke"))
    snapshot = carry(handled_session(first))
    # a different hub process (fresh router) continues from the client's snapshot alone
    other = make_router()
    second = other.handle(ORIGIN, utterance("another one", session=snapshot, request_id="req-2"))
    assert speech(second) == [JOKES[1]]


def test_replies_carry_the_request_context_like_an_ovos_reply() -> None:
    router = make_router()
    replies = router.handle(ORIGIN, utterance("What can this hub do?", request_id="req-42"))
    assert [m.type for m in replies] == ["speak", "ovos.utterance.handled"]
    for message in replies:
        assert message.context["request_id"] == "req-42"
        assert message.context["thalovant_request_id"] == "req-42"
        assert message.context["source"] == "HiveMind"
        assert message.context["destination"] == "ThalovantPythonSDK/0.9.7"
        assert message.context["session"]["session_id"] == "sess-1"
        assert "fallback" not in message.context["pipeline_id"]
    assert speech(replies) == ["This hub can answer quick joke and trivia requests."]
    assert replies[0].data["lang"] == "en-us"


def test_capability_sentence_follows_the_hubs_skills() -> None:
    router = make_router(("jokes", "capabilities"))
    assert speech(router.handle(ORIGIN, utterance("What can this hub do?"))) == [
        "This hub can answer quick joke requests."
    ]
    agent = EmbeddedAgent("h", build_skills(("clock", "jokes", "trivia", "approvals", "capabilities")))
    assert capability_sentence(agent.hub) == (
        "This hub can answer quick time and date, joke, trivia and approval requests."
    )


def test_memory_is_per_session() -> None:
    router = make_router()
    first = router.handle(ORIGIN, utterance("Remember that my favorite color is blue."))
    assert "blue" in speech(first)[0]
    snapshot = carry(handled_session(first))
    recall = router.handle(ORIGIN, utterance("What color did I mention?", session=snapshot, request_id="r2"))
    assert "blue" in speech(recall)[0]
    # the hub also keeps the state for senders that carry nothing (same client, same session id)
    plain = router.handle(ORIGIN, utterance("What color did I mention?", request_id="r3"))
    assert "blue" in speech(plain)[0]
    other = router.handle(
        ORIGIN, utterance("What color did I mention?", session={"session_id": "sess-2"}, request_id="r4")
    )
    assert "blue" not in speech(other)[0]
    # another client using the same session id knows nothing either
    stranger = ClientOrigin("client-2", "hub-1", "site-2", "conn-2", frozenset())
    assert "blue" not in speech(router.handle(stranger, utterance("What color did I mention?")))[0]


def test_unmatched_utterance_gets_an_immediate_fallback() -> None:
    router = make_router()
    replies = router.handle(ORIGIN, utterance("Show the next instruction."))
    assert [m.type for m in replies] == ["speak", "ovos.utterance.handled"]
    assert speech(replies)[0]
    assert "fallback" in replies[0].context["pipeline_id"]


def test_actions_and_codes_reach_the_approvals_skill() -> None:
    router = make_router(("approvals", "capabilities"))
    action_msg = utterance(
        "/approve invoice-42",
        context={"input": {"kind": "action", "title": "Approve invoice", "payload": "/approve invoice-42"}},
    )
    replies = router.handle(ORIGIN, action_msg)
    assert speech(replies) == ["Approved invoice-42."]
    assert replies[0].data["display"]["table"]["rows"] == [["invoice-42", "approved"]]
    assert replies[0].context["skill_id"] == "approvals"
    code_input = {"kind": "invoice", "label": "invoice", "value": "INV-2026-001", "exact": True}
    replies = router.handle(
        ORIGIN, utterance("INV-2026-001", data={"input": code_input}, context={"input": code_input})
    )
    assert "INV-2026-001" in speech(replies)[0]
    assert replies[0].data["display"]["buttons"][0]["payload"] == "/approve INV-2026-001"


def test_action_without_a_handler_falls_back() -> None:
    router = make_router()
    replies = router.handle(
        ORIGIN, utterance("/approve x", context={"input": {"kind": "action", "payload": "/approve x"}})
    )
    assert "fallback" in replies[0].context["pipeline_id"]
    assert "/approve x" in speech(replies)[0]


def test_emit_reaches_subscribed_skills_and_policy_denies_other_types() -> None:
    router = make_router()
    status = BusMessage(
        "thalovant.client.status", {"state": "ready"}, {"source": "checkout-kiosk", "session": {"session_id": "s"}}
    )
    replies = router.handle(ORIGIN, status)
    assert [m.type for m in replies] == ["thalovant.client.status.response"]
    assert replies[0].data["state"] == "ready"
    assert replies[0].context["destination"] == "checkout-kiosk"
    denied = router.handle(ORIGIN, BusMessage("mycroft.volume.set", {}, {"request_id": "r-9"}))
    assert [m.type for m in denied] == ["hive.policy.denied"]
    assert denied[0].data["denied_type"] == "mycroft.volume.set"
    assert denied[0].data["code"] == "acl_disallowed_type"
    assert denied[0].context["request_id"] == "r-9"
    assert "recognizer_loop:utterance" in denied[0].data["data"]["allowed"]


def test_narrow_allow_list_denies_utterances() -> None:
    router = make_router()
    origin = ClientOrigin("c", "hub-1", "s", "conn", frozenset({"thalovant.client.status"}))
    replies = router.handle(origin, utterance("Tell me a joke", request_id="r-5"))
    assert [m.type for m in replies] == ["hive.policy.denied"]
    assert replies[0].context["request_id"] == "r-5"
    assert "recognizer_loop:utterance" in DEFAULT_ALLOWED_TYPES


def test_skill_and_intent_listing() -> None:
    router = make_router()
    skills = router.handle(ORIGIN, BusMessage("ovos.skills.list", {}, {"request_id": "q1"}))
    assert skills[0].type == "ovos.skills.list.response"
    assert [s["skill_id"] for s in skills[0].data["skills"]] == list(JOKE_GARDEN)
    intents = router.handle(ORIGIN, BusMessage("ovos.intent.list", {"lang": "en-us"}, {"request_id": "q2"}))
    assert intents[0].data["ok"] is True
    assert {"jokes", "memory"} <= {i["skill_id"] for i in intents[0].data["intents"]}
    assert intents[0].context["request_id"] == "q2"


def test_intent_descriptions_and_manifests() -> None:
    router = make_router()
    asked = {"skill_id": "jokes", "intent_name": "tell_joke", "lang": "en-us"}
    [described] = router.handle(ORIGIN, BusMessage("ovos.intent.describe", asked, {"request_id": "d1"}))
    assert described.type == "ovos.intent.describe.response" and described.context["request_id"] == "d1"
    [definition] = described.data["definitions"]
    assert definition["method"] == "template"
    assert definition["definition"]["skill_id"] == "jokes" and "tell me a joke" in definition["definition"]["samples"]
    missing = {"skill_id": "jokes", "intent_name": "nope", "lang": "en-us"}
    [refused] = router.handle(ORIGIN, BusMessage("ovos.intent.describe", missing, {"request_id": "d2"}))
    assert refused.data["ok"] is False and "nope" in refused.data["error"]
    [padatious] = router.handle(ORIGIN, BusMessage("intent.service.padatious.manifest.get", {"lang": "en-us"}, {}))
    assert padatious.type == "intent.service.padatious.manifest" and "jokes:tell_joke" in padatious.data["intents"]
    [adapt] = router.handle(ORIGIN, BusMessage("intent.service.adapt.manifest.get", {"lang": "en-us"}, {}))
    assert adapt.type == "intent.service.adapt.manifest" and adapt.data == {"intents": []}


def test_clock_answers_time_and_date_in_the_request_zone() -> None:
    router = make_router(("clock",))
    time_reply = speech(router.handle(ORIGIN, utterance("What time is it?")))[0]
    assert time_reply.startswith("It is ") and "(UTC)" in time_reply
    zoned = utterance(
        "what's the time", context={"location": {"city": "Lisbon", "timezone": {"code": "Europe/Lisbon"}}}
    )
    assert "(Europe/Lisbon)" in speech(router.handle(ORIGIN, zoned))[0]
    assert speech(router.handle(ORIGIN, utterance("What is the date today?")))[0].startswith("Today is ")


class EchoSkill(Skill):
    skill_id = "echo"
    capability = "echo"

    @intent("echo", patterns=(r"^echo (?P<text>.+)$",))
    def echo(self, request: Request) -> SkillReply:
        request.state["count"] = int(request.state.get("count", 0)) + 1
        return SkillReply.say(request.slots["text"], f"count {request.state['count']}")

    @action("/boom")
    def boom(self, request: Request) -> SkillReply:
        raise RuntimeError("handler bug")

    @code("*")
    def any_code(self, request: Request) -> SkillReply:
        return SkillReply.say(f"code {request.input.get('kind')} {request.utterance}")

    @subscribe("custom.event")
    def custom(self, request: Request) -> SkillReply | None:
        return None


def test_custom_skill_api_slots_state_and_errors() -> None:
    router = HubRouter("h", EmbeddedAgent("h", [EchoSkill()]))
    first = router.handle(ORIGIN, utterance("Echo hello world"))
    assert speech(first) == ["hello world", "count 1"]
    second = router.handle(ORIGIN, utterance("echo again", session=carry(handled_session(first))))
    assert speech(second) == ["again", "count 2"]
    broken = router.handle(ORIGIN, utterance("/boom", context={"input": {"kind": "action", "payload": "/boom"}}))
    assert [m.type for m in broken] == ["hive.query.timeout"]
    assert broken[0].data["code"] == "skill_failed" and broken[0].context["request_id"] == "req-1"
    coded = router.handle(ORIGIN, utterance("X1", data={"input": {"kind": "serial", "value": "X1"}}))
    assert speech(coded) == ["code serial X1"]
    anything = ClientOrigin("c", "h", "s", "conn", frozenset({"*"}))
    assert router.handle(anything, BusMessage("custom.event", {}, {})) == []


class SlotEater(Skill):
    skill_id = "slot-eater"
    capability = "slot-eater"

    @intent("say", patterns=(r"^say (?P<text>.+)$",))
    def say(self, request: Request) -> SkillReply:
        return SkillReply.say(request.slots.pop("text", "(gone)"))


def test_a_handler_changing_its_slots_does_not_change_the_next_identical_request() -> None:
    router = HubRouter("h", EmbeddedAgent("h", [SlotEater()]))
    assert speech(router.handle(ORIGIN, utterance("say hello"))) == ["hello"]
    assert speech(router.handle(ORIGIN, utterance("say hello"))) == ["hello"]


@pytest.mark.parametrize(
    "session",
    [
        {"active_skills": "nonsense", "context": 5},
        {"active_skills": [[1, 2], ["jokes", "x"], None], "context": {"thalovant_skills": {"jokes": 3}}},
        {"session_id": 17, "lang": ["x"]},
    ],
)
def test_malformed_session_snapshots_are_tolerated(session: dict[str, Any]) -> None:
    router = make_router()
    replies = router.handle(ORIGIN, utterance("Tell me a short clean joke.", session=session))
    assert speech(replies) == [GUIDE_JOKE]


class FlakySkill(Skill):
    skill_id = "flaky"
    capability = "flaky"

    @intent("flake", examples=("do the flaky thing",))
    def flake(self, request: Request) -> SkillReply:
        raise RuntimeError("flaked")


def test_a_skill_failing_five_times_in_a_row_is_quarantined_on_its_hub() -> None:
    from thalovant_server.hub.skill_guard import QUARANTINE_AFTER

    router = HubRouter("h", EmbeddedAgent("h", [FlakySkill(), *build_skills(("jokes", "capabilities"))]))
    for n in range(QUARANTINE_AFTER):
        [failure] = router.handle(ORIGIN, utterance("do the flaky thing", request_id=f"f{n}"))
        assert failure.type == "hive.query.timeout" and failure.data["skill_id"] == "flaky"
    assert "flaky" in router.health.quarantined
    after = router.handle(ORIGIN, utterance("do the flaky thing"))
    assert "fallback" in after[0].context["pipeline_id"]
    capabilities = speech(router.handle(ORIGIN, utterance("What can this hub do?")))[0]
    assert "flaky" not in capabilities and "joke" in capabilities


def test_an_answer_ends_a_streak_of_faults() -> None:
    from thalovant_server.hub.skill_guard import SkillFault, SkillHealth

    health = SkillHealth(limit=2)
    assert health.fault(SkillFault.failed("s", "h")) is False
    health.answered("s")
    assert health.fault(SkillFault.failed("s", "h")) is False
    assert health.fault(SkillFault.busy("s", "h")) is False  # busy is the client's doing
    assert health.fault(SkillFault.timed_out("s", "h", 1.0)) is True and "s" in health.quarantined


def test_follow_ups_go_to_the_most_recently_active_skill() -> None:
    router = make_router()
    now = time.time()

    def answered_by(text: str, active: list[list[Any]]) -> str:
        replies = router.handle(ORIGIN, utterance(text, session={"active_skills": active}))
        return str(replies[-1].data["name"])

    # "another one" is a follow-up of both jokes and trivia: the most recent active skill wins
    assert answered_by("another one", [["trivia", now], ["jokes", now - 1]]) == "trivia:another_fact"
    assert answered_by("another one", [["jokes", now], ["trivia", now - 1]]) == "jokes:another_joke"
    # an expired activation does not count, nor rank above a live one
    expired = now - ACTIVE_SKILL_SECONDS - 5
    assert answered_by("another one", [["jokes", expired], ["trivia", now]]) == "trivia:another_fact"
    # with no skill active, follow-ups do not match; the best plain intent does
    assert answered_by("another one", [["clock", now]]) == "jokes:tell_joke"
    assert answered_by("more", [["clock", now]]) == f"{FALLBACK_SKILL_ID}:fallback"
