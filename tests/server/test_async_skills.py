"""Async skill handlers through the router and a session's link, without a network.

A late answer leaves the link as a task and reaches the session's sink; a query's completion
follows it; a late, failing, or over-busy skill gets the failure event; a closed session
cancels what is still pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tests.server.test_runtime import MemoryDirectory, channel_pair, hub_keys, open_all
from tests.server.test_skills import ORIGIN, utterance

from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.envelope import BusMessage, HiveMessage
from thalovant_server.hub.agent import EmbeddedAgent
from thalovant_server.hub.link import HubLink, Outbound
from thalovant_server.hub.router import ClientOrigin, HubRouter
from thalovant_server.hub.runtime import HubHost
from thalovant_server.hub.skill_guard import MAX_PENDING_PER_SESSION
from thalovant_server.hub.skills.base import Request, Skill, SkillReply, intent, subscribe
from thalovant_server.hub.skills.jokes import JokesSkill


class Gate(Skill):
    """Answers "open the gate" once the test opens it; "slam" raises after awaiting."""

    skill_id = "gate"

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.entered = 0

    @intent("open", examples=("open the gate",))
    async def open(self, request: Request) -> SkillReply:
        self.entered += 1
        await self.opened.wait()
        return SkillReply.say("The gate is open.", "Come in.")

    @intent("slam", examples=("slam the gate",))
    async def slam(self, request: Request) -> SkillReply:
        await asyncio.sleep(0)
        raise RuntimeError("hinge broke")

    @intent("wrong", examples=("paint the gate",))
    def wrong(self, request: Request) -> Any:
        return "not a reply"

    @subscribe("gate.knock")
    async def knock(self, request: Request) -> SkillReply:
        await self.opened.wait()
        return SkillReply.say("Who is there?")


class Sink:
    """A carrier session's ``deliver``: records what arrives and wakes the test."""

    def __init__(self) -> None:
        self.items: list[Outbound] = []
        self.arrived = asyncio.Event()

    async def __call__(self, messages: Sequence[Outbound]) -> None:
        self.items.extend(messages)
        self.arrived.set()

    async def next(self) -> list[Outbound]:
        await self.arrived.wait()
        self.arrived.clear()
        items, self.items = self.items, []
        return items


def gate_link(timeout: float = 30.0) -> tuple[HubLink, SecureChannel, Gate, Sink]:
    gate = Gate()
    host = HubHost(hub_keys(skills=()))
    host.router = HubRouter(host.hub_id, EmbeddedAgent(host.hub_id, [gate, JokesSkill()]), skill_timeout=timeout)
    client, hub = channel_pair()
    origin = ClientOrigin("client-1", host.hub_id, "site", "conn-1", frozenset({"*"}))
    link = HubLink(hub, origin, host, "XXpsk2")
    sink = Sink()
    link.attach(sink)
    return link, client, gate, sink


def sealed(client: SecureChannel, frame: HiveMessage) -> bytes:
    [message] = client.seal_json(frame.to_bytes())
    return message


def ask(client: SecureChannel, text: str, request_id: str = "req-1") -> bytes:
    return sealed(client, HiveMessage("bus", utterance(text, request_id=request_id).to_dict()))


def types(items: list[Outbound]) -> list[str]:
    return [item.type for item in items if isinstance(item, BusMessage)]


async def test_a_late_answer_reaches_the_sink_while_other_messages_are_answered_at_once() -> None:
    link, client, gate, sink = gate_link()
    assert link.receive(ask(client, "open the gate", "req-gate")) == []
    assert link.pending == 1
    joke = open_all(client, link.receive(ask(client, "tell me a joke", "req-joke")))
    assert [m["payload"]["type"] for m in joke] == ["speak", "ovos.utterance.handled"]
    gate.opened.set()
    late = await sink.next()
    assert types(late) == ["speak", "speak", "ovos.utterance.handled"]
    first = late[0]
    assert isinstance(first, BusMessage) and first.data["utterance"] == "The gate is open."
    assert first.context["request_id"] == "req-gate" and first.context["skill_id"] == "gate"
    session = late[-1].context["session"] if isinstance(late[-1], BusMessage) else {}
    assert any(entry[0] == "gate" for entry in session["active_skills"])
    await asyncio.sleep(0)
    assert link.pending == 0


