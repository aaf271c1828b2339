"""Establishing and running one authenticated session with a hub (spec 2, 3, 4.1, 7.1).

:func:`establish` drives the sans-I/O :class:`ClientNegotiation` over a fresh carrier: it opens
the carrier, answers the hub's HELLO and offer, derives (or reuses) the PSK off the event loop,
runs the Noise handshake, pins the hub key on first use and sends the encrypted HELLO. A KK
attempt the hub cannot read is retried at once with XX on a fresh carrier, inside the same call.

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
    NegotiationError,
    ProtocolError,
)
from thalovant.protocol.framing import Frame
from thalovant.protocol.negotiation import ClientNegotiation
from thalovant.protocol.psk import derive_psk

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


class _RetryWithXX(Exception):
    """Internal: the KK attempt failed in a way that asks for an immediate XX attempt."""


def _refused(message: str) -> ThalovantHubRefusedError:
    return ThalovantHubRefusedError(message)


def _key_rejected(store: NoiseStore, when: str) -> ThalovantClientKeyRejectedError:
    """The hub refused this client's own static key after an XX handshake (spec 3.9)."""
    error = ThalovantClientKeyRejectedError(
        f"The hub refused this client's Noise key {when}. The hub has another key pinned for this "
        f"access key; the key in use is in {store.directory}."
    )
    with contextlib.suppress(AttributeError):
        error.key_folder = str(store.directory)
    return error


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
        self._closing = False
        self.error: ThalovantError | None = None
        self.on_envelope: Callable[[HiveMessage], None] = lambda _m: None
        self.on_binary: Callable[[wire1.Wire1Frame], None] = lambda _f: None
        self.on_lost: Callable[[ThalovantError], None] = lambda _e: None

    # -- sending

    async def send_envelope(self, message: HiveMessage) -> None:
        """Seal and send one envelope; the lock keeps nonces and send order together."""
        body = message.to_bytes()
        async with self._send_lock:
            if self._closing or self.error is not None:
                raise ThalovantConnectionError("The hub connection is closed.")
            try:
                for part in self.channel.seal_json(body):
                    await self.carrier.send_binary(part)
            except CarrierClosed as exc:
                raise ThalovantConnectionError(str(exc)) from None

    # -- receiving

    def start(self) -> None:
        """Deliver any frame read during the settle window, then start the reader task."""
        for frame in self._early_frames:
            self._dispatch(frame)
        self._early_frames = []
        self._reader = asyncio.create_task(self._read_loop(), name="thalovant-link-reader")

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
            self._lost(ThalovantConnectionError(f"Connection to the hub dropped: {exc}"))
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

    def _lost(self, error: ThalovantError) -> None:
        if self._closing:
            return
        self.error = error
        task = asyncio.ensure_future(self.carrier.close())
        task.add_done_callback(lambda _t: None)
        self.on_lost(error)

    async def close(self) -> None:
        """Close normally (1000 on WSS); no ``on_lost`` callback."""
        self._closing = True
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
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
    """Open a carrier and negotiate; retry once with XX when KK fails. Raises the typed
    Thalovant errors of spec 12."""
    timings = LinkTimings()
    started = time.perf_counter()
    force_xx = False
    while True:
        timings.attempts += 1
        carrier = make_carrier()
        try:
            link = await _attempt(
                carrier,
                store=store,
                credentials=credentials,
                session_id=session_id,
                connect_timeout=connect_timeout,
                handshake_timeout=handshake_timeout,
                force_xx=force_xx,
                derive=derive,
                timings=timings,
                on_phase=on_phase,
            )
        except _RetryWithXX:
            await carrier.close()
            if force_xx:  # pragma: no cover - _attempt never asks twice
                raise ThalovantConnectionError("The hub refused the XX handshake.") from None
            log.info("KK handshake failed; retrying at once with XX.")
            force_xx = True
            continue
        except BaseException:
            await carrier.close()
            raise
        timings.connect_ms = (time.perf_counter() - started) * 1000
        timings.connected_at = _utc_now()
        return link


