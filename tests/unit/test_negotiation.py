"""The negotiation state machines (spec 3.1-3.10): hub and client driven against each other."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fixtures.conformance import load_vectors

from thalovant.protocol.canonical import build_prologue, canonical_json
from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.envelope import HiveMessage, parse_envelope
from thalovant.protocol.errors import (
    ClientKeyRejected,
    DecryptError,
    HandshakeError,
    HubKeyChanged,
    KKFailed,
    NegotiationAborted,
    NegotiationError,
    NegotiationSuperseded,
    ProtocolError,
)
from thalovant.protocol.framing import Frame
from thalovant.protocol.negotiation import (
    MESSAGE1_PAYLOAD,
    ClientHello,
    ClientNegotiation,
    HubNegotiation,
    select_noise,
)
from thalovant.protocol.noise import SUITES, HandshakeState, KeyPair

NODE = "node-alpha"
SITE = "kitchen"
SID = "thalovant-python-" + "ab" * 16
PSK = bytes.fromhex("ce6825b3" + "11" * 24 + "00f900ce")  # fixed: no argon2 in these tests
OTHER_PSK = bytes.fromhex("5a" * 32)
CHACHA, AESGCM = SUITES
HUB_KEY = KeyPair.generate()
CLIENT_KEY = KeyPair.generate()


def make_hub(
    *,
    pin: bytes | None = None,
    psk: bytes = PSK,
    static: KeyPair = HUB_KEY,
    kk_decoy: bool = False,
    suites: tuple[str, ...] = SUITES,
) -> HubNegotiation:
    return HubNegotiation(node_id=NODE, static=static, psk=psk, pinned_client_key=pin, kk_decoy=kk_decoy, suites=suites)


def make_client(
    *,
    hub_pin: bytes | None = None,
    static: KeyPair = CLIENT_KEY,
    force_xx: bool = False,
    session_id: str = SID,
    shared_channel: bool = False,
) -> ClientNegotiation:
    return ClientNegotiation(
        static=static,
        site_id=SITE,
        session_id=session_id,
        hub_pin=hub_pin,
        force_xx=force_xx,
        shared_channel=shared_channel,
    )


def to_offer(hub: HubNegotiation, client: ClientNegotiation) -> None:
    hello, offer = hub.opening()
    assert client.receive_text(hello) == []
    assert not client.needs_psk
    assert client.receive_text(offer) == []
    assert client.needs_psk
    assert client.node_id == NODE


@dataclass
class Session:
    hub: HubNegotiation
    client: ClientNegotiation
    hello: ClientHello


def negotiate(hub: HubNegotiation, client: ClientNegotiation, psk: bytes = PSK) -> Session:
    to_offer(hub, client)
    message1 = client.start(psk)
    assert not client.needs_psk
    (message2,) = hub.receive_text(message1)
    out = client.receive_text(message2)
    assert client.complete
    if client.pattern == "XXpsk2":
        message3, encrypted_hello = out
        assert isinstance(message3, str)
        assert not hub.complete
        assert hub.receive_text(message3) == []
    else:
        (encrypted_hello,) = out
    assert hub.complete and not hub.ready
    assert isinstance(encrypted_hello, bytes)
    hello = hub.receive_binary(encrypted_hello)
    assert hub.ready
    return Session(hub, client, hello)


def exchange(session: Session) -> None:
    """Application traffic flows both ways over the negotiated channels."""
    (up,) = session.client.channel.seal_json(HiveMessage.bus("ping").to_bytes())
    frame = session.hub.channel.open(up)
    assert frame is not None and parse_envelope(frame.body).bus_message().type == "ping"
    big = b"\x00" * 140_000
    downs = session.hub.channel.seal_binary(big)
    frames = [session.client.receive_binary(m) for m in downs]
    assert frames[-1] == Frame(True, big) and frames[:-1] == [None] * (len(downs) - 1)


# -- complete negotiations --------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_xx_negotiation(suite: str) -> None:
    s = negotiate(make_hub(suites=(suite,)), make_client())
    assert (s.client.pattern, s.client.suite) == ("XXpsk2", suite)
    assert (s.hub.pattern, s.hub.suite) == ("XXpsk2", suite)
    assert s.client.hub_static == HUB_KEY.public
    assert s.hub.remote_static == CLIENT_KEY.public
    assert s.hub.key_to_pin == CLIENT_KEY.public
    assert s.hello.session_id == SID and s.hello.site_id == SITE
    assert s.hello.envelope.to_dict() == {
        "msg_type": "hello",
        "payload": {"pubkey": "", "session": {"session_id": SID}, "site_id": SITE},
        "metadata": {},
        "route": [],
        "node": None,
        "target_site_id": None,
        "target_pubkey": None,
        "source_peer": None,
    }
    assert s.hub.client_payload == {"binarize": False, "encodings": []}
    exchange(s)


@pytest.mark.parametrize("suite", SUITES)
def test_kk_negotiation(suite: str) -> None:
    s = negotiate(make_hub(pin=CLIENT_KEY.public, suites=(suite,)), make_client(hub_pin=HUB_KEY.public))
    assert (s.client.pattern, s.client.suite) == ("KKpsk0", suite)
    assert s.hub.pattern == "KKpsk0"
    assert s.hub.remote_static == CLIENT_KEY.public
    assert s.hub.key_to_pin is None
    assert s.client.hub_static == HUB_KEY.public
    exchange(s)


def test_suite_preference_is_the_clients() -> None:
    s = negotiate(make_hub(suites=(AESGCM, CHACHA)), make_client())
    assert s.client.suite == CHACHA


def test_xx_then_kk_on_reconnect_with_pins() -> None:
    client_key = KeyPair.generate()
    first = negotiate(make_hub(), make_client(static=client_key))
    assert first.client.pattern == "XXpsk2"
    hub_pin, client_pin = first.client.hub_static, first.hub.key_to_pin
    assert client_pin == client_key.public
    second = negotiate(make_hub(pin=client_pin), make_client(static=client_key, hub_pin=hub_pin))
    assert second.client.pattern == "KKpsk0"
    exchange(second)


def test_pinned_client_using_xx_is_accepted_without_new_pin() -> None:
    s = negotiate(make_hub(pin=CLIENT_KEY.public), make_client(hub_pin=HUB_KEY.public, force_xx=True))
    assert s.client.pattern == "XXpsk2"
    assert s.hub.key_to_pin is None and s.hub.remote_static == CLIENT_KEY.public


def test_client_pin_without_hub_kk_offer_uses_xx() -> None:
    s = negotiate(make_hub(), make_client(hub_pin=HUB_KEY.public))
    assert s.client.pattern == "XXpsk2"


# -- refusals ----------------------------------------------------------------------------------


def test_wrong_password_xx_is_a_refusal_on_the_client() -> None:
    hub, client = make_hub(psk=OTHER_PSK), make_client()
    to_offer(hub, client)
    (message2,) = hub.receive_text(client.start(PSK))
    with pytest.raises(DecryptError):
        client.receive_text(message2)
    assert client.dead
    with pytest.raises(NegotiationError):
        client.receive_text(message2)


def test_wrong_password_kk_aborts_on_the_hub() -> None:
    hub, client = make_hub(psk=OTHER_PSK, pin=CLIENT_KEY.public), make_client(hub_pin=HUB_KEY.public)
    to_offer(hub, client)
    with pytest.raises(NegotiationAborted):
        hub.receive_text(client.start(PSK))
    assert hub.dead
    with pytest.raises(NegotiationAborted):
        hub.receive_text("{}")
    with pytest.raises(NegotiationError):
        _ = hub.channel


def test_kk_decoy_makes_the_client_fail_kk_then_xx_retry_works() -> None:
    """A stale PSK cached by the client: KK fails (decoy answer), XX with the fresh PSK works."""
    stale = OTHER_PSK
    hub = make_hub(pin=CLIENT_KEY.public, kk_decoy=True)
    client = make_client(hub_pin=HUB_KEY.public)
    to_offer(hub, client)
    (decoy,) = hub.receive_text(client.start(stale))
    assert hub.decoy_sent and hub.dead
    assert len(bytes.fromhex(json.loads(decoy)["payload"]["noise"]["msg"])) == 32 + 16 + 18
    with pytest.raises(KKFailed):
        client.receive_text(decoy)
    with pytest.raises(NegotiationAborted):
        hub.receive_text(decoy)
    retry = negotiate(
        make_hub(pin=CLIENT_KEY.public, kk_decoy=True), make_client(hub_pin=HUB_KEY.public, force_xx=True)
    )
    assert retry.client.pattern == "XXpsk2"
    exchange(retry)


def test_stale_client_pin_on_the_hub_kk_fails_then_xx_after_reset() -> None:
    """The hub holds a stale pin: KK cannot authenticate; once the pin is reset XX pins anew."""
    stale_pin = KeyPair.generate().public
    hub = make_hub(pin=stale_pin, kk_decoy=True)
    client = make_client(hub_pin=HUB_KEY.public)
    to_offer(hub, client)
    (decoy,) = hub.receive_text(client.start(PSK))
    with pytest.raises(KKFailed):
        client.receive_text(decoy)
    retry = negotiate(make_hub(pin=None), make_client(hub_pin=HUB_KEY.public, force_xx=True))
    assert retry.hub.key_to_pin == CLIENT_KEY.public


def test_kk_decoy_is_not_used_for_readable_or_xx_messages() -> None:
    s = negotiate(make_hub(pin=CLIENT_KEY.public, kk_decoy=True), make_client(hub_pin=HUB_KEY.public))
    assert not s.hub.decoy_sent
    hub = make_hub(kk_decoy=True)
    client = make_client()
    to_offer(hub, client)
    message1 = json.loads(client.start(PSK))
    message1["payload"]["noise"]["msg"] = "00" * 31  # too short for an XX message 1
    with pytest.raises(NegotiationAborted):
        hub.receive_text(json.dumps(message1))
    assert not hub.decoy_sent


def test_kk_failure_without_decoy_is_kkfailed_on_bad_message2() -> None:
    hub, client = make_hub(pin=CLIENT_KEY.public), make_client(hub_pin=HUB_KEY.public)
    to_offer(hub, client)
    (message2,) = hub.receive_text(client.start(PSK))
    tampered = json.loads(message2)
    raw = bytearray.fromhex(tampered["payload"]["noise"]["msg"])
    raw[-1] ^= 1
    tampered["payload"]["noise"]["msg"] = raw.hex()
    with pytest.raises(KKFailed):
        client.receive_text(json.dumps(tampered))


def test_changed_hub_key() -> None:
    new_hub_key = KeyPair.generate()
    # The hub still offers KK: the client's KK attempt cannot be read...
    hub = make_hub(static=new_hub_key, pin=CLIENT_KEY.public)
    client = make_client(hub_pin=HUB_KEY.public)
    to_offer(hub, client)
    with pytest.raises(NegotiationAborted):
        hub.receive_text(client.start(PSK))
    # ...and the XX retry reveals the new key.
    hub = make_hub(static=new_hub_key, pin=CLIENT_KEY.public)
    client = make_client(hub_pin=HUB_KEY.public, force_xx=True)
    to_offer(hub, client)
    (message2,) = hub.receive_text(client.start(PSK))
    with pytest.raises(HubKeyChanged, match="Trusted Noise server key changed"):
        client.receive_text(message2)
    assert client.dead and client.hub_static is None


def test_contradicting_client_key_is_rejected() -> None:
    intruder = KeyPair.generate()
    hub = make_hub(pin=CLIENT_KEY.public)
    client = make_client(static=intruder, hub_pin=HUB_KEY.public)
    to_offer(hub, client)
    with pytest.raises(NegotiationAborted):
        hub.receive_text(client.start(PSK))
    hub = make_hub(pin=CLIENT_KEY.public)
    client = make_client(static=intruder, hub_pin=HUB_KEY.public, force_xx=True)
    to_offer(hub, client)
    (message2,) = hub.receive_text(client.start(PSK))
    message3, _hello = client.receive_text(message2)
    assert isinstance(message3, str)
    with pytest.raises(ClientKeyRejected):
        hub.receive_text(message3)
    assert hub.key_to_pin is None
    with pytest.raises(ClientKeyRejected):
        hub.receive_text(message3)


@pytest.mark.parametrize("session_id", ["default", ""])
def test_hub_refuses_default_session(session_id: str) -> None:
    hub, client = make_hub(), make_client(session_id=session_id)
    to_offer(hub, client)
    (message2,) = hub.receive_text(client.start(PSK))
    message3, encrypted_hello = client.receive_text(message2)
    assert isinstance(message3, str) and isinstance(encrypted_hello, bytes)
    hub.receive_text(message3)
    with pytest.raises(NegotiationAborted):
        hub.receive_binary(encrypted_hello)


def _complete_hub_awaiting_hello() -> tuple[HubNegotiation, SecureChannel]:
    """A hub after a KK handshake with a raw initiator, whose channel has sent nothing yet."""
    hub = make_hub(pin=CLIENT_KEY.public)
    hub.opening()
    prologue = build_prologue(hub.hello_payload, hub.offer_payload, "Noise_KKpsk0_25519_ChaChaPoly_SHA256")
    initiator = HandshakeState(
        "KKpsk0", CHACHA, initiator=True, prologue=prologue, psk=PSK, static=CLIENT_KEY, remote_static=HUB_KEY.public
    )
    noise = {"pattern": "KKpsk0", "suite": CHACHA, "msg": initiator.write_message(MESSAGE1_PAYLOAD).hex()}
    (message2,) = hub.receive_text(json.dumps({"msg_type": "shake", "payload": {"noise": noise}}))
    initiator.read_message(bytes.fromhex(json.loads(message2)["payload"]["noise"]["msg"]))
    return hub, SecureChannel(*initiator.split())


@pytest.mark.parametrize(
    "body",
    [
        b'{"msg_type":"bus","payload":{"session":{"session_id":"s"}}}',
        b'{"msg_type":"hello","payload":{}}',
        b'{"msg_type":"hello","payload":{"session":"s"}}',
        b"not json",
    ],
)
def test_hub_refuses_bad_encrypted_hello(body: bytes) -> None:
    hub, channel = _complete_hub_awaiting_hello()
    (message,) = channel.seal_json(body)
    with pytest.raises(NegotiationAborted):
        hub.receive_binary(message)


def test_hub_refuses_binary_or_chunked_hello_and_garbage() -> None:
    hub, channel = _complete_hub_awaiting_hello()
    (message,) = channel.seal_binary(b"\x0c")
    with pytest.raises(NegotiationAborted):
        hub.receive_binary(message)
    hub, channel = _complete_hub_awaiting_hello()
    with pytest.raises(NegotiationAborted):
        hub.receive_binary(channel.seal_json(b"x" * 70_000)[0])
    hub, _ = _complete_hub_awaiting_hello()
    with pytest.raises(NegotiationAborted):
        hub.receive_binary(b"\x00" * 40)


def test_hub_hello_without_site_id() -> None:
    hub, channel = _complete_hub_awaiting_hello()
    body = HiveMessage("hello", {"session": {"session_id": "s1"}}).to_bytes()
    hello = hub.receive_binary(channel.seal_json(body)[0])
    assert (hello.session_id, hello.site_id) == ("s1", None)
    with pytest.raises(NegotiationError):
        hub.receive_binary(channel.seal_json(body)[0])


# -- the hub's cleartext messages and message 1 handling ----------------------------------------


def test_hub_opening_texts() -> None:
    hub = HubNegotiation(
        node_id=NODE, static=HUB_KEY, psk=PSK, pinned_client_key=None, hello_extra={"site_id": "hub", "peer": "p::ab"}
    )
    hello, offer = hub.opening()
    assert json.loads(hello) == {
        "msg_type": "hello",
        "payload": {"node_id": NODE, "pubkey": "", "site_id": "hub", "peer": "p::ab"},
    }
    assert json.loads(offer) == {
        "msg_type": "shake",
        "payload": {
            "handshake": True,
            "min_protocol_version": 2,
            "max_protocol_version": 3,
            "binarize": False,
            "preshared_key": False,
            "password": True,
            "crypto_required": True,
            "encodings": ["JSON-B64", "JSON-HEX"],
            "ciphers": ["AES-GCM"],
            "noise": {"patterns": ["XXpsk2"], "suites": ["25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256"]},
        },
    }
    assert hello.isascii() and offer.isascii()
    pinned_offer = json.loads(make_hub(pin=CLIENT_KEY.public).opening()[1])
    assert pinned_offer["payload"]["noise"]["patterns"] == ["KKpsk0", "XXpsk2"]
    with pytest.raises(NegotiationError):
        hub.opening()


@pytest.mark.parametrize("extra", [{"name": "café"}, {"ratio": 1.0}, {"é": 1}, {"x": [object()]}])
def test_hub_refuses_unportable_hello_extra(extra: dict[str, Any]) -> None:
    with pytest.raises(NegotiationError):
        HubNegotiation(node_id=NODE, static=HUB_KEY, psk=PSK, pinned_client_key=None, hello_extra=extra)


def test_hub_constructor_checks() -> None:
    with pytest.raises(NegotiationError):
        HubNegotiation(node_id="", static=HUB_KEY, psk=PSK, pinned_client_key=None)
    with pytest.raises(NegotiationError):
        HubNegotiation(node_id=NODE, static=HUB_KEY, psk=b"short", pinned_client_key=None)
    with pytest.raises(NegotiationError):
        HubNegotiation(node_id=NODE, static=HUB_KEY, psk=PSK, pinned_client_key=b"x")
    with pytest.raises(NegotiationError):
        make_hub(suites=("448_ChaChaPoly_BLAKE2b",))


def _raw_message1(hub: HubNegotiation, payload: bytes, *, msg_type: str = "shake") -> tuple[str, HandshakeState]:
    """A message 1 written by a raw initiator (any payload), against the hub's own offer."""
    hub.opening()
    prologue = build_prologue(hub.hello_payload, hub.offer_payload, "Noise_XXpsk2_25519_ChaChaPoly_SHA256")
    initiator = HandshakeState("XXpsk2", CHACHA, initiator=True, prologue=prologue, psk=PSK, static=CLIENT_KEY)
    noise = {"pattern": "XXpsk2", "suite": CHACHA, "msg": initiator.write_message(payload).hex()}
    return json.dumps({"msg_type": msg_type, "payload": {"noise": noise}}), initiator


