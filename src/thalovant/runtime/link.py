"""Establishing and running one authenticated session with a hub (spec 2, 3, 4.1, 7.1).

:func:`establish` drives the sans-I/O :class:`ClientNegotiation` over a fresh carrier: it opens
the carrier, answers the hub's HELLO and offer, derives (or reuses) the PSK off the event loop,
runs the Noise handshake, pins the hub key on first use and sends the encrypted HELLO. What a
failure means is decided by :mod:`thalovant.runtime.policy`; this module only reports where it
happened and what was seen. A KK attempt the policy sends back is retried at once with XX on a
fresh carrier, inside the same call. On a carrier whose channel from the hub outlives the session
(MQTT), the negotiation skips the hub's answers to another session of the identity; an attempt
whose message 1 was built on another session's HELLO and offer, when the hub's own differ, is
retried once the same way.

:class:`Link` is the established session: it seals and sends envelopes, and its reader task
decrypts, reassembles and parses what the hub sends and hands it to the client. Anything
malformed ends the session with a :class:`ThalovantConnectionError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from thalovant.carriers.base import Carrier, CarrierClosed, CarrierOpenError, CarrierRefused
from thalovant.errors import (
    ThalovantClientKeyRejectedError,
    ThalovantConnectionError,
    ThalovantError,
    ThalovantHubKeyChangedError,
    ThalovantHubRefusedError,
    ThalovantTimeoutError,
)
from thalovant.noise_store import NoiseStore
from thalovant.protocol import wire1
from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.envelope import HiveMessage, parse_envelope
from thalovant.protocol.errors import (
    HandshakeError,
    HubKeyChanged,
    KKFailed,
    NegotiationAborted,
    NegotiationSuperseded,
    ProtocolError,
)
from thalovant.protocol.framing import Frame
from thalovant.protocol.negotiation import ClientNegotiation
from thalovant.protocol.psk import derive_psk
from thalovant.runtime.policy import Evidence, Stage, Verdict, judge, resend_unanswered

log = logging.getLogger("thalovant.client")

#: a refusal-code close this soon after an XX handshake means the hub refused our static key
REFUSAL_SETTLE_SECONDS = 0.75
KK = "KKpsk0"


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LinkTimings:
    """When and how fast the session was set up (for ``connection_info``)."""

    started_at: str = field(default_factory=_utc_now)
    connected_at: str | None = None
    transport_open_ms: float | None = None
    socket_open_ms: float | None = None
    handshake_ms: float | None = None
    connect_ms: float | None = None
    attempts: int = 0


@dataclass
class Credentials:
    """What the negotiation needs from the identity."""

    access_key: str
    password: str
    site_id: str


class HubRestarting(ThalovantConnectionError):
    """The hub closed the link saying it is going away or restarting (see
    :func:`~thalovant.runtime.policy.resend_unanswered`)."""


class LinkDown(ThalovantConnectionError):
    """The link was already down when a message was to be sent: nothing went out, so the
    message may be sent again on the next link."""


class _Malformed(Exception):
    """Internal: the hub broke the protocol's framing rules (text after auth, binary before)."""


class _RetryWithXX(Exception):
    """Internal: the policy asks for an immediate XX attempt on a fresh carrier."""


class _RetryFresh(Exception):
    """Internal: the policy asks for an immediate attempt on a fresh carrier (the attempt answered
    another session's HELLO and offer on a shared channel)."""


def _evidence(exc: BaseException) -> Evidence | None:
    """What a failure inside an attempt shows; ``None`` for anything that is not a failure
    of the link (cancellation, a bug)."""
    if isinstance(exc, CarrierRefused):
        return Evidence.REFUSAL
    if isinstance(exc, CarrierClosed):
        return Evidence.REFUSAL if exc.refusal_signal else Evidence.CLOSED
    if isinstance(exc, CarrierOpenError):
        return Evidence.CLOSED
    if isinstance(exc, TimeoutError):
        return Evidence.TIMEOUT
    if isinstance(exc, HubKeyChanged):
        return Evidence.KEY_CHANGED
    if isinstance(exc, NegotiationSuperseded):
        return Evidence.SUPERSEDED
    if isinstance(exc, KKFailed | NegotiationAborted | HandshakeError):
        return Evidence.AUTH_FAILED
    if isinstance(exc, ProtocolError | _Malformed):
        return Evidence.MALFORMED
    if isinstance(exc, OSError):  # e.g. a CA bundle that cannot be loaded
        return Evidence.CLOSED
    return None


