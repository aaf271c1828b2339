"""``bus`` frame bodies of a batch: byte for byte what the envelope itself encodes."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.envelope import BusMessage, HiveMessage
from thalovant.protocol.errors import EnvelopeError
from thalovant.protocol.noise import SUITES, CipherState
from thalovant.protocol.wire1 import Wire1Frame
from thalovant_server.hub.bus_frames import BusFrames
from thalovant_server.hub.link import HubLink
from thalovant_server.hub.router import ClientOrigin


def envelope_bytes(message: BusMessage) -> bytes:
    return HiveMessage("bus", message.to_dict()).to_bytes()


def reply_context() -> dict[str, Any]:
    return {
        "session": {
            "session_id": "thalovant-python-1",
            "active_skills": [["jokes", 1796588013.0767055]],
            "context": {"thalovant_skills": {"jokes": {"next": 2}}},
        },
        "request_id": "req-1",
        "source": "HiveMind",
        "destination": "sdk",
        "pipeline_id": "thalovant.skills",
        "skill_id": "jokes",
    }


MESSAGES = [
    BusMessage("speak", {"utterance": "Why did the packet cross the network?", "lang": "en-us"}),
    BusMessage("speak", {"utterance": 'Ünïcödé ☃ \u2028 "quoted" \\ \x00', "n": 1e300, "i": 2**70}),
    BusMessage("speak", {"nan": float("nan"), "inf": float("inf")}, {"lone": "\ud800"}),
    BusMessage("ovos.utterance.handled", {"name": "jokes:tell_joke"}),
    BusMessage("", {}, {}),
    BusMessage("x", {"nested": [[], {}, [None, True, False, -0.0, 1.5]], 7: "int key", None: "none key"}),
    BusMessage("ü-type", {"display": {"table": [{"a": 1}]}}),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_a_message_alone_is_what_the_envelope_encodes(message: BusMessage) -> None:
    assert BusFrames().body(message) == envelope_bytes(message)


def test_messages_sharing_a_context_are_what_the_envelope_encodes() -> None:
    shared = reply_context()
    other = reply_context() | {"skill_id": "trivia"}
    batch = [BusMessage(m.type, m.data, shared) for m in MESSAGES]
    batch.insert(2, BusMessage("between", {"k": 1}, other))
    batch.append(BusMessage("after", {}, shared))  # the shared context again, after another one
    frames = BusFrames()
    assert [frames.body(m) for m in batch] == [envelope_bytes(m) for m in batch]


@pytest.mark.parametrize(
    "message",
    [
        BusMessage("speak", {"when": object()}),
        BusMessage("speak", {}, {"bad": object()}),
        BusMessage("speak", {(1, 2): "tuple key"}),
    ],
)
def test_what_the_envelope_refuses_is_refused(message: BusMessage) -> None:
    with pytest.raises(EnvelopeError):
        envelope_bytes(message)
    with pytest.raises(EnvelopeError):
        BusFrames().body(message)


def test_a_cycle_is_refused() -> None:
    data: dict[str, Any] = {}
    data["self"] = data
    with pytest.raises(EnvelopeError):
        BusFrames().body(BusMessage("speak", data))


def test_a_context_that_failed_is_not_taken_for_encoded() -> None:
    frames = BusFrames()
    context: dict[str, Any] = {"bad": object()}
    with pytest.raises(EnvelopeError):
        frames.body(BusMessage("a", {}, context))
    context["bad"] = 1.0
    message = BusMessage("b", {}, context)
    assert frames.body(message) == envelope_bytes(message)


def test_seal_bus_sends_the_envelopes_bytes_and_skips_what_cannot_be_sent() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    client = SecureChannel(CipherState(SUITES[0], k1), CipherState(SUITES[0], k2))
    hub = SecureChannel(CipherState(SUITES[0], k2), CipherState(SUITES[0], k1))
    link = HubLink(hub, ClientOrigin("c", "h", "site", "conn", frozenset()), None, "XXpsk2")  # type: ignore[arg-type]
    shared = reply_context()
    query = HiveMessage("query", {"msg_type": "bus", "payload": {"type": "speak"}}, {"query_id": 5})
    outbound = [
        BusMessage("speak", {"utterance": "one"}, shared),
        BusMessage("speak", {"bad": object()}, shared),
        query,
        Wire1Frame("bin", {"file_name": "a.txt"}, b"abc", 0),
        BusMessage("ovos.utterance.handled", {"name": "jokes:tell_joke"}, shared),
    ]
    bodies = [client.open(message) for message in link.seal_bus(outbound)]
    json_bodies = [frame.body for frame in bodies if frame is not None and not frame.binary]
    assert json_bodies == [envelope_bytes(outbound[0]), query.to_bytes(), envelope_bytes(outbound[4])]  # type: ignore[arg-type]
    assert [json.loads(b)["msg_type"] for b in json_bodies] == ["bus", "query", "bus"]
    assert sum(1 for frame in bodies if frame is not None and frame.binary) == 1