@pytest.mark.parametrize("payload", [b'{"binarize":true,"encodings":["JSON-B64"]}', b"[]", b"", b"null"])
def test_hub_accepts_any_json_message1_payload(payload: bytes) -> None:
    hub = make_hub()
    text, initiator = _raw_message1(hub, payload, msg_type="handshake")
    (message2,) = hub.receive_text(text)
    assert initiator.read_message(bytes.fromhex(json.loads(message2)["payload"]["noise"]["msg"])) == (
        b'{"binarize":false}'
    )


def test_hub_refuses_non_json_message1_payload() -> None:
    hub = make_hub()
    text, _ = _raw_message1(hub, b"\xffnot json")
    with pytest.raises(NegotiationAborted):
        hub.receive_text(text)


@pytest.mark.parametrize(
    ("pattern", "suite"),
    [("KKpsk0", CHACHA), ("NNpsk0", CHACHA), ("XXpsk2", "448_ChaChaPoly_BLAKE2b"), (None, CHACHA), ("XXpsk2", 3)],
)
def test_hub_refuses_unoffered_choices(pattern: Any, suite: Any) -> None:
    hub = make_hub(suites=(CHACHA,))
    hub.opening()
    text = json.dumps(
        {"msg_type": "shake", "payload": {"noise": {"pattern": pattern, "suite": suite, "msg": "00" * 50}}}
    )
    with pytest.raises(NegotiationAborted):
        hub.receive_text(text)