async def test_a_late_answer_to_a_query_is_followed_by_its_completion() -> None:
    link, client, gate, sink = gate_link()
    inner = {"msg_type": "bus", "payload": utterance("open the gate", request_id="q-1").to_dict()}
    assert link.receive(sealed(client, HiveMessage("query", inner, {"query_id": "q-1"}))) == []
    gate.opened.set()
    late = await sink.next()
    assert all(isinstance(item, HiveMessage) and item.msg_type == "query" for item in late)
    payloads = [item.payload["payload"]["type"] for item in late if isinstance(item, HiveMessage)]
    assert payloads == ["speak", "speak", "ovos.utterance.handled", "hive.query.complete"]
    assert all(item.metadata["query_id"] == "q-1" for item in late if isinstance(item, HiveMessage))


async def test_a_late_skill_times_out_with_the_failure_event() -> None:
    link, client, _gate, sink = gate_link(timeout=0.05)
    link.receive(ask(client, "open the gate", "req-late"))
    [failure] = await sink.next()
    assert isinstance(failure, BusMessage) and failure.type == "hive.query.timeout"
    assert failure.data["code"] == "skill_timeout" and failure.data["skill_id"] == "gate"
    assert "did not answer within 0.05 s" in failure.data["reason"]
    assert failure.context["request_id"] == "req-late"


async def test_failing_and_nonsense_answers_get_the_failure_event() -> None:
    link, client, _gate, sink = gate_link()
    link.receive(ask(client, "slam the gate", "req-slam"))
    [failure] = await sink.next()
    assert isinstance(failure, BusMessage) and failure.data["code"] == "skill_failed"
    wrong = open_all(client, link.receive(ask(client, "paint the gate", "req-paint")))
    assert [m["payload"]["type"] for m in wrong] == ["hive.query.timeout"]
    assert wrong[0]["payload"]["data"]["code"] == "skill_failed"


async def test_too_many_pending_answers_are_refused_at_once() -> None:
    link, client, gate, sink = gate_link()
    for n in range(MAX_PENDING_PER_SESSION):
        assert link.receive(ask(client, "open the gate", f"req-{n}")) == []
    refused = open_all(client, link.receive(ask(client, "open the gate", "req-over")))
    assert [m["payload"]["data"]["code"] for m in refused] == ["skill_busy"]
    assert refused[0]["payload"]["context"]["request_id"] == "req-over"
    gate.opened.set()
    delivered = 0
    while delivered < MAX_PENDING_PER_SESSION:
        delivered += types(await sink.next()).count("ovos.utterance.handled")
    assert gate.entered == MAX_PENDING_PER_SESSION


async def test_closing_the_session_cancels_pending_answers() -> None:
    link, client, gate, sink = gate_link()
    link.receive(ask(client, "open the gate"))
    await asyncio.sleep(0)
    assert gate.entered == 1 and link.pending == 1
    link.close()
    for _ in range(3):
        await asyncio.sleep(0)
    assert link.pending == 0
    gate.opened.set()
    await asyncio.sleep(0)
    assert sink.items == []


async def test_async_event_subscribers_answer_later() -> None:
    link, client, gate, sink = gate_link()
    knock = HiveMessage("bus", BusMessage("gate.knock", {}, {"request_id": "knock-1"}).to_dict())
    assert link.receive(sealed(client, knock)) == []
    gate.opened.set()
    late = await sink.next()
    assert types(late) == ["speak"] and isinstance(late[0], BusMessage)
    assert late[0].data["utterance"] == "Who is there?"


async def test_without_a_deferral_an_async_handler_is_refused_as_busy() -> None:
    router = HubRouter("h", EmbeddedAgent("h", [Gate()]))
    [refused] = router.handle(ORIGIN, utterance("open the gate"))
    assert refused.type == "hive.query.timeout" and refused.data["code"] == "skill_busy"


async def test_registered_sessions_get_their_sink_and_lose_it_on_unregister() -> None:
    from thalovant_server.hub.runtime import HubRuntime

    runtime = HubRuntime(MemoryDirectory(hubs={"hub-1": hub_keys()}))
    host = await runtime.host("hub-1")
    assert host is not None
    _client, hub = channel_pair()
    link = HubLink(hub, ClientOrigin("client-1", "hub-1", "site", "conn", frozenset()), host, "XXpsk2")

    class Live:
        carrier = "wss"

        def __init__(self) -> None:
            self.link = link
            self.got: list[Outbound] = []

        async def deliver(self, messages: Sequence[Outbound]) -> None:
            self.got.extend(messages)

        async def terminate(self, reason: str) -> None:
            return None

    live = Live()
    assert runtime.register(live)
    assert link._sink == live.deliver
    runtime.unregister(live)
    assert link._sink is None