class Link:
    """An established session: one carrier and its secure channel.

    ``on_envelope`` receives every parsed envelope (JSON frames and non-``bin`` WIRE-1 frames),
    ``on_binary`` every ``bin`` WIRE-1 frame, and ``on_lost`` is called once, with the error,
    when the session ends for any reason other than :meth:`close`.
    """

    def __init__(
        self,
        carrier: Carrier,
        channel: SecureChannel,
        *,
        pattern: str,
        session_id: str,
        hub_static: bytes | None,
        timings: LinkTimings,
        early_frames: list[Frame],
    ) -> None:
        self.carrier = carrier
        self.channel = channel
        self.pattern = pattern
        self.session_id = session_id
        self.hub_static = hub_static
        self.timings = timings
        self._early_frames = early_frames
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self._closing = False
        self.error: ThalovantError | None = None
        self.on_envelope: Callable[[HiveMessage], None] = lambda _m: None
        self.on_binary: Callable[[wire1.Wire1Frame], None] = lambda _f: None
        self.on_lost: Callable[[ThalovantError], None] = lambda _e: None

    # -- sending

    async def send_envelope(self, message: HiveMessage) -> None:
        """Seal and send one envelope; the lock keeps nonces and send order together.

        Raises :class:`LinkDown` when the link was down before anything was written (safe to
        send again on a new link), :class:`ThalovantConnectionError` when the write failed
        (the hub may or may not have it); the link then reports itself lost."""
        body = message.to_bytes()
        # Yield to the loop first: a write to a lost transport never suspends, so a caller sending
        # in a loop would otherwise starve the callbacks that report the loss.
        await asyncio.sleep(0)
        async with self._send_lock:
            if not self.alive:
                error = self.report_dead()
                raise LinkDown(str(error))
            try:
                for part in self.channel.seal_json(body):
                    await self.carrier.send_binary(part)
            except CarrierClosed as exc:
                error = ThalovantConnectionError(f"Sending to the hub failed: {exc}")
                self._lost(error)
                raise error from None

    # -- receiving

    def start(self) -> None:
        """Deliver any frame read during the settle window, then start the reader task."""
        for frame in self._early_frames:
            self._dispatch(frame)
        self._early_frames = []
        self._reader = asyncio.create_task(self._read_loop(), name="thalovant-link-reader")

    async def wait_ended(self) -> None:
        """Until the session ends: closed, or lost."""
        await self._ended.wait()

    @property
    def alive(self) -> bool:
        return (
            not self._closing
            and self.error is None
            and self.carrier.alive
            and self._reader is not None
            and not self._reader.done()
        )

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await self.carrier.receive()
                if isinstance(message, str):
                    raise ThalovantConnectionError("Plaintext received after Noise authentication.")
                frame = self.channel.open(message)
                if frame is not None:
                    self._dispatch(frame)
        except asyncio.CancelledError:
            raise
        except CarrierClosed as exc:
            kind = HubRestarting if resend_unanswered(exc.code) else ThalovantConnectionError
            self._lost(kind(f"Connection to the hub dropped: {exc}"))
        except ProtocolError as exc:
            self._lost(ThalovantConnectionError(f"Malformed data from the hub ({type(exc).__name__}): {exc}"))
        except ThalovantError as exc:
            self._lost(exc)
        except Exception as exc:  # a bug must not leave a silent dead link
            log.exception("Unexpected error in the hub reader")
            self._lost(ThalovantConnectionError(f"Unexpected error reading from the hub: {exc!r}"))

    def _dispatch(self, frame: Frame) -> None:
        if frame.binary:
            decoded = wire1.decode_frame(frame.body)
            if decoded.msg_type == "bin":
                self.on_binary(decoded)
            else:
                self.on_envelope(decoded.to_envelope())
        else:
            self.on_envelope(parse_envelope(frame.body))

    def report_dead(self) -> ThalovantError:
        """Report this link lost, when something other than its reader found it dead; the
        error says what the carrier knows (a restarting hub's close code)."""
        if self.error is None:
            code = self.carrier.close_code
            kind = HubRestarting if resend_unanswered(code) else ThalovantConnectionError
            self._lost(kind(f"The hub connection is closed ({code if code is not None else 'no close code'})."))
        return self.error or ThalovantConnectionError("The hub connection is closed.")

    def _lost(self, error: ThalovantError) -> None:
        """Report the end of the session once (never after :meth:`close`)."""
        if self._closing or self.error is not None:
            return
        self.error = error
        self._ended.set()
        task = asyncio.ensure_future(self.carrier.close())
        task.add_done_callback(lambda _t: None)
        self.on_lost(error)

    async def close(self) -> None:
        """Close normally (1000 on WSS); no ``on_lost`` callback."""
        self._closing = True
        self._ended.set()
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done() and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        await self.carrier.close()