def test_hub_ignores_one_cleartext_client_hello() -> None:
    hub, client = make_hub(), make_client()
    cleartext = HiveMessage("hello", {"pubkey": "", "session": {"session_id": SID}, "site_id": SITE}).to_bytes()
    assert hub.receive_text(cleartext) == []
    s = negotiate(hub, client)
    assert s.hello.session_id == SID
    hub = make_hub()
    hub.receive_text(cleartext)
    with pytest.raises(NegotiationError):
        hub.receive_text(cleartext)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"msg_type":"bus","payload":{}}',
        '{"msg_type":["shake"],"payload":{}}',
        '{"msg_type":"shake","payload":{}}',
        '{"msg_type":"shake","payload":{"noise":{"pattern":"XXpsk2","suite":"25519_ChaChaPoly_SHA256","msg":"zz"}}}',
        '{"msg_type":"shake","payload":{"noise":{"pattern":"XXpsk2","suite":"25519_ChaChaPoly_SHA256","msg":7}}}',
    ],
)
def test_hub_malformed_negotiation(text: str) -> None:
    hub = make_hub()
    hub.opening()
    with pytest.raises(NegotiationError):
        hub.receive_text(text)
    assert hub.dead


def test_hub_out_of_order() -> None:
    hub = make_hub()
    with pytest.raises(NegotiationError):
        hub.receive_text('{"msg_type":"shake","payload":{"noise":{"msg":"00"}}}')
    hub = make_hub()
    with pytest.raises(NegotiationError):
        hub.receive_binary(b"\x00" * 20)
    hub, _ = _complete_hub_awaiting_hello()
    with pytest.raises(NegotiationError):
        hub.receive_text('{"msg_type":"shake","payload":{"noise":{"msg":"00"}}}')


