"""The HiveMind v3 negotiation as two sans-I/O state machines (spec 3.1-3.10).

:class:`HubNegotiation` is the responder, :class:`ClientNegotiation` the initiator. Each
takes the peer's messages in and hands back the messages to send; neither does I/O nor
derives a PSK (argon2id is the caller's job, off the event loop).

Hub::

    INITIAL --opening()--> OFFERED --message 1--> (KK) AWAIT_HELLO
                                             \\--> (XX) AWAIT_MSG3 --message 3--> AWAIT_HELLO
    AWAIT_HELLO --receive_binary(encrypted HELLO)--> READY

Client::

    AWAIT_HELLO --HELLO--> AWAIT_OFFER --offer--> NEEDS_PSK --start(psk)--> AWAIT_MSG2
    AWAIT_MSG2 --message 2--> COMPLETE  (returns message 3 for XX, then the encrypted HELLO)

On a channel shared across sessions (``shared_channel=True``: MQTT's ``<prefix>/out``) the
client also skips the hub's answers to another session of the same identity; see
:meth:`ClientNegotiation.receive_text`.

Any error moves a machine to DEAD; every later call raises again. Only
:class:`~thalovant.protocol.errors.ProtocolError` subclasses are raised on bad input.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NoReturn

from thalovant.protocol.canonical import build_prologue, canonical_json
from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.envelope import HiveMessage, parse_envelope, parse_json_object
from thalovant.protocol.errors import (
    ClientKeyRejected,
    EnvelopeError,
    HandshakeError,
    HubKeyChanged,
    KKFailed,
    NegotiationAborted,
    NegotiationError,
    NegotiationSuperseded,
    ProtocolError,
)
from thalovant.protocol.framing import MAX_TRANSPORT_MESSAGE, Frame
from thalovant.protocol.noise import DHLEN, SUITES, TAGLEN, HandshakeState, KeyPair, protocol_name

__all__ = [
    "CLIENT_PREFERRED_SUITES",
    "MAX_HANDSHAKE_HEX",
    "ClientHello",
    "ClientNegotiation",
    "HubNegotiation",
    "select_noise",
]

XX = "XXpsk2"
KK = "KKpsk0"
CLIENT_PREFERRED_SUITES: tuple[str, ...] = ("25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256")
"""The client's suite preference; the hub's order is ignored (spec 3.4)."""

MAX_HANDSHAKE_HEX = 2 * MAX_TRANSPORT_MESSAGE
"""Longest hex string a handshake envelope may carry (131070 chars, 65535 bytes)."""

MESSAGE1_PAYLOAD = canonical_json({"binarize": False, "encodings": []})
MESSAGE2_PAYLOAD = canonical_json({"binarize": False})
_SHAKE_TYPES = frozenset({"shake", "handshake"})

_MALFORMED = "Malformed HiveMind negotiation"
_MALFORMED_SHAKE = "Malformed Noise handshake envelope"
_OUT_OF_ORDER = "Out-of-order Noise negotiation"
_NO_MATCH = "No supported Noise pattern and cipher suite."


def select_noise(offer_noise: Mapping[str, Any], *, pinned: bool, force_xx: bool = False) -> tuple[str, str]:
    """Pick ``(pattern, suite)`` from an offer's ``noise`` object (spec 3.4).

    Suite: the first of ChaChaPoly, AESGCM that the hub offers. Pattern: KKpsk0 when the
    client holds a pin, the hub offers it and this is not an XX retry; else XXpsk2 if offered.
    Non-string entries are ignored; no match raises :class:`NegotiationError`.
    """
    patterns = offer_noise.get("patterns")
    suites = offer_noise.get("suites")
    offered_patterns = {p for p in patterns if isinstance(p, str)} if isinstance(patterns, list) else set()
    offered_suites = {s for s in suites if isinstance(s, str)} if isinstance(suites, list) else set()
    suite = next((s for s in CLIENT_PREFERRED_SUITES if s in offered_suites), None)
    if pinned and not force_xx and KK in offered_patterns:
        pattern: str | None = KK
    else:
        pattern = XX if XX in offered_patterns else None
    if suite is None or pattern is None:
        raise NegotiationError(_NO_MATCH)
    return pattern, suite


def _check_portable(value: Any, where: str) -> None:
    """Refuse values whose canonical form could differ between languages (spec 3.6)."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        if not value.isascii():
            raise NegotiationError(f"{where} must be ASCII-only")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_portable(item, where)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise NegotiationError(f"{where} keys must be ASCII strings")
            _check_portable(item, where)
        return
    raise NegotiationError(f"{where} cannot carry {type(value).__name__} (no floats, spec 3.6)")