async def establish(
    make_carrier: Callable[[], Carrier],
    *,
    store: NoiseStore,
    credentials: Credentials,
    session_id: str,
    connect_timeout: float,
    handshake_timeout: float,
    derive: Callable[[str, str], bytes] = derive_psk,
    on_phase: Callable[[str], None] = lambda _p: None,
) -> Link:
    """Open a carrier and negotiate; retry at once, on a fresh carrier, when the policy says so
    (with XX after a failed KK; once after a superseded negotiation). Raises the typed Thalovant
    errors of spec 12."""
    timings = LinkTimings()
    started = time.perf_counter()
    force_xx = False
    retried_fresh = False
    while True:
        timings.attempts += 1
        attempt = _Attempt(
            make_carrier(),
            store=store,
            credentials=credentials,
            session_id=session_id,
            force_xx=force_xx,
            retried_fresh=retried_fresh,
            timings=timings,
        )
        try:
            link = await attempt.run(
                connect_timeout=connect_timeout, handshake_timeout=handshake_timeout, derive=derive, on_phase=on_phase
            )
        except _RetryWithXX:
            await attempt.carrier.close()
            log.info("KK handshake failed; retrying at once with XX.")
            force_xx = True
            continue
        except _RetryFresh:
            await attempt.carrier.close()
            log.info("The hub answered a newer HELLO than the one this attempt used; retrying at once.")
            retried_fresh = True
            continue
        except BaseException:
            await attempt.carrier.close()
            raise
        timings.connect_ms = (time.perf_counter() - started) * 1000
        timings.connected_at = _utc_now()
        return link