# -- the client's messages and checks ----------------------------------------------------------


def test_client_message_formats() -> None:
    hub, client = make_hub(), make_client()
    to_offer(hub, client)
    text = client.start(PSK)
    obj = json.loads(text)
    assert list(obj) == ["msg_type", "payload", "metadata", "route"]
    assert (obj["msg_type"], obj["metadata"], obj["route"]) == ("shake", {}, [])
    assert list(obj["payload"]) == ["noise"] and list(obj["payload"]["noise"]) == ["pattern", "suite", "msg"]
    assert text == json.dumps(obj)  # Python's default separators
    assert ", " in text and '": ' in text
    # psk2: the e token already keys the cipher, so a raw responder decrypts the payload.
    prologue = build_prologue(hub.hello_payload, hub.offer_payload, "Noise_XXpsk2_25519_ChaChaPoly_SHA256")
    responder = HandshakeState("XXpsk2", CHACHA, initiator=False, prologue=prologue, psk=PSK, static=HUB_KEY)
    raw = bytes.fromhex(obj["payload"]["noise"]["msg"])
    assert responder.read_message(raw) == MESSAGE1_PAYLOAD == b'{"binarize":false,"encodings":[]}'
    (message2,) = hub.receive_text(text)
    message3, _ = client.receive_text(message2)
    assert isinstance(message3, str)
    obj3 = json.loads(message3)
    assert obj3 == {
        "msg_type": "shake",
        "payload": {"noise": {"msg": obj3["payload"]["noise"]["msg"]}},
        "metadata": {},
        "route": [],
    }
    assert message3 == json.dumps(obj3)
    assert client.encrypted_hello_body() == (
        b'{"msg_type":"hello","payload":{"pubkey":"","session":{"session_id":"' + SID.encode() + b'"},'
        b'"site_id":"kitchen"},"metadata":{},"route":[],"node":null,"target_site_id":null,'
        b'"target_pubkey":null,"source_peer":null}'
    )


