"""Runtime client rules that need no real hub: protocol choice, contexts, reply collection,
and the carrier's refusal/timeout classification against raw local WebSocket servers."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from thalovant.carriers.wss import authorized_url
from thalovant.client import AsyncThalovantClient, ThalovantClient, select_protocol
from thalovant.errors import (
    ThalovantConnectionError,
    ThalovantHubRefusedError,
    ThalovantPolicyDeniedError,
    ThalovantRuntimeError,
    ThalovantTimeoutError,
    ThalovantUnansweredError,
    ThalovantUnsupportedProtocolError,
)
from thalovant.events import ThalovantEvent
from thalovant.identity import ThalovantIdentity
from thalovant.protocol.envelope import copy_json
from thalovant.protocol.errors import EnvelopeError
from thalovant.runtime.ask import ReplyCollector
from thalovant.runtime.bus import carried_fields, runtime_context, utterance_message
from thalovant.runtime.inbound import normalise_context


def make_identity(**extra: Any) -> ThalovantIdentity:
    data: dict[str, Any] = {
        "access_key": "key-123",
        "password": "a-long-enough-password",
        "site_id": "site-1",
        "default_master": "https://127.0.0.1",
        "default_port": 443,
    }
    data.update(extra)
    return ThalovantIdentity.from_mapping(data)


# ---------------------------------------------------------------- protocol selection (spec 1.6)


def test_wss_is_preferred_when_the_identity_has_an_endpoint() -> None:
    identity = make_identity(data_plane_endpoints={"wss": "wss://127.0.0.1:8443/hubs/h"})
    assert select_protocol(identity, None) == "wss"


def test_https_is_chosen_without_wss_endpoint() -> None:
    identity = make_identity()
    assert select_protocol(identity, None) == "https"


def test_forced_protocols_the_identity_lacks_are_refused() -> None:
    identity = make_identity()
    with pytest.raises(ThalovantUnsupportedProtocolError):
        select_protocol(identity, "wss")
    with pytest.raises(ThalovantUnsupportedProtocolError):
        ThalovantClient(identity, protocol="mqtt")
    with pytest.raises(ThalovantUnsupportedProtocolError):
        select_protocol(identity, "carrier-pigeon")


# ---------------------------------------------------------------- contexts (spec 6.1, 6.2, 6.6)


def test_runtime_context_adds_only_missing_keys() -> None:
    ctx = runtime_context(
        {"source": "kiosk", "metadata": {"a": 1}},
        useragent="UA/1",
        connection_sid="thalovant-python-abc",
        site_id="site-1",
        identity_metadata={"a": 0, "b": 2},
    )
    assert ctx["source"] == "kiosk"
    assert ctx["platform"] == "UA/1"
    assert ctx["destination"] == "HiveMind"
    assert ctx["session"] == {"session_id": "thalovant-python-abc", "site_id": "site-1"}
    assert ctx["metadata"] == {"a": 1, "b": 2}
    default = runtime_context(
        {"session": {"session_id": "default"}}, useragent="UA", connection_sid="sid", site_id="s"
    )
    assert default["session"]["session_id"] == "sid"


def test_utterance_message_shape() -> None:
    rid, data, ctx = utterance_message(
        "  hello there ",
        lang="en-us",
        session_id="sess-1",
        request_id="req-1",
        context=None,
        site_id="site-1",
        carried={"active_skills": ["memory"], "lang": "ignored-because-set"},
    )
    assert rid == "req-1"
    assert data == {"utterances": ["hello there"], "lang": "en-us"}
    assert ctx["request_id"] == ctx["thalovant_request_id"] == "req-1"
    assert ctx["session"]["session_id"] == "sess-1"
    assert ctx["session"]["request_id"] == "req-1"
    assert ctx["session"]["lang"] == "en-us"
    assert ctx["session"]["active_skills"] == ["memory"]
    rid2, _data, _ctx = utterance_message(
        "x", lang="en-us", session_id=None, request_id=None, context=None, site_id="s"
    )
    assert rid2.startswith("thalovant-request-") and len(rid2) == len("thalovant-request-") + 32


def test_carried_fields_keep_only_truthy_conversation_state() -> None:
    session = {
        "session_id": "s",
        "lang": "en-us",
        "active_skills": [["memory", 1]],
        "context": {},
        "site_id": "x",
    }
    assert carried_fields(session) == {"active_skills": [["memory", 1]]}


def test_carried_values_are_copies_the_message_does_not_share() -> None:
    kept = carried_fields({"active_skills": [["memory", 1]], "context": {"frames": [{"n": 1}]}})
    _rid, _data, ctx = utterance_message(
        "hi", lang="en-us", session_id="s", request_id="r", context=None, site_id="x", carried=kept
    )
    ctx["session"]["active_skills"][0].append("changed")
    ctx["session"]["context"]["frames"][0]["n"] = 2
    assert kept == {"active_skills": [["memory", 1]], "context": {"frames": [{"n": 1}]}}


def test_copy_json_copies_containers_and_shares_immutable_values() -> None:
    text, big = "utterance", 2**70
    value = {"a": [1, 2.5, text, None, True, {"b": (3, [4])}], "n": big}
    copied = copy_json(value)
    assert copied == {"a": [1, 2.5, text, None, True, {"b": [3, [4]]}], "n": big}
    assert copied is not value and copied["a"] is not value["a"] and copied["a"][5] is not value["a"][5]
    assert copied["a"][2] is text
    assert copy_json([float("nan"), float("-inf"), 1.5]) == [None, None, 1.5]


def test_copy_json_refuses_a_cycle_with_an_envelope_error() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(EnvelopeError):
        copy_json(cyclic)
    with pytest.raises(EnvelopeError):
        utterance_message("hi", lang="en", session_id=None, request_id=None, context=cyclic, site_id="x")


def test_inbound_context_normalisation() -> None:
    original = {"destination": "client", "hivemind_verified_source_peer": "evil", "session": {}}
    result = normalise_context(original)
    assert result == {"source": "client", "session": {}}
    assert "destination" in original


# ---------------------------------------------------------------- reply collection (spec 6.3)


def ev(name: str, data: dict[str, Any] | None = None, rid: str = "r1") -> ThalovantEvent:
    return ThalovantEvent(
        name=name, data=data or {}, context={"request_id": rid, "session": {"session_id": "s"}}
    )


async def test_speech_settles_after_the_window_and_drops_repeats() -> None:
    collector = ReplyCollector("r1", "s", settle_seconds=0.05)
    collector.feed(ev("speak", {"utterance": "Hello   there."}))
    collector.feed(ev("speak", {"utterance": "Hello there."}))
    collector.feed(ev("speak", {"text": "Second."}))
    reply = await collector.result(5)
    assert reply.text == "Hello there. Second."


async def test_handled_after_speech_finishes_at_once() -> None:
    collector = ReplyCollector("r1", "s", settle_seconds=60)
    collector.feed(ev("speak", {"utterance": "Done."}))
    collector.feed(ev("ovos.utterance.handled"))
    assert collector.done
    assert (await collector.result(1)).text == "Done."


async def test_handled_without_speech_times_out_in_the_empty_window() -> None:
    collector = ReplyCollector("r1", "s", settle_seconds=0, empty_reply_wait=0.01)
    collector.feed(ev("ovos.utterance.handled"))
    with pytest.raises(ThalovantTimeoutError, match="did not emit a speak"):
        await collector.result(5)


async def test_unmatched_then_fallback_speech_wins() -> None:
    collector = ReplyCollector("r1", "s", settle_seconds=0, empty_reply_wait=5)
    collector.feed(ev("ovos.intent.unmatched", {"utterance": "blorp"}))
    collector.feed(ev("speak", {"utterance": "I do not know blorp."}))
    assert (await collector.result(1)).text == "I do not know blorp."


async def test_unmatched_without_speech_is_unanswered() -> None:
    collector = ReplyCollector("r1", "s", settle_seconds=0, empty_reply_wait=0.01)
    collector.feed(ev("complete_intent_failure", {"utterance": "blorp"}))
    with pytest.raises(ThalovantUnansweredError):
        await collector.result(5)


async def test_hard_failures_end_the_ask() -> None:
    denied = ReplyCollector("r1", "s", settle_seconds=0)
    denied.feed(
        ev(
            "hive.policy.denied",
            {
                "denied_type": "recognizer_loop:utterance",
                "code": "acl_disallowed_type",
                "reason": "not allowed",
            },
        )
    )
    with pytest.raises(ThalovantPolicyDeniedError):
        await denied.result(1)
    timeout = ReplyCollector("r1", "s", settle_seconds=0)
    timeout.feed(ev("hive.query.timeout", {"reason": "agent too slow"}))
    with pytest.raises(ThalovantRuntimeError, match="agent too slow"):
        await timeout.result(1)


async def test_deadline_without_speech() -> None:
    collector = ReplyCollector("r1", "s", settle_seconds=0)
    with pytest.raises(ThalovantTimeoutError):
        await collector.result(0.01)


# ---------------------------------------------------------------- WSS carrier against raw servers


def test_authorization_query_is_replaced_and_urlencoded() -> None:
    url = authorized_url("wss://hub.local/hivemind/public?x=1&authorization=old", "ua", "key")
    assert url == "wss://hub.local/hivemind/public?x=1&authorization=dWE6a2V5"
    padded = authorized_url("ws://h/", "ThalovantPythonSDK/0.9.7", "k12")
    value = parse_qs(urlsplit(padded).query)["authorization"][0]
    assert base64.b64decode(value) == b"ThalovantPythonSDK/0.9.7:k12"
    assert "%3D" in padded


Behaviour = Callable[[ServerConnection], Awaitable[None]]


async def _start(behaviour: Behaviour, status: int | None = None) -> tuple[Server, int]:
    def process_request(_conn: ServerConnection, _request: Request) -> Response | None:
        if status is None:
            return None
        return Response(status, "Refused", Headers(), b"")

    server = await serve(behaviour, "127.0.0.1", 0, process_request=process_request)
    port = server.sockets[0].getsockname()[1]
    return server, port


@pytest.fixture
async def raw_hub() -> AsyncIterator[Callable[..., Awaitable[int]]]:
    servers: list[Server] = []

    async def start(behaviour: Behaviour, status: int | None = None) -> int:
        server, port = await _start(behaviour, status)
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def ws_client(port: int, tmp_path: Path, **options: Any) -> AsyncThalovantClient:
    identity = make_identity(data_plane_endpoints={"wss": f"ws://127.0.0.1:{port}/"})
    return AsyncThalovantClient(identity, noise_state_dir=tmp_path / "noise", auto_reconnect=False, **options)


async def _silent(conn: ServerConnection) -> None:
    await conn.wait_closed()


async def test_silent_hub_is_a_handshake_timeout(raw_hub: Any, tmp_path: Path) -> None:
    port = await raw_hub(_silent)
    client = ws_client(port, tmp_path, handshake_timeout=0.2)
    with pytest.raises(ThalovantTimeoutError):
        await client.connect()
    assert client.connection_info().phase == "error"
    await client.close()


@pytest.mark.parametrize("status", [401, 403])
async def test_upgrade_refusal_is_a_hub_refusal(raw_hub: Any, tmp_path: Path, status: int) -> None:
    port = await raw_hub(_silent, status)
    client = ws_client(port, tmp_path)
    with pytest.raises(ThalovantHubRefusedError):
        await client.connect()


async def test_other_upgrade_failures_are_connection_errors(raw_hub: Any, tmp_path: Path) -> None:
    port = await raw_hub(_silent, 503)
    client = ws_client(port, tmp_path)
    with pytest.raises(ThalovantConnectionError) as info:
        await client.connect()
    assert not isinstance(info.value, ThalovantHubRefusedError)


@pytest.mark.parametrize(("code", "refused"), [(1008, True), (1000, True), (1013, False), (1011, False)])
async def test_close_codes_before_hello(raw_hub: Any, tmp_path: Path, code: int, refused: bool) -> None:
    async def closer(conn: ServerConnection) -> None:
        await conn.close(code=code)

    port = await raw_hub(closer)
    client = ws_client(port, tmp_path)
    with pytest.raises(ThalovantConnectionError) as info:
        await client.connect()
    assert isinstance(info.value, ThalovantHubRefusedError) is refused


async def test_binary_before_authentication_is_a_connection_error(raw_hub: Any, tmp_path: Path) -> None:
    async def rude(conn: ServerConnection) -> None:
        await conn.send(json.dumps({"msg_type": "hello", "payload": {"node_id": "n"}}))
        await conn.send(b"\x00\x01")
        await conn.wait_closed()

    port = await raw_hub(rude)
    client = ws_client(port, tmp_path)
    with pytest.raises(ThalovantConnectionError, match="before Noise authentication"):
        await client.connect()


async def test_refused_connection_reports_no_credentials(raw_hub: Any, tmp_path: Path) -> None:
    port = await raw_hub(_silent, 401)
    client = ws_client(port, tmp_path)
    with pytest.raises(ThalovantHubRefusedError):
        await client.connect()
    info = client.connection_info()
    assert info.last_error is not None
    assert "key-123" not in info.last_error and "authorization" not in info.last_error