class _Attempt:
    """One connect attempt over one carrier: tracks its :class:`Stage` and turns a failure into
    the policy's verdict."""

    def __init__(
        self,
        carrier: Carrier,
        *,
        store: NoiseStore,
        credentials: Credentials,
        session_id: str,
        force_xx: bool,
        retried_fresh: bool = False,
        timings: LinkTimings,
    ) -> None:
        self.carrier = carrier
        self.store = store
        self.credentials = credentials
        self.session_id = session_id
        self.force_xx = force_xx
        self.retried_fresh = retried_fresh
        self.timings = timings
        self.stage = Stage.OPENING
        self.pattern: str | None = None
        self.node_id: str | None = None

    async def run(
        self,
        *,
        connect_timeout: float,
        handshake_timeout: float,
        derive: Callable[[str, str], bytes],
        on_phase: Callable[[str], None],
    ) -> Link:
        try:
            on_phase("connecting")
            await self._open(connect_timeout)
            on_phase("handshake")
            return await self._negotiate(handshake_timeout, derive)
        except Exception as exc:
            evidence = _evidence(exc)
            if evidence is None:
                raise
            raise self._failure(evidence, exc, connect_timeout, handshake_timeout) from None

    def _failure(
        self, evidence: Evidence, exc: BaseException, connect_timeout: float, handshake_timeout: float
    ) -> Exception:
        """The policy's verdict on this failure, as the exception to raise."""
        judgement = judge(self.stage, evidence, kk=self.pattern == KK, retried_fresh=self.retried_fresh)
        if judgement.forget_psk and self.node_id:
            self.store.forget_psk(self.credentials.access_key, self.node_id)
        verdict = judgement.verdict
        if verdict is Verdict.RETRY_WITH_XX:
            return _RetryWithXX()
        if verdict is Verdict.RETRY_FRESH:
            return _RetryFresh()
        if verdict is Verdict.KEY_CHANGED:
            return ThalovantHubKeyChangedError(
                f"Trusted Noise server key changed for {self.carrier.pin_id}: the hub's key differs from the one "
                f"pinned in {self.store.store_path}. Stop and check; remove that pin only if you trust the new key."
            )
        if verdict is Verdict.KEY_REJECTED:
            when = "right after the handshake" if self.stage is Stage.SETTLING else "as the handshake completed"
            return _key_rejected(self.store, f"{when} ({exc})")
        if verdict is Verdict.REFUSED:
            what = "credentials" if self.stage in (Stage.OPENING, Stage.NEGOTIATING) else "handshake"
            return ThalovantHubRefusedError(f"The hub refused this client's {what}: {exc}")
        if verdict is Verdict.TIMED_OUT:
            if self.stage is Stage.OPENING:
                return ThalovantTimeoutError(
                    f"Could not open the {self.carrier.protocol} connection within {connect_timeout:g} s."
                )
            return ThalovantTimeoutError(f"The hub did not complete the handshake within {handshake_timeout:g} s.")
        if evidence in (Evidence.MALFORMED, Evidence.SUPERSEDED):
            return ThalovantConnectionError(f"Malformed HiveMind negotiation: {exc}")
        if self.stage is Stage.OPENING:
            return ThalovantConnectionError(str(exc))
        return ThalovantConnectionError(f"The hub closed the connection during the {self.stage.value} stage: {exc}")

    async def _open(self, timeout: float) -> None:
        self.carrier.bind_session(self.session_id, self.credentials.site_id)
        opened_at = time.perf_counter()
        async with asyncio.timeout(timeout):
            await self.carrier.open(timeout)
        self.timings.transport_open_ms = (time.perf_counter() - opened_at) * 1000
        self.timings.socket_open_ms = self.carrier.extra_info().get("socket_open_ms")
        self.stage = Stage.NEGOTIATING

    async def _negotiate(self, timeout: float, derive: Callable[[str, str], bytes]) -> Link:
        carrier, store, credentials = self.carrier, self.store, self.credentials
        started = time.perf_counter()
        deadline = started + timeout
        pin_id = carrier.pin_id
        hub_pin = store.hub_pin(pin_id)
        negotiation = ClientNegotiation(
            static=store.static_key(),
            site_id=credentials.site_id,
            session_id=self.session_id,
            hub_pin=hub_pin,
            force_xx=self.force_xx,
            shared_channel=carrier.shared_inbound,
        )
        psk: bytes | None = None
        psk_was_cached = False

        async def receive() -> str | bytes:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining):
                return await carrier.receive()

        while not negotiation.complete:
            message = await receive()
            if isinstance(message, bytes):
                raise _Malformed("Application traffic received before Noise authentication.")
            outputs = negotiation.receive_text(message)
            self.node_id = negotiation.node_id
            if getattr(negotiation, "needs_psk", False) and self.stage is Stage.NEGOTIATING:
                node_id = negotiation.node_id
                assert node_id is not None
                psk = store.cached_psk(credentials.access_key, node_id)
                psk_was_cached = psk is not None
                if psk is None:
                    psk = await asyncio.to_thread(derive, credentials.password, node_id)
                first = negotiation.start(psk)
                self.pattern = negotiation.pattern
                self.stage = Stage.HANDSHAKE
                await carrier.send_text(first)
            if negotiation.complete:
                self.stage = Stage.FINISHING
            for out in outputs:
                if isinstance(out, str):
                    await carrier.send_text(out)
                else:
                    await carrier.send_binary(out)

        channel: SecureChannel | None = negotiation.channel
        if channel is None:  # pragma: no cover - the loop above only ends with a channel
            raise ThalovantConnectionError("The handshake ended without a secure channel.")
        hub_static: bytes | None = getattr(negotiation, "hub_static", None)
        pattern = str(negotiation.pattern)
        self.timings.handshake_ms = (time.perf_counter() - started) * 1000
        if not psk_was_cached and psk is not None and negotiation.node_id:
            store.store_psk(credentials.access_key, negotiation.node_id, psk)
        if hub_pin is None and hub_static is not None:
            store.pin_hub(pin_id, hub_static)

        early: list[Frame] = []
        if pattern != KK:
            self.stage = Stage.SETTLING
            early = await self._settle(channel)
        return Link(
            carrier,
            channel,
            pattern=pattern,
            session_id=self.session_id,
            hub_static=hub_static,
            timings=self.timings,
            early_frames=early,
        )

    async def _settle(self, channel: SecureChannel) -> list[Frame]:
        """Wait up to 750 ms for the first authenticated frame after an XX handshake; a close in
        that window is judged at the SETTLING stage (a refusal there: our key was rejected)."""
        try:
            async with asyncio.timeout(REFUSAL_SETTLE_SECONDS):
                message = await self.carrier.receive()
        except TimeoutError:
            return []
        if isinstance(message, str):
            raise _Malformed("Plaintext received after Noise authentication.")
        frame = channel.open(message)
        return [frame] if frame is not None else []


def _key_rejected(store: NoiseStore, when: str) -> ThalovantClientKeyRejectedError:
    """The hub refused this client's own static key after an XX handshake (spec 3.9)."""
    error = ThalovantClientKeyRejectedError(
        f"The hub refused this client's Noise key {when}. The hub has another key pinned for this "
        f"access key; the key in use is in {store.directory}."
    )
    with contextlib.suppress(AttributeError):
        error.key_folder = str(store.directory)
    return error