def test_client_against_the_prologue_vector() -> None:
    """A foreign hub's HELLO and offer: the client's prologue equals the reference bytes."""
    vector = load_vectors("noise-vectors.json")["prologue"]
    client = make_client()
    client.receive_text(json.dumps({"msg_type": "hello", "payload": vector["hello"]}).encode())
    client.receive_text(json.dumps({"msg_type": "handshake", "payload": vector["handshake"]}))
    assert (client.pattern, client.suite) == (vector["pattern"], vector["suite"])
    responder = HandshakeState(
        vector["pattern"],
        vector["suite"],
        initiator=False,
        prologue=bytes.fromhex(vector["bytes"]),
        psk=PSK,
        static=HUB_KEY,
    )
    message1 = json.loads(client.start(PSK))["payload"]["noise"]["msg"]
    responder.read_message(bytes.fromhex(message1))
    reply = responder.write_message(b'{"encoding":"JSON-HEX"}')
    out = client.receive_text(json.dumps({"msg_type": "shake", "payload": {"noise": {"msg": reply.hex()}}}))
    assert isinstance(out[0], str)
    responder.read_message(bytes.fromhex(json.loads(out[0])["payload"]["noise"]["msg"]))
    assert responder.remote_static == CLIENT_KEY.public
    _send, recv = responder.split()
    assert isinstance(out[1], bytes)
    assert recv.decrypt(out[1])[1:] == client.encrypted_hello_body()