async def _attempt(
    carrier: Carrier,
    *,
    store: NoiseStore,
    credentials: Credentials,
    session_id: str,
    connect_timeout: float,
    handshake_timeout: float,
    force_xx: bool,
    derive: Callable[[str, str], bytes],
    timings: LinkTimings,
    on_phase: Callable[[str], None],
) -> Link:
    on_phase("connecting")
    carrier.bind_session(session_id, credentials.site_id)
    opened_at = time.perf_counter()
    try:
        await asyncio.wait_for(carrier.open(connect_timeout), connect_timeout)
    except CarrierRefused as exc:
        raise _refused(f"The hub refused this client's credentials: {exc}") from None
    except CarrierOpenError as exc:
        raise ThalovantConnectionError(str(exc)) from None
    except TimeoutError:
        raise ThalovantTimeoutError(
            f"Could not open the {carrier.protocol} connection within {connect_timeout:g} s."
        ) from None
    handshake_start = time.perf_counter()
    timings.transport_open_ms = (handshake_start - opened_at) * 1000
    timings.socket_open_ms = carrier.extra_info().get("socket_open_ms")
    on_phase("handshake")

    pin_id = carrier.pin_id
    hub_pin = store.hub_pin(pin_id)
    negotiation = ClientNegotiation(
        static=store.static_key(),
        site_id=credentials.site_id,
        session_id=session_id,
        hub_pin=hub_pin,
        force_xx=force_xx,
    )
    deadline = handshake_start + handshake_timeout
    psk: bytes | None = None
    psk_was_cached = False
    started_handshake = False
    pattern: str | None = None

    def forget_psk() -> None:
        if negotiation.node_id:
            store.forget_psk(credentials.access_key, negotiation.node_id)

    async def receive() -> str | bytes:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError
        return await asyncio.wait_for(carrier.receive(), remaining)

    async def send_all(outputs: list[str | bytes]) -> None:
        for out in outputs:
            if isinstance(out, str):
                await carrier.send_text(out)
            else:
                await carrier.send_binary(out)

    try:
        while not negotiation.complete:
            message = await receive()
            if isinstance(message, bytes):
                raise ThalovantConnectionError("Application traffic received before Noise authentication.")
            outputs = negotiation.receive_text(message)
            if getattr(negotiation, "needs_psk", False) and not started_handshake:
                node_id = negotiation.node_id
                assert node_id is not None
                psk = store.cached_psk(credentials.access_key, node_id)
                psk_was_cached = psk is not None
                if psk is None:
                    psk = await asyncio.to_thread(derive, credentials.password, node_id)
                started_handshake = True
                first = negotiation.start(psk)
                pattern = negotiation.pattern
                await carrier.send_text(first)
            await send_all(outputs)
    except TimeoutError:
        raise ThalovantTimeoutError(
            f"The hub did not complete the handshake within {handshake_timeout:g} s."
        ) from None
    except KKFailed:
        forget_psk()
        raise _RetryWithXX from None
    except HubKeyChanged:
        raise ThalovantHubKeyChangedError(
            f"Trusted Noise server key changed for {pin_id}: the hub's key differs from the one pinned in "
            f"{store.store_path}. Stop and check; remove that pin only if you trust the new key."
        ) from None
    except NegotiationAborted as exc:
        forget_psk()
        if pattern == KK and not force_xx:
            raise _RetryWithXX from None
        raise _refused(f"The hub refused the handshake: {exc}") from None
    except HandshakeError as exc:
        forget_psk()
        if pattern == KK and not force_xx:
            raise _RetryWithXX from None
        raise _refused(
            f"The hub refused this client (wrong password or tampered negotiation): {exc}"
        ) from None
    except NegotiationError as exc:
        raise ThalovantConnectionError(f"Malformed HiveMind negotiation: {exc}") from None
    except ProtocolError as exc:
        raise ThalovantConnectionError(f"Malformed HiveMind negotiation: {exc}") from None
    except CarrierClosed as exc:
        if exc.refusal_signal and negotiation.complete and negotiation.pattern != KK:
            # refused while the final XX frames or the encrypted HELLO went out (HTTPS 401/403)
            raise _key_rejected(store, f"as the handshake completed ({exc})") from None
        if exc.refusal_signal and started_handshake:
            forget_psk()
            if pattern == KK and not force_xx:
                raise _RetryWithXX from None
            raise _refused(f"The hub refused this client: {exc}") from None
        if exc.refusal_signal:
            raise _refused(f"The hub refused this client's credentials: {exc}") from None
        raise ThalovantConnectionError(
            f"The hub closed the connection before the handshake completed: {exc}"
        ) from None

    channel: SecureChannel | None = negotiation.channel
    if channel is None:  # pragma: no cover - the loop above only ends with a channel
        raise ThalovantConnectionError("The handshake ended without a secure channel.")
    hub_static: bytes | None = getattr(negotiation, "hub_static", None)
    pattern = str(negotiation.pattern)
    timings.handshake_ms = (time.perf_counter() - handshake_start) * 1000
    if not psk_was_cached and psk is not None and negotiation.node_id:
        store.store_psk(credentials.access_key, negotiation.node_id, psk)
    if hub_pin is None and hub_static is not None:
        store.pin_hub(pin_id, hub_static)

    early: list[Frame] = []
    if pattern != KK:
        early = await _settle_after_xx(carrier, channel, pin_id=pin_id, store=store)
    return Link(
        carrier,
        channel,
        pattern=pattern,
        session_id=session_id,
        hub_static=hub_static,
        timings=timings,
        early_frames=early,
    )


async def _settle_after_xx(
    carrier: Carrier, channel: SecureChannel, *, pin_id: str, store: NoiseStore
) -> list[Frame]:
    """Wait up to 750 ms for the first authenticated frame after an XX handshake. A refusal
    close in that window means the hub refused this client's static key."""
    frames: list[Frame] = []
    deadline = time.perf_counter() + REFUSAL_SETTLE_SECONDS
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return frames
        try:
            message = await asyncio.wait_for(carrier.receive(), remaining)
        except TimeoutError:
            return frames
        except CarrierClosed as exc:
            if exc.refusal_signal:
                raise _key_rejected(store, f"right after the handshake ({exc})") from None
            raise ThalovantConnectionError(
                f"The hub closed the connection after the handshake: {exc}"
            ) from None
        if isinstance(message, str):
            raise ThalovantConnectionError("Plaintext received after Noise authentication.")
        try:
            frame = channel.open(message)
        except ProtocolError as exc:
            raise ThalovantConnectionError(f"Malformed data from the hub: {exc}") from None
        if frame is not None:
            frames.append(frame)
        return frames