def _shake_noise(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    payload = obj.get("payload")
    noise = payload.get("noise") if isinstance(payload, dict) else None
    return noise if isinstance(noise, dict) else None


def _handshake_bytes(noise: Mapping[str, Any]) -> bytes:
    """The Noise message of a handshake envelope: hex of at most 65535 bytes."""
    msg = noise.get("msg")
    if not isinstance(msg, str) or len(msg) > MAX_HANDSHAKE_HEX:
        raise NegotiationError(_MALFORMED_SHAKE)
    try:
        return bytes.fromhex(msg)
    except ValueError:
        raise NegotiationError(_MALFORMED_SHAKE) from None


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class ClientHello:
    """The client's encrypted HELLO (spec 3.10)."""

    session_id: str
    site_id: str | None
    envelope: HiveMessage


class _HubState(Enum):
    INITIAL = "initial"
    OFFERED = "offered"
    AWAIT_MSG3 = "await-message-3"
    AWAIT_HELLO = "await-hello"
    READY = "ready"
    DEAD = "dead"


class HubNegotiation:
    """The hub (responder) side of one session's negotiation.

    ``pinned_client_key`` is the client static key pinned for this access key (``None``
    before the first XX). KKpsk0 is offered only when it is set. After an XX handshake a
    different client key raises :class:`ClientKeyRejected`; with no pin, ``key_to_pin``
    holds the key the hub must persist. With ``kk_decoy`` (for MQTT, which has no refusal
    channel) an unreadable KK message 1 is answered with a shake that cannot authenticate,
    so the client retries with XX at once; the negotiation is dead afterwards.
    ``suites`` narrows the offered cipher suites (both by default).
    """

    def __init__(
        self,
        *,
        node_id: str,
        static: KeyPair,
        psk: bytes,
        pinned_client_key: bytes | None,
        hello_extra: Mapping[str, Any] | None = None,
        kk_decoy: bool = False,
        suites: Sequence[str] = SUITES,
    ) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise NegotiationError("node_id must be a non-empty string")
        if pinned_client_key is not None and len(pinned_client_key) != DHLEN:
            raise NegotiationError("a pinned client key is 32 bytes")
        if len(psk) != 32:
            raise NegotiationError("the pre-shared key is 32 bytes")
        hello_payload: dict[str, Any] = {"node_id": node_id, "pubkey": ""}
        if hello_extra:
            hello_payload.update(hello_extra)
        _check_portable(hello_payload, "the HELLO payload")
        if not suites or any(suite not in SUITES for suite in suites):
            raise NegotiationError(f"offered suites must be among {SUITES}")
        patterns = [KK, XX] if pinned_client_key is not None else [XX]
        self.hello_payload: dict[str, Any] = hello_payload
        self.offer_payload: dict[str, Any] = {
            "handshake": True,
            "min_protocol_version": 2,
            "max_protocol_version": 3,
            "binarize": False,
            "preshared_key": False,
            "password": True,
            "crypto_required": True,
            "encodings": ["JSON-B64", "JSON-HEX"],
            "ciphers": ["AES-GCM"],
            "noise": {"patterns": patterns, "suites": list(suites)},
        }
        self._static = static
        self._psk = bytes(psk)
        self._pinned = bytes(pinned_client_key) if pinned_client_key is not None else None
        self._kk_decoy = kk_decoy
        self._state = _HubState.INITIAL
        self._dead_error: type[NegotiationError] = NegotiationError
        self._handshake: HandshakeState | None = None
        self._channel: SecureChannel | None = None
        self._cleartext_hello_seen = False
        self.pattern: str | None = None
        self.suite: str | None = None
        self.remote_static: bytes | None = None
        self.key_to_pin: bytes | None = None
        self.client_payload: Any = None
        self.client_hello: ClientHello | None = None
        self.decoy_sent = False

    # -- state ------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """True once the Noise handshake finished (and the client key passed the pin check)."""
        return self._state in (_HubState.AWAIT_HELLO, _HubState.READY)

    @property
    def ready(self) -> bool:
        """True once the client's encrypted HELLO was accepted."""
        return self._state is _HubState.READY

    @property
    def dead(self) -> bool:
        return self._state is _HubState.DEAD

    @property
    def channel(self) -> SecureChannel:
        """The session's secure channel (after completion)."""
        if self._channel is None or self._state is _HubState.DEAD:
            raise NegotiationError("the Noise handshake is not complete")
        return self._channel

    def _die(self, error: NegotiationError) -> NoReturn:
        self._state = _HubState.DEAD
        self._dead_error = type(error) if isinstance(error, NegotiationAborted) else NegotiationError
        self._handshake = None
        raise error

    def _check_alive(self) -> None:
        if self._state is _HubState.DEAD:
            raise self._dead_error("the negotiation already ended")

    # -- inputs -----------------------------------------------------------------------------

    def opening(self) -> list[str]:
        """The HELLO and offer texts, sent in the clear, in this order."""
        self._check_alive()
        if self._state is not _HubState.INITIAL:
            self._die(NegotiationError("opening() was already called"))
        self._state = _HubState.OFFERED
        return [
            _compact({"msg_type": "hello", "payload": self.hello_payload}),
            _compact({"msg_type": "shake", "payload": self.offer_payload}),
        ]

    def receive_text(self, text: str | bytes) -> list[str]:
        """Handle a cleartext negotiation message; return the texts to send back.

        Message 1 yields message 2; XX message 3 yields nothing. A cleartext client
        ``hello`` (MQTT sends one before the negotiation) is ignored once.
        """
        self._check_alive()
        try:
            obj = parse_json_object(text, "negotiation message")
        except EnvelopeError:
            self._die(NegotiationError(_MALFORMED))
        msg_type = obj.get("msg_type")
        if msg_type == "hello" and self._state in (_HubState.INITIAL, _HubState.OFFERED):
            if self._cleartext_hello_seen:
                self._die(NegotiationError("duplicate cleartext HELLO"))
            self._cleartext_hello_seen = True
            return []
        if not isinstance(msg_type, str) or msg_type not in _SHAKE_TYPES:
            self._die(NegotiationError(f"unexpected {str(msg_type)[:40]!r} message in the negotiation"))
        noise = _shake_noise(obj)
        if noise is None:
            self._die(NegotiationError(_MALFORMED_SHAKE))
        if self._state is _HubState.OFFERED:
            return self._message1(noise)
        if self._state is _HubState.AWAIT_MSG3:
            self._message3(noise)
            return []
        self._die(NegotiationError(_OUT_OF_ORDER))

    def _message1(self, noise: Mapping[str, Any]) -> list[str]:
        pattern = noise.get("pattern")
        suite = noise.get("suite")
        offered = self.offer_payload["noise"]
        if pattern not in offered["patterns"] or suite not in offered["suites"]:
            self._die(NegotiationAborted("the client chose a Noise pattern or suite that was not offered"))
        assert isinstance(pattern, str) and isinstance(suite, str)
        message = self._noise_message(noise)
        self.pattern, self.suite = pattern, suite
        prologue = build_prologue(self.hello_payload, self.offer_payload, protocol_name(pattern, suite))
        handshake = HandshakeState(
            pattern,
            suite,
            initiator=False,
            prologue=prologue,
            psk=self._psk,
            static=self._static,
            remote_static=self._pinned if pattern == KK else None,
        )
        try:
            payload = handshake.read_message(message)
        except HandshakeError:
            if pattern == KK and self._kk_decoy:
                return self._decoy()
            self._die(NegotiationAborted("cannot authenticate Noise message 1"))
        try:
            self.client_payload = json.loads(payload) if payload else {}
        except (ValueError, RecursionError):
            self._die(NegotiationAborted("Noise message 1 payload is not JSON"))
        reply = handshake.write_message(MESSAGE2_PAYLOAD)
        self._handshake = handshake
        if handshake.finished:
            self.remote_static = self._pinned
            self._finish(handshake)
        else:
            self._state = _HubState.AWAIT_MSG3
        return [_compact({"msg_type": "shake", "payload": {"noise": {"msg": reply.hex()}}})]

    def _decoy(self) -> list[str]:
        """A syntactically valid KK message 2 of random bytes: it can never authenticate."""
        self.decoy_sent = True
        self._state = _HubState.DEAD
        self._dead_error = NegotiationAborted
        decoy = os.urandom(DHLEN + TAGLEN + len(MESSAGE2_PAYLOAD))
        return [_compact({"msg_type": "shake", "payload": {"noise": {"msg": decoy.hex()}}})]

    def _message3(self, noise: Mapping[str, Any]) -> None:
        handshake = self._handshake
        assert handshake is not None
        message = self._noise_message(noise)
        try:
            handshake.read_message(message)
        except HandshakeError:
            self._die(NegotiationAborted("cannot authenticate Noise message 3"))
        client_key = handshake.remote_static
        assert client_key is not None
        if self._pinned is not None and client_key != self._pinned:
            self._die(ClientKeyRejected("client Noise static key contradicts the pinned key"))
        self.remote_static = client_key
        if self._pinned is None:
            self.key_to_pin = client_key
        self._finish(handshake)

    def _noise_message(self, noise: Mapping[str, Any]) -> bytes:
        try:
            return _handshake_bytes(noise)
        except NegotiationError as exc:
            self._die(exc)

    def _finish(self, handshake: HandshakeState) -> None:
        send, recv = handshake.split()
        self._channel = SecureChannel(send, recv)
        self._handshake = None
        self._state = _HubState.AWAIT_HELLO

    def receive_binary(self, message: bytes) -> ClientHello:
        """Decrypt the first transport message, which must be the client's ``hello`` envelope."""
        self._check_alive()
        if self._state is not _HubState.AWAIT_HELLO or self._channel is None:
            self._die(NegotiationError("binary message outside the encrypted HELLO step"))
        try:
            frame = self._channel.open(message)
        except ProtocolError as exc:
            self._die(NegotiationAborted(f"unreadable encrypted HELLO: {exc}"))
        if frame is None or frame.binary:
            self._die(NegotiationAborted("the encrypted HELLO must be one JSON frame"))
        try:
            envelope = parse_envelope(frame.body)
        except EnvelopeError as exc:
            self._die(NegotiationAborted(f"malformed encrypted HELLO: {exc}"))
        if envelope.msg_type != "hello":
            self._die(NegotiationAborted("the first transport message must be a hello"))
        session = envelope.payload.get("session")
        session_id = session.get("session_id") if isinstance(session, dict) else None
        if not isinstance(session_id, str) or not session_id or session_id == "default":
            self._die(NegotiationAborted("the HELLO must carry its own session_id (not 'default')"))
        site_id = envelope.payload.get("site_id")
        hello = ClientHello(session_id, site_id if isinstance(site_id, str) else None, envelope)
        self.client_hello = hello
        self._state = _HubState.READY
        return hello


class _ClientState(Enum):
    AWAIT_HELLO = "await-hello"
    AWAIT_OFFER = "await-offer"
    NEEDS_PSK = "needs-psk"
    AWAIT_MSG2 = "await-message-2"
    COMPLETE = "complete"
    DEAD = "dead"


class ClientNegotiation:
    """The client (initiator) side of one negotiation attempt.

    Feed every hub message to :meth:`receive_text` (text, or UTF-8 bytes on MQTT) or
    :meth:`receive_binary`. After the offer, ``needs_psk`` is true and ``node_id`` known:
    derive the PSK off the event loop and call :meth:`start` for message 1. Message 2
    returns message 3 (XX only) and the encrypted HELLO, ready to send in that order.

    ``shared_channel``: the hub's channel to this client outlives the session (MQTT's
    ``<prefix>/out``), so what the hub sent another session of the same identity may arrive
    before the answers to this session's HELLO (see :meth:`receive_text`). Off by default: every
    other carrier gives each session a channel of its own, and the machine stays strict.

    Errors: :class:`KKFailed` (retry at once with ``force_xx=True`` on a fresh carrier
    session), :class:`HubKeyChanged` (the hub key contradicts ``hub_pin``),
    :class:`~thalovant.protocol.errors.DecryptError` for an XX message 2 that does not
    authenticate (a refusal: wrong password or tampered negotiation),
    :class:`~thalovant.protocol.errors.NegotiationSuperseded` (shared channel only: retry at once
    on a fresh carrier session), and :class:`NegotiationError` for everything malformed or out
    of order.
    """

    def __init__(
        self,
        *,
        static: KeyPair,
        site_id: str,
        session_id: str,
        hub_pin: bytes | None,
        force_xx: bool = False,
        shared_channel: bool = False,
    ) -> None:
        if hub_pin is not None and len(hub_pin) != DHLEN:
            raise NegotiationError("a pinned hub key is 32 bytes")
        self._static = static
        self.site_id = site_id
        self.session_id = session_id
        self._hub_pin = bytes(hub_pin) if hub_pin is not None else None
        self._force_xx = force_xx
        self._shared = shared_channel
        self._state = _ClientState.AWAIT_HELLO
        self._dead_error: type[NegotiationError] = NegotiationError
        self._handshake: HandshakeState | None = None
        self._channel: SecureChannel | None = None
        self.node_id: str | None = None
        self.hello_payload: dict[str, Any] | None = None
        self.offer_payload: dict[str, Any] | None = None
        self.pattern: str | None = None
        self.suite: str | None = None
        self.hub_static: bytes | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def needs_psk(self) -> bool:
        """True between the offer and :meth:`start`."""
        return self._state is _ClientState.NEEDS_PSK

    @property
    def complete(self) -> bool:
        return self._state is _ClientState.COMPLETE

    @property
    def dead(self) -> bool:
        return self._state is _ClientState.DEAD

    @property
    def channel(self) -> SecureChannel:
        """The session's secure channel (after completion)."""
        if self._channel is None or self._state is not _ClientState.COMPLETE:
            raise NegotiationError("the Noise handshake is not complete")
        return self._channel

    def _die(self, error: ProtocolError) -> NoReturn:
        self._state = _ClientState.DEAD
        self._handshake = None
        raise error

    def _check_alive(self) -> None:
        if self._state is _ClientState.DEAD:
            raise self._dead_error("the negotiation already ended")

    # -- inputs -----------------------------------------------------------------------------

    def receive_text(self, text: str | bytes) -> list[str | bytes]:
        """Handle one cleartext hub message; return what to send (after message 2 only).

        On a shared channel the hub's answers to another session of the same identity may come
        first, and nothing in the hub's HELLO or offer names the session it answers (they read
        the same for every session). All of that arrives before the hub's answer to this
        session's HELLO: the hub answers a prefix's messages in order and stops answering a
        session when a newer HELLO comes. So, instead of ending the negotiation:

        - before message 1 goes out, the newest HELLO and offer win; an offer without a HELLO
          before it is skipped (its HELLO went to an earlier subscriber), and so is any message 2
          (none of ours is out to be answered);
        - after message 1, a HELLO or offer equal to the pair it was built on is skipped (message 1
          was built on another session's copy of the pair, and the hub reads it against its own,
          which is the same); one that differs raises :class:`NegotiationSuperseded`.
        """
        self._check_alive()
        if self._state is _ClientState.COMPLETE:
            self._die(NegotiationError("Plaintext received after Noise authentication"))
        try:
            obj = parse_json_object(text, "negotiation message")
        except EnvelopeError:
            self._die(NegotiationError(_MALFORMED))
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            self._die(NegotiationError(_MALFORMED))
        msg_type = obj.get("msg_type")
        if msg_type == "hello":
            if self._shared and self._state is not _ClientState.AWAIT_HELLO:
                self._repeated_hello(payload)
            else:
                self._hello(payload)
            return []
        if not isinstance(msg_type, str) or msg_type not in _SHAKE_TYPES:
            self._die(NegotiationError(f"Unexpected {str(msg_type)[:40]!r} message before Noise authentication"))
        noise = payload.get("noise")
        if not isinstance(noise, dict):
            self._die(NegotiationError("The hub did not offer HiveMind v3 Noise."))
        if "msg" not in noise:
            if self._shared and self._state is not _ClientState.AWAIT_OFFER:
                self._repeated_offer(payload, noise)
            else:
                self._offer(payload, noise)
            return []
        if self._state is not _ClientState.AWAIT_MSG2:
            if self._shared:
                return []  # another session's: no message 1 of ours is out yet
            self._die(NegotiationError(_OUT_OF_ORDER))
        return self._message2(noise)

    def receive_binary(self, message: bytes) -> Frame | None:
        """Before authentication: an error. After it: the channel's ``open`` (a frame or ``None``)."""
        self._check_alive()
        if self._state is not _ClientState.COMPLETE or self._channel is None:
            self._die(NegotiationError("Application traffic received before Noise authentication"))
        try:
            return self._channel.open(message)
        except ProtocolError as exc:
            self._die(exc)

    def _hello(self, payload: dict[str, Any]) -> None:
        node_id = payload.get("node_id")
        if self._state is not _ClientState.AWAIT_HELLO or not isinstance(node_id, str) or not node_id:
            self._die(NegotiationError("Missing node_id or duplicate Noise HELLO"))
        self._check_canonical(payload)
        self.node_id = node_id
        self.hello_payload = payload
        self._state = _ClientState.AWAIT_OFFER

    def _offer(self, payload: dict[str, Any], noise: dict[str, Any]) -> None:
        if self._state is not _ClientState.AWAIT_OFFER:
            self._die(NegotiationError(_OUT_OF_ORDER))
        self._check_canonical(payload)
        try:
            self.pattern, self.suite = select_noise(noise, pinned=self._hub_pin is not None, force_xx=self._force_xx)
        except NegotiationError as exc:
            self._die(exc)
        self.offer_payload = payload
        self._state = _ClientState.NEEDS_PSK

    def _repeated_hello(self, payload: dict[str, Any]) -> None:
        """Shared channel: a HELLO after the first one (see :meth:`receive_text`)."""
        if self._state is _ClientState.AWAIT_MSG2:
            self._check_same_pair(payload, self.hello_payload)
            return
        # before message 1 (awaiting the offer, or holding one): start over from the newest HELLO
        self.offer_payload = None
        self.pattern = self.suite = None
        self._state = _ClientState.AWAIT_HELLO
        self._hello(payload)

    def _repeated_offer(self, payload: dict[str, Any], noise: dict[str, Any]) -> None:
        """Shared channel: an offer that does not follow a HELLO of this negotiation at once."""
        if self._state is _ClientState.AWAIT_HELLO:
            return  # its HELLO went to an earlier subscriber
        if self._state is _ClientState.NEEDS_PSK:
            self._state = _ClientState.AWAIT_OFFER  # message 1 is not out yet: the newest offer wins
            self._offer(payload, noise)
            return
        self._check_same_pair(payload, self.offer_payload)

    def _check_same_pair(self, received: dict[str, Any], used: dict[str, Any] | None) -> None:
        """After message 1: ``received`` must equal the payload message 1 was built on."""
        self._check_canonical(received)
        if used is None or canonical_json(received) != canonical_json(used):
            self._die(
                NegotiationSuperseded(
                    "The hub restarted the negotiation with another HELLO or offer than the one message 1 was built on."
                )
            )

    def _check_canonical(self, payload: dict[str, Any]) -> None:
        try:
            canonical_json(payload)
        except ProtocolError:
            self._die(NegotiationError(_MALFORMED))

    def start(self, psk: bytes) -> str:
        """Message 1 text, once the PSK for ``node_id`` is derived."""
        self._check_alive()
        if self._state is not _ClientState.NEEDS_PSK:
            self._die(NegotiationError("start() needs a received offer and may run once"))
        assert self.pattern is not None and self.suite is not None
        assert self.hello_payload is not None and self.offer_payload is not None
        try:
            prologue = build_prologue(self.hello_payload, self.offer_payload, protocol_name(self.pattern, self.suite))
            handshake = HandshakeState(
                self.pattern,
                self.suite,
                initiator=True,
                prologue=prologue,
                psk=psk,
                static=self._static,
                remote_static=self._hub_pin if self.pattern == KK else None,
            )
            message = handshake.write_message(MESSAGE1_PAYLOAD)
        except ProtocolError as exc:
            self._die(exc)
        self._handshake = handshake
        self._state = _ClientState.AWAIT_MSG2
        noise = {"pattern": self.pattern, "suite": self.suite, "msg": message.hex()}
        return json.dumps({"msg_type": "shake", "payload": {"noise": noise}, "metadata": {}, "route": []})

    def _message2(self, noise: Mapping[str, Any]) -> list[str | bytes]:
        handshake = self._handshake
        assert handshake is not None
        try:
            message = _handshake_bytes(noise)
        except NegotiationError as exc:
            self._die(exc)
        try:
            handshake.read_message(message)
        except HandshakeError as exc:
            if self.pattern == KK:
                self._die(KKFailed(f"KKpsk0 message 2 failed: {exc}"))
            self._die(exc)
        out: list[str | bytes] = []
        if not handshake.finished:
            message3 = handshake.write_message(b"")
            out.append(
                json.dumps(
                    {"msg_type": "shake", "payload": {"noise": {"msg": message3.hex()}}, "metadata": {}, "route": []}
                )
            )
        hub_key = handshake.remote_static
        assert hub_key is not None
        if self._hub_pin is not None and hub_key != self._hub_pin:
            self._die(HubKeyChanged("Trusted Noise server key changed"))
        self.hub_static = hub_key
        send, recv = handshake.split()
        self._channel = SecureChannel(send, recv)
        self._handshake = None
        self._state = _ClientState.COMPLETE
        out.extend(self._channel.seal_json(self.encrypted_hello_body()))
        return out

    def encrypted_hello_body(self) -> bytes:
        """The JSON body of the client's encrypted HELLO (spec 3.10)."""
        payload = {"pubkey": "", "session": {"session_id": self.session_id}, "site_id": self.site_id}
        return HiveMessage("hello", payload).to_bytes()