@pytest.mark.parametrize("case", load_vectors("noise-vectors.json")["selection"])
def test_selection_vectors(case: dict[str, Any]) -> None:
    noise = {"patterns": case["patterns"], "suites": case["suites"]}
    if case["expect"] is None:
        with pytest.raises(NegotiationError, match=r"No supported Noise pattern and cipher suite\."):
            select_noise(noise, pinned=case["pinned"])
    else:
        assert list(select_noise(noise, pinned=case["pinned"])) == case["expect"]
    assert select_noise({"patterns": ["KKpsk0", "XXpsk2"], "suites": [CHACHA]}, pinned=True, force_xx=True)[0] == (
        "XXpsk2"
    )


def test_client_no_match_is_reported_at_the_offer() -> None:
    client = make_client()
    client.receive_text('{"msg_type":"hello","payload":{"node_id":"n"}}')
    offer = {"msg_type": "shake", "payload": {"noise": {"patterns": [1, "NNpsk0"], "suites": [CHACHA]}}}
    with pytest.raises(NegotiationError, match="No supported"):
        client.receive_text(json.dumps(offer))


HELLO = '{"msg_type":"hello","payload":{"node_id":"n","pubkey":""}}'
OFFER = json.dumps({"msg_type": "shake", "payload": {"noise": {"patterns": ["XXpsk2"], "suites": [CHACHA]}}})


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["{"], "Malformed HiveMind negotiation"),
        (["[]"], "Malformed HiveMind negotiation"),
        ([b"\xff\xfe"], "Malformed HiveMind negotiation"),
        (['{"msg_type":"hello","payload":"x"}'], "Malformed HiveMind negotiation"),
        (['{"msg_type":"hello"}'], "Malformed HiveMind negotiation"),
        (['{"msg_type":"hello","payload":{"node_id":""}}'], "Missing node_id or duplicate Noise HELLO"),
        (['{"msg_type":"hello","payload":{"node_id":5}}'], "Missing node_id or duplicate Noise HELLO"),
        ([HELLO, HELLO], "Missing node_id or duplicate Noise HELLO"),
        ([OFFER], "Out-of-order Noise negotiation"),
        ([HELLO, OFFER, OFFER], "Out-of-order Noise negotiation"),
        ([HELLO, OFFER, HELLO], "Missing node_id or duplicate Noise HELLO"),
        ([HELLO, '{"msg_type":"shake","payload":{"noise":{"msg":"00"}}}'], "Out-of-order Noise negotiation"),
        ([HELLO, '{"msg_type":"shake","payload":{"binarize":true}}'], "did not offer HiveMind v3 Noise"),
        ([HELLO, '{"msg_type":"bus","payload":{}}'], "before Noise authentication"),
        ([HELLO, '{"msg_type":{"a":1},"payload":{}}'], "before Noise authentication"),
        (['{"msg_type":"hello","payload":{"node_id":"n","x":NaN}}'], "Malformed HiveMind negotiation"),
    ],
)
def test_client_negotiation_errors(texts: list[str | bytes], message: str) -> None:
    client = make_client()
    for text in texts[:-1]:
        client.receive_text(text)
    with pytest.raises(NegotiationError, match=message):
        client.receive_text(texts[-1])
    assert client.dead


@pytest.mark.parametrize("msg", ["zz", "0", "00" * 65536, 5, None])
def test_client_malformed_message2(msg: Any) -> None:
    hub, client = make_hub(), make_client()
    to_offer(hub, client)
    client.start(PSK)
    with pytest.raises(NegotiationError, match="Malformed Noise handshake envelope"):
        client.receive_text(json.dumps({"msg_type": "shake", "payload": {"noise": {"msg": msg}}}))


def test_client_binary_before_and_text_after_authentication() -> None:
    client = make_client()
    with pytest.raises(NegotiationError, match="Application traffic received before Noise authentication"):
        client.receive_binary(b"\x00\x01")
    s = negotiate(make_hub(), make_client())
    with pytest.raises(NegotiationError, match="Plaintext received after Noise authentication"):
        s.client.receive_text(HELLO)


def test_client_start_out_of_order_and_bad_psk() -> None:
    client = make_client()
    with pytest.raises(NegotiationError):
        client.start(PSK)
    hub, client = make_hub(), make_client()
    to_offer(hub, client)
    with pytest.raises(HandshakeError):
        client.start(b"short")
    with pytest.raises(NegotiationError):
        client.start(PSK)
    with pytest.raises(NegotiationError):
        ClientNegotiation(static=CLIENT_KEY, site_id=SITE, session_id=SID, hub_pin=b"123")
    with pytest.raises(NegotiationError):
        _ = make_client().channel


def test_client_channel_failures_kill_the_session() -> None:
    s = negotiate(make_hub(), make_client())
    with pytest.raises(DecryptError):
        s.client.receive_binary(b"\x00" * 40)
    assert s.client.dead


def test_canonical_json_of_message1_payload() -> None:
    assert canonical_json({"encodings": [], "binarize": False}) == MESSAGE1_PAYLOAD


# -- a channel shared across sessions (MQTT's <prefix>/out) -------------------------------------
#
# Every session of an identity reads the hub's answers to every other session, and the hub's HELLO
# and offer name no session. All of another session's answers come before the hub's answer to
# this session's HELLO.

STALE_MESSAGE2 = json.dumps({"msg_type": "shake", "payload": {"noise": {"msg": "07" * 96}}})


def earlier_hub_state(*, pin: bytes | None = None, **extra: Any) -> HubNegotiation:
    """The same hub (key, node id, PSK) in another state: its HELLO carries ``extra``, and with a
    client key pinned its offer has KK too."""
    return HubNegotiation(node_id=NODE, static=HUB_KEY, psk=PSK, pinned_client_key=pin, hello_extra=extra)


def finish(hub: HubNegotiation, client: ClientNegotiation, message1: str) -> None:
    """Message 1 to ``hub``, its message 2 back: the handshake completes and the hub reads our HELLO."""
    (message2,) = hub.receive_text(message1)
    message3, encrypted_hello = client.receive_text(message2)
    assert client.complete and isinstance(message3, str) and isinstance(encrypted_hello, bytes)
    assert hub.receive_text(message3) == []
    assert hub.receive_binary(encrypted_hello).session_id == SID


def test_shared_channel_skips_a_message2_and_an_offer_without_its_hello() -> None:
    hub, client = make_hub(), make_client(shared_channel=True)
    hello, offer = hub.opening()
    assert client.receive_text(STALE_MESSAGE2) == []  # another session's message 1 was answered
    assert client.receive_text(offer) == []  # its HELLO went to an earlier subscriber
    assert client.receive_text(hello) == []
    assert client.receive_text(STALE_MESSAGE2) == []
    assert client.receive_text(offer) == []
    assert client.needs_psk
    assert client.receive_text(STALE_MESSAGE2) == []  # message 1 is not out yet: not ours
    finish(hub, client, client.start(PSK))


@pytest.mark.parametrize("order", ["hello offer HELLO OFFER", "hello HELLO OFFER", "hello offer HELLO offer OFFER"])
def test_shared_channel_before_message1_the_newest_hello_and_offer_win(order: str) -> None:
    """Lower case: an earlier hub state's HELLO and offer (read otherwise); upper case: the hub's own."""
    stale = earlier_hub_state(pin=KeyPair.generate().public, peer="an earlier session's hub state")
    hub, client = make_hub(), make_client(shared_channel=True)
    texts = dict(zip(["hello", "offer"], stale.opening(), strict=True))
    texts |= dict(zip(["HELLO", "OFFER"], hub.opening(), strict=True))
    for name in order.split():
        assert client.receive_text(texts[name]) == []
    assert (client.hello_payload, client.offer_payload) == (hub.hello_payload, hub.offer_payload)
    assert client.needs_psk
    finish(hub, client, client.start(PSK))


def test_shared_channel_after_message1_copies_of_the_same_pair_are_skipped() -> None:
    hub, client = make_hub(), make_client(shared_channel=True)
    opening = hub.opening()
    for text in opening:  # another session's copies of the hub's HELLO and offer
        client.receive_text(text)
    message1 = client.start(PSK)
    for text in opening:  # the hub's answer to our HELLO: byte for byte the same
        assert client.receive_text(text) == []
    finish(hub, client, message1)


@pytest.mark.parametrize("differs", ["hello", "offer"])
def test_shared_channel_after_message1_another_pair_supersedes_the_negotiation(differs: str) -> None:
    # another HELLO (an earlier hub state), or the same HELLO with another offer (KK on offer too)
    if differs == "hello":
        other = earlier_hub_state(peer="another")
    else:
        other = earlier_hub_state(pin=KeyPair.generate().public)
    hello, offer = other.opening()
    client = make_client(shared_channel=True)
    to_offer(make_hub(), client)
    client.start(PSK)
    with pytest.raises(NegotiationSuperseded, match="restarted the negotiation"):
        client.receive_text(hello)
        client.receive_text(offer)
    assert client.dead
    with pytest.raises(NegotiationError, match="already ended"):
        client.receive_text(hello)


def test_shared_channel_is_off_by_default() -> None:
    """Every carrier but MQTT gives the session a channel of its own: the machine stays strict."""
    hello, _offer = make_hub().opening()
    client = make_client()
    client.receive_text(hello)
    with pytest.raises(NegotiationError, match="Out-of-order Noise negotiation"):
        client.receive_text(STALE_MESSAGE2)
    client = make_client()
    to_offer(make_hub(), client)
    client.start(PSK)
    with pytest.raises(NegotiationError, match="duplicate Noise HELLO"):
        client.receive_text(hello)


# -- fuzzing: only ProtocolError subclasses, in every state -------------------------------------

texts = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    st.builds(
        lambda mt, noise: json.dumps({"msg_type": mt, "payload": {"noise": noise, "node_id": "n"}}),
        st.sampled_from(["hello", "shake", "handshake", "bus", "bin"]),
        st.one_of(
            st.none(),
            st.dictionaries(
                st.sampled_from(["pattern", "suite", "msg", "patterns", "suites"]),
                st.one_of(
                    st.sampled_from(["XXpsk2", "KKpsk0", CHACHA, AESGCM]),
                    st.text(alphabet="0123456789abcdef", max_size=300),
                    st.lists(st.sampled_from(["XXpsk2", "KKpsk0", CHACHA, 1]), max_size=3),
                    st.integers(),
                ),
                max_size=5,
            ),
        ),
    ),
)


def _hub_in_state(state: int) -> HubNegotiation:
    hub = make_hub(pin=CLIENT_KEY.public if state == 4 else None, kk_decoy=state == 4)
    if state == 0:
        return hub
    client = make_client(hub_pin=HUB_KEY.public if state == 4 else None)
    to_offer(hub, client)
    if state == 1:
        return hub
    (message2,) = hub.receive_text(client.start(PSK))
    out = client.receive_text(message2)
    if state in (2, 4):
        return hub
    assert isinstance(out[0], str) and isinstance(out[1], bytes)
    hub.receive_text(out[0])
    if state == 3:
        return hub
    hub.receive_binary(out[1])
    return hub


def _client_in_state(state: int, shared: bool = False) -> ClientNegotiation:
    hub, client = make_hub(), make_client(shared_channel=shared)
    hello, offer = hub.opening()
    if state >= 1:
        client.receive_text(hello)
    if state >= 2:
        client.receive_text(offer)
    if state >= 3:
        message1 = client.start(PSK)
    if state >= 4:
        (message2,) = hub.receive_text(message1)
        client.receive_text(message2)
    return client


def _feed(machine: HubNegotiation | ClientNegotiation, item: str | bytes, as_binary: bool) -> None:
    try:
        if as_binary:
            machine.receive_binary(item if isinstance(item, bytes) else item.encode())
        else:
            machine.receive_text(item)
    except ProtocolError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=st.integers(min_value=0, max_value=5), items=st.lists(st.tuples(texts, st.booleans()), max_size=3))
def test_hub_raises_only_protocol_errors(state: int, items: list[tuple[str | bytes, bool]]) -> None:
    hub = _hub_in_state(state)
    for item, as_binary in items:
        _feed(hub, item, as_binary)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    state=st.integers(min_value=0, max_value=4),
    items=st.lists(st.tuples(texts, st.booleans()), max_size=3),
    shared=st.booleans(),
)
def test_client_raises_only_protocol_errors(state: int, items: list[tuple[str | bytes, bool]], shared: bool) -> None:
    client = _client_in_state(state, shared)
    for item, as_binary in items:
        _feed(client, item, as_binary)


def _mutate(text: str, position: int, char: str) -> str:
    index = position % len(text)
    return text[:index] + char + text[index + 1 :]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    step=st.integers(min_value=1, max_value=3),
    position=st.integers(min_value=0, max_value=10_000),
    char=st.sampled_from(list('0af"{}[]:,x \\')),
    pinned=st.booleans(),
)
def test_mutated_handshake_messages_raise_only_protocol_errors(
    step: int, position: int, char: str, pinned: bool
) -> None:
    """Real messages with one character changed: each side fails cleanly or carries on."""
    hub = make_hub(pin=CLIENT_KEY.public if pinned else None)
    client = make_client(hub_pin=HUB_KEY.public if pinned else None)
    try:
        hello, offer = hub.opening()
        if step == 1:
            hello = _mutate(hello, position, char)
        client.receive_text(hello)
        client.receive_text(offer)
        message1 = client.start(PSK)
        if step == 2:
            message1 = _mutate(message1, position, char)
        (message2,) = hub.receive_text(message1)
        if step == 3:
            message2 = _mutate(message2, position, char)
        out = client.receive_text(message2)
        for item in out:
            if isinstance(item, str):
                hub.receive_text(item)
            else:
                hub.receive_binary(item)
    except ProtocolError:
        return
    assert hub.ready and client.complete
