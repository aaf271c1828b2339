"""The runtime client: connect to a hub, ask, emit, send inputs, listen for events.

:class:`AsyncThalovantClient` is the implementation (asyncio). :class:`ThalovantClient` is the
synchronous facade of the guide: it runs an :class:`AsyncThalovantClient` on a private event
loop thread, so there is exactly one implementation of every behaviour.

A client owns at most one link at a time. With ``auto_reconnect`` (the default) a dropped link
is redialled in the background with jittered backoff (5 s doubling to 60 s), and a publication
made while the link is down makes one immediate connect attempt first. A message already
published is never replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata as _metadata
from os import PathLike
from types import TracebackType
from typing import Any, Self, TypeVar

from thalovant.carriers import PROTOCOLS, Carrier, carrier_for
from thalovant.errors import (
    ThalovantClientKeyRejectedError,
    ThalovantConnectionError,
    ThalovantError,
    ThalovantHubKeyChangedError,
    ThalovantTimeoutError,
    ThalovantUnsupportedProtocolError,
)
from thalovant.events import EVENT_POLICY_DENIED, EVENT_UTTERANCE_HANDLED, ThalovantEvent
from thalovant.identity import ThalovantIdentity
from thalovant.models import ThalovantDoctorReport, ThalovantHealth, ThalovantReply
from thalovant.noise_store import NoiseStore
from thalovant.protocol.envelope import HiveMessage
from thalovant.protocol.wire1 import Wire1Frame
from thalovant.runtime import bus as busmsg
from thalovant.runtime.ask import EMPTY_REPLY_WAIT_SECONDS, ReplyCollector
from thalovant.runtime.doctor import run_doctor
from thalovant.runtime.inbound import RecentEvents, bus_event, bus_of
from thalovant.runtime.info import ThalovantConnectionInfo, redact_error
from thalovant.runtime.link import Credentials, Link, establish
from thalovant.runtime.loop import LoopThread
from thalovant.runtime.subscriptions import (
    EventQueue,
    Handler,
    Subscription,
    SubscriptionRegistry,
    event_matches,
)

log = logging.getLogger("thalovant.client")

T = TypeVar("T")


def _sdk_version() -> str:
    try:
        return _metadata.version("thalovant-selfhosted")
    except _metadata.PackageNotFoundError:
        return "0.1.0"


DEFAULT_USERAGENT = f"ThalovantPythonSDK/{_sdk_version()}"
CARRY_GRACE_SECONDS = 2.0
UNTRACKED_UTTERANCE_GRACE_SECONDS = 10.0
RECONNECT_FIRST_DELAY = 5.0
RECONNECT_MAX_DELAY = 60.0
FATAL_CONNECT_ERRORS = (ThalovantHubKeyChangedError, ThalovantClientKeyRejectedError)


def select_protocol(identity: ThalovantIdentity, protocol: str | None) -> str:
    """The carrier to use (spec 1.6): a forced one if the identity can use it; else WSS (flag
    on and an endpoint), then HTTPS, then MQTT with broker credentials."""
    if protocol is not None:
        wanted = protocol.strip().lower()
        if wanted == "http":
            wanted = "https"
        if wanted not in PROTOCOLS:
            raise ThalovantUnsupportedProtocolError(
                f"Unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}."
            )
        if wanted == "wss" and not identity.endpoint_for("wss"):
            raise ThalovantUnsupportedProtocolError("This identity has no WSS endpoint; it cannot use wss.")
        if wanted == "mqtt" and not identity.mqtt:
            raise ThalovantUnsupportedProtocolError("This identity has no MQTT broker credentials; it cannot use mqtt.")
        return wanted
    if identity.supports_protocol("wss") and identity.endpoint_for("wss"):
        return "wss"
    if identity.supports_protocol("https"):
        return "https"
    if identity.supports_protocol("mqtt") and identity.mqtt:
        return "mqtt"
    if identity.endpoint_for("https"):  # never empty: the fallback of spec 1.6
        return "https"
    raise ThalovantUnsupportedProtocolError("This identity enables no protocol this SDK can use.")


class _FromIdentity:
    """The guide's constructors, shared by the async client and its sync facade: each loads an
    identity and passes it, with ``protocol`` and ``options``, to the class's ``__init__``."""

    def __init__(self, identity: ThalovantIdentity, protocol: str | None = None, **options: Any) -> None:
        raise NotImplementedError

    @classmethod
    def from_config(
        cls,
        path: str | PathLike[str] | None = None,
        *,
        profile: str | None = None,
        protocol: str | None = None,
        **options: Any,
    ) -> Self:
        """A client for the identity of a config profile (spec 1.5)."""
        return cls(ThalovantIdentity.from_config(path, profile=profile), protocol, **options)

    @classmethod
    def from_identity_file(cls, path: str | PathLike[str], protocol: str | None = None, **options: Any) -> Self:
        """A client for an identity file (0600)."""
        return cls(ThalovantIdentity.from_file(path), protocol, **options)

    @classmethod
    def from_env(cls, prefix: str = "THALOVANT_", protocol: str | None = None, **options: Any) -> Self:
        """A client for the identity in ``THALOVANT_*`` environment variables."""
        return cls(ThalovantIdentity.from_env(prefix), protocol, **options)


class AsyncThalovantClient(_FromIdentity):
    """A runtime client for one hub identity (asyncio).

    ``protocol`` forces a carrier ("wss", "https", "mqtt"); without it the choice of spec 1.6
    applies. ``noise_state_dir`` overrides where the client's Noise key, hub pins and PSK
    cache live (spec 1.8). ``reply_settle_seconds`` is how long ``ask`` keeps collecting speech
    after the first sentence. ``self_signed=True`` turns TLS verification off (development only).
    """

    def __init__(
        self,
        identity: ThalovantIdentity,
        protocol: str | None = None,
        *,
        noise_state_dir: str | PathLike[str] | None = None,
        reply_settle_seconds: float = 0.25,
        connect_timeout: float = 4,
        handshake_timeout: float = 20,
        useragent: str = DEFAULT_USERAGENT,
        auto_reconnect: bool = True,
        self_signed: bool = False,
        empty_reply_wait_seconds: float = EMPTY_REPLY_WAIT_SECONDS,
    ) -> None:
        self.identity = identity
        self.protocol = select_protocol(identity, protocol)
        carrier_for(self.protocol, identity, useragent=useragent)  # fail early on a carrier we lack
        self._noise_state_dir = noise_state_dir
        self.reply_settle_seconds = reply_settle_seconds
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self.useragent = useragent
        self.auto_reconnect = auto_reconnect
        self.self_signed = self_signed
        self.empty_reply_wait_seconds = empty_reply_wait_seconds
        self._store: NoiseStore | None = None
        self._link: Link | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._phase = "idle"
        self._last_error: str | None = None
        self._closed = False
        self._reconnects = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._subscriptions = SubscriptionRegistry()
        self._queues: set[EventQueue] = set()
        self._collectors: dict[str, ReplyCollector] = {}
        self._carry_watch: dict[str, str] = {}
        self._carried: dict[str, dict[str, Any]] = {}
        self._last_untracked = -1e9
        self._recent = RecentEvents(time.monotonic)
        self._publish_seq = 0
        self._binary_handlers: list[Callable[[Wire1Frame], Any]] = []

    # ------------------------------------------------------------------ state

    @property
    def noise_store(self) -> NoiseStore:
        if self._store is None:
            hub_host = None
            with contextlib.suppress(Exception):
                from urllib.parse import urlsplit

                hub_host = urlsplit(self.identity.endpoint_for(self.protocol) or "").hostname
            self._store = NoiseStore.for_identity(
                self._noise_state_dir, getattr(self.identity, "source_path", None), hub_host
            )
        return self._store

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.alive

    @property
    def session_id(self) -> str | None:
        """The connection SID of the live link (the default session of its messages)."""
        return self._link.session_id if self._link is not None else None

    def _lock(self) -> asyncio.Lock:
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        return self._connect_lock

    def _new_carrier(self) -> Carrier:
        return carrier_for(self.protocol, self.identity, useragent=self.useragent, verify_tls=not self.self_signed)

    def connection_info(self) -> ThalovantConnectionInfo:
        """A snapshot of the link: phase, Noise pattern, timings, last error (nothing is sent)."""
        link = self._link
        timings = link.timings if link is not None else None
        endpoint: str | None
        try:
            endpoint = self._new_carrier().endpoint
        except ThalovantError:
            endpoint = None
        phase = self._phase
        if phase == "ready" and not self.connected:
            phase = "error"
        return ThalovantConnectionInfo(
            phase=phase,
            protocol=self.protocol,
            endpoint=endpoint,
            session_id=link.session_id if link is not None else None,
            noise_pattern=link.pattern if link is not None else None,
            started_at=timings.started_at if timings else None,
            connected_at=timings.connected_at if timings else None,
            transport_open_ms=timings.transport_open_ms if timings else None,
            socket_open_ms=timings.socket_open_ms if timings else None,
            handshake_ms=timings.handshake_ms if timings else None,
            connect_ms=timings.connect_ms if timings else None,
            attempts=timings.attempts if timings else 0,
            reconnects=self._reconnects,
            last_error=redact_error(self._last_error),
        )

    # ------------------------------------------------------------------ connecting

    async def connect(self) -> None:
        """Connect and authenticate, unless already connected. Raises the typed errors of
        spec 12 (refused, key changed, client key rejected, timeout, connection)."""
        self._closed = False
        async with self._lock():
            if self.connected:
                return
            await self._dial()

    async def _dial(self) -> None:
        old, self._link = self._link, None
        if old is not None:
            await old.close()
        credentials = Credentials(self.identity.access_key, self.identity.password, self.identity.site_id)

        def phase(value: str) -> None:
            self._phase = value

        try:
            link = await establish(
                self._new_carrier,
                store=self.noise_store,
                credentials=credentials,
                session_id=busmsg.connection_session_id(),
                connect_timeout=self.connect_timeout,
                handshake_timeout=self.handshake_timeout,
                on_phase=phase,
            )
        except ThalovantError as exc:
            self._phase = "error"
            self._last_error = f"{type(exc).__name__}: {exc}"
            raise
        except BaseException:
            self._phase = "error"
            raise
        link.on_envelope = self._on_envelope
        link.on_binary = self._on_binary
        link.on_lost = self._on_lost
        self._link = link
        self._phase = "ready"
        self._last_error = None
        link.start()

    async def _ensure_link(self) -> Link:
        """The live link; one connect attempt first when it is down."""
        if self._closed and self._link is None:
            self._closed = False
        if not self.connected:
            await self.connect()
        assert self._link is not None
        return self._link

    def _on_lost(self, error: ThalovantError) -> None:
        self._phase = "error"
        self._last_error = f"{type(error).__name__}: {error}"
        log.warning("Hub link lost: %s", redact_error(str(error)))
        for collector in list(self._collectors.values()):
            collector.abort(ThalovantConnectionError(f"The hub connection dropped before the reply: {error}"))
        if not self.auto_reconnect:
            for queue in list(self._queues):
                queue.fail(ThalovantConnectionError(f"The hub connection dropped: {error}"))
            return
        if not self._closed and (self._supervisor is None or self._supervisor.done()):
            self._supervisor = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay = RECONNECT_FIRST_DELAY
        while not self._closed and not self.connected:
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            if self._closed or self.connected:
                return
            try:
                await self.connect()
                self._reconnects += 1
                log.info("Reconnected to the hub.")
                return
            except FATAL_CONNECT_ERRORS as exc:
                log.error("Not reconnecting: %s", exc)
                return
            except ThalovantError as exc:
                log.info("Reconnect failed (%s); retrying.", redact_error(str(exc)))
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    async def close(self) -> None:
        """Close the link (normal close) and stop reconnecting. Idempotent."""
        self._closed = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await supervisor
        for collector in list(self._collectors.values()):
            collector.abort(ThalovantConnectionError("The client was closed."))
        for queue in list(self._queues):
            queue.fail(ThalovantConnectionError("The client was closed."))
        link, self._link = self._link, None
        if link is not None:
            await link.close()
        self._phase = "closed"

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ inbound

    def _on_envelope(self, envelope: HiveMessage) -> None:
        bus = bus_of(envelope, self.identity.site_id)
        if bus is None:
            return
        event = bus_event(bus)
        self._recent.add(event)
        rid = event.request_id
        if rid:
            collector = self._collectors.get(rid)
            if collector is not None:
                collector.feed(event)
            if event.name == EVENT_UTTERANCE_HANDLED and rid in self._carry_watch:
                self._remember_conversation(self._carry_watch[rid], event)
        elif event.name == EVENT_POLICY_DENIED:
            self._attribute_denial(event)
        self._subscriptions.deliver(event)

    def _on_binary(self, frame: Wire1Frame) -> None:
        for handler in list(self._binary_handlers):
            try:
                handler(frame)
            except Exception:
                log.exception("A binary handler raised")

    def _attribute_denial(self, event: ThalovantEvent) -> None:
        """A denial without a request id goes to the only ask in flight, if no untracked
        utterance was sent in the last 10 s (spec 6.5)."""
        if event.data.get("denied_type") != busmsg.UTTERANCE or len(self._collectors) != 1:
            return
        if time.monotonic() - self._last_untracked < UNTRACKED_UTTERANCE_GRACE_SECONDS:
            return
        next(iter(self._collectors.values())).feed(event)

    def _remember_conversation(self, request_session: str, event: ThalovantEvent) -> None:
        session = event.context.get("session")
        session = session if isinstance(session, Mapping) else {}
        fields = busmsg.carried_fields(session)
        keys = {request_session}
        answered = session.get("session_id")
        if isinstance(answered, str) and answered:
            keys.add(answered)
        for key in keys:
            if fields:
                self._carried[key] = fields
            else:
                self._carried.pop(key, None)

    # ------------------------------------------------------------------ publishing

    def _context(self, context: Mapping[str, Any] | None, link: Link) -> dict[str, Any]:
        metadata = getattr(self.identity, "metadata", None)
        return busmsg.runtime_context(
            context,
            useragent=self.useragent,
            connection_sid=link.session_id,
            site_id=self.identity.site_id,
            identity_metadata=metadata if isinstance(metadata, Mapping) else None,
        )

    async def _publish(self, name: str, data: Mapping[str, Any], context: Mapping[str, Any], link: Link) -> None:
        self._publish_seq = self._recent.seq
        await link.send_envelope(HiveMessage.bus(name, data, context))

    async def emit(
        self, name: str, data: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> None:
        """Send a raw bus event ``name`` with ``data`` and the runtime context (spec 6.7)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError("An event name is a non-empty string.")
        link = await self._ensure_link()
        await self._publish(name, dict(data or {}), self._context(context, link), link)

    async def _send_utterance(
        self,
        text: str,
        *,
        lang: str,
        session_id: str | None,
        request_id: str | None,
        context: Mapping[str, Any] | None,
        data_extra: Mapping[str, Any] | None = None,
        context_extra: Mapping[str, Any] | None = None,
        tracked: bool = False,
        settle: Callable[[str, str], ReplyCollector] | None = None,
    ) -> tuple[str, str, ReplyCollector | None]:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("An utterance is a non-empty string.")
        link = await self._ensure_link()
        effective_sid = session_id or _context_session_id(context) or link.session_id
        carried = self._carried.get(effective_sid) if tracked else None
        rid, data, ctx = busmsg.utterance_message(
            text,
            lang=lang,
            session_id=session_id,
            request_id=request_id,
            context=context,
            site_id=self.identity.site_id,
            carried=carried,
        )
        data.update(data_extra or {})
        ctx.update(context_extra or {})
        ctx = self._context(ctx, link)
        collector = settle(rid, effective_sid) if settle is not None else None
        if collector is not None:
            self._collectors[rid] = collector
            self._carry_watch[rid] = effective_sid
        else:
            self._last_untracked = time.monotonic()
        try:
            await self._publish(busmsg.UTTERANCE, data, ctx, link)
        except BaseException:
            self._collectors.pop(rid, None)
            self._carry_watch.pop(rid, None)
            raise
        return rid, effective_sid, collector

    async def ask(
        self,
        text: str,
        *,
        lang: str = "en-us",
        session_id: str | None = None,
        request_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        timeout: float = 12,
    ) -> ThalovantReply:
        """Send an utterance and collect the hub's spoken reply (spec 6.3)."""

        def collector(rid: str, sid: str) -> ReplyCollector:
            return ReplyCollector(
                rid,
                sid,
                settle_seconds=self.reply_settle_seconds,
                empty_reply_wait=self.empty_reply_wait_seconds,
            )

        rid, _sid, reply_collector = await self._send_utterance(
            text,
            lang=lang,
            session_id=session_id,
            request_id=request_id,
            context=context,
            tracked=True,
            settle=collector,
        )
        assert reply_collector is not None
        try:
            return await reply_collector.result(timeout)
        finally:
            self._collectors.pop(rid, None)
            asyncio.get_running_loop().call_later(CARRY_GRACE_SECONDS, self._carry_watch.pop, rid, None)

    async def send_utterance(
        self,
        text: str,
        *,
        lang: str = "en-us",
        session_id: str | None = None,
        request_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> str:
        """Send speech or chat text without waiting (fire and forget); returns the request id."""
        rid, _sid, _c = await self._send_utterance(
            text, lang=lang, session_id=session_id, request_id=request_id, context=context
        )
        return rid

    async def send_action(
        self,
        payload: str,
        *,
        title: str | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        lang: str = "en-us",
    ) -> str:
        """Send a button / menu pick / command (``context.input.kind = "action"``)."""
        action = {"kind": "action", "title": title if title is not None else payload, "payload": payload}
        rid, _sid, _c = await self._send_utterance(
            payload,
            lang=lang,
            session_id=session_id,
            request_id=None,
            context=context,
            context_extra={"input": action},
        )
        return rid

    async def send_code(
        self,
        value: str,
        *,
        kind: str = "code",
        label: str | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        lang: str = "en-us",
    ) -> str:
        """Send an exact value (QR, barcode, serial): ``input = {kind, label, value, exact}``."""
        code = {"kind": kind, "label": label if label is not None else kind, "value": value, "exact": True}
        rid, _sid, _c = await self._send_utterance(
            value,
            lang=lang,
            session_id=session_id,
            request_id=None,
            context=context,
            data_extra={"input": dict(code)},
            context_extra={"input": dict(code)},
        )
        return rid

    def conversation(self, lang: str = "en-us", session_id: str | None = None) -> AsyncConversation:
        """Related turns sharing one session (spec 6.6); use with ``async with`` or directly."""
        return AsyncConversation(self, lang=lang, session_id=session_id)

    # ------------------------------------------------------------------ events

    def on(self, name: str, handler: Handler) -> Subscription:
        """Call ``handler(event)`` on the client's event loop for every ``name`` event
        (``"*"`` for all). Returns a subscription; ``close()`` it to stop."""
        return self._subscriptions.add(name, handler)

    def on_binary(self, handler: Callable[[Wire1Frame], Any]) -> Callable[[], None]:
        """Receive every WIRE-1 ``bin`` frame; returns a function that unsubscribes."""
        self._binary_handlers.append(handler)
        return lambda: self._binary_handlers.remove(handler) if handler in self._binary_handlers else None

    def _queue(self, name: str, request_id: str | None, session_id: str | None, *, prefill: bool) -> EventQueue:
        """A queue for ``name``. With ``prefill`` it starts with the first matching event that
        arrived since the last publication and that no earlier wait took (so 'send, then
        wait' never misses a fast answer)."""
        queue = EventQueue(self._subscriptions, name, request_id=request_id, session_id=session_id)
        if prefill:
            for item in self._recent.since(self._publish_seq):
                if item.event.name != name or item.consumed:
                    continue
                if event_matches(item.event, request_id, session_id):
                    queue.feed_early(item.event)
                    item.consumed = True
                    break
        self._queues.add(queue)
        return queue

    def _drop_queue(self, queue: EventQueue) -> None:
        queue.close()
        self._queues.discard(queue)

    async def wait_for_event(
        self, name: str, timeout: float = 12, request_id: str | None = None, session_id: str | None = None
    ) -> ThalovantEvent:
        """The next ``name`` event (or one that arrived since your last publication);
        :class:`ThalovantTimeoutError` after ``timeout`` seconds."""
        await self._ensure_link()
        queue = self._queue(name, request_id, session_id, prefill=True)
        try:
            return await queue.get(timeout)
        except TimeoutError:
            raise ThalovantTimeoutError(f"No {name!r} event within {timeout:g} s.") from None
        finally:
            self._drop_queue(queue)

    def listen(self, name: str, timeout: float = 30, max_events: int | None = None) -> EventStream:
        """An async iterator of ``name`` events: it ends after ``timeout`` seconds in total or
        after ``max_events`` events. It subscribes at once, when called, so create it before
        sending what the events answer."""
        return EventStream(self, name, timeout=timeout, max_events=max_events)

    # ------------------------------------------------------------------ diagnostics

    async def healthcheck(self) -> ThalovantHealth:
        """Connect if needed, then report the link state (no network round trip)."""
        error: str | None = None
        if not self.connected:
            try:
                await self.connect()
            except ThalovantError as exc:
                error = f"{type(exc).__name__}: {exc}"
        link = self._link
        connected = link is not None and not self._closed
        handshake = link is not None and link.pattern is not None
        alive = link is not None and link.alive
        return ThalovantHealth(
            connected=connected,
            handshake_complete=handshake,
            transport_alive=alive,
            last_error=redact_error(error or (None if alive else self._last_error)),
            protocol=self.protocol,
            noise_pattern=link.pattern if link is not None else None,
        )

    async def doctor(self) -> ThalovantDoctorReport:
        """Check identity, endpoint, TLS, handshake and transport; readable when printed."""
        return await run_doctor(self)


def _context_session_id(context: Mapping[str, Any] | None) -> str | None:
    if not context:
        return None
    session = context.get("session")
    if isinstance(session, Mapping):
        sid = session.get("session_id")
        if isinstance(sid, str) and sid and sid != "default":
            return sid
    sid = context.get("session_id")
    return sid if isinstance(sid, str) and sid and sid != "default" else None


class EventStream:
    """The async iterator ``listen`` returns; subscribed from creation until exhausted/closed."""

    def __init__(self, client: AsyncThalovantClient, name: str, *, timeout: float, max_events: int | None) -> None:
        self._client = client
        self._deadline = time.monotonic() + timeout
        self._left = max_events
        self._queue: EventQueue | None = client._queue(name, None, None, prefill=False)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ThalovantEvent:
        queue = self._queue
        if queue is None or (self._left is not None and self._left <= 0):
            self.close()
            raise StopAsyncIteration
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self.close()
            raise StopAsyncIteration
        if not self._client.connected:
            await self._client._ensure_link()
        try:
            event = await queue.get(remaining)
        except TimeoutError:
            self.close()
            raise StopAsyncIteration from None
        except BaseException:
            self.close()
            raise
        if self._left is not None:
            self._left -= 1
        return event

    def close(self) -> None:
        queue, self._queue = self._queue, None
        if queue is not None:
            self._client._drop_queue(queue)

    async def aclose(self) -> None:
        self.close()


class AsyncConversation:
    """Turns that share one session id: ``ask`` carries the conversation state (spec 6.6)."""

    def __init__(self, client: AsyncThalovantClient, *, lang: str, session_id: str | None) -> None:
        self.client = client
        self.lang = lang
        self.session_id = session_id or busmsg.new_conversation_session_id()

    async def ask(
        self,
        text: str,
        *,
        lang: str | None = None,
        request_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        timeout: float = 12,
    ) -> ThalovantReply:
        return await self.client.ask(
            text,
            lang=lang or self.lang,
            session_id=self.session_id,
            request_id=request_id,
            context=context,
            timeout=timeout,
        )

    async def send_utterance(self, text: str, *, context: Mapping[str, Any] | None = None) -> str:
        return await self.client.send_utterance(text, lang=self.lang, session_id=self.session_id, context=context)

    def forget(self) -> None:
        """Drop the carried conversation state of this session."""
        self.client._carried.pop(self.session_id, None)

    async def __aenter__(self) -> AsyncConversation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.forget()


# ====================================================================== the sync facade


class ThalovantClient(_FromIdentity):
    """The synchronous client of the guide: an :class:`AsyncThalovantClient` on a private loop
    thread. Same arguments, same methods; handlers given to :meth:`on` run on that thread."""

    def __init__(self, identity: ThalovantIdentity, protocol: str | None = None, **options: Any) -> None:
        self._identity = identity
        self._protocol = protocol
        self._options = options
        select_protocol(identity, protocol)  # raise here, in the caller's thread
        self._runner: LoopThread | None = None
        self._client: AsyncThalovantClient | None = None
        self._ensure_runner()

    def _ensure_runner(self) -> tuple[LoopThread, AsyncThalovantClient]:
        if self._runner is None or not self._runner.running or self._client is None:
            runner = LoopThread()

            async def build() -> AsyncThalovantClient:
                return AsyncThalovantClient(self._identity, self._protocol, **self._options)

            try:
                self._client = runner.run(build())
            except BaseException:
                runner.stop()
                raise
            self._runner = runner
        return self._runner, self._client

    def _call(self, make: Callable[[AsyncThalovantClient], Any]) -> Any:
        runner, client = self._ensure_runner()
        return runner.run(make(client))

    @property
    def identity(self) -> ThalovantIdentity:
        return self._identity

    @property
    def protocol(self) -> str:
        return self._ensure_runner()[1].protocol

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    @property
    def noise_store(self) -> NoiseStore:
        return self._ensure_runner()[1].noise_store

    @property
    def async_client(self) -> AsyncThalovantClient:
        """The asyncio client this facade drives (use it only on its own loop)."""
        return self._ensure_runner()[1]

    def connection_info(self) -> ThalovantConnectionInfo:
        return self._ensure_runner()[1].connection_info()

    def connect(self) -> None:
        self._call(lambda c: c.connect())

    def close(self) -> None:
        """Close the link and stop the loop thread; a later call starts afresh."""
        runner, client = self._runner, self._client
        if runner is None or client is None or not runner.running:
            return
        try:
            runner.run(client.close())
        finally:
            runner.stop()
            self._runner = None
            self._client = None

    def __enter__(self) -> ThalovantClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        runner = getattr(self, "_runner", None)
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.stop()

    def healthcheck(self) -> ThalovantHealth:
        result: ThalovantHealth = self._call(lambda c: c.healthcheck())
        return result

    def doctor(self) -> ThalovantDoctorReport:
        result: ThalovantDoctorReport = self._call(lambda c: c.doctor())
        return result

    def ask(
        self,
        text: str,
        *,
        lang: str = "en-us",
        session_id: str | None = None,
        request_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        timeout: float = 12,
    ) -> ThalovantReply:
        result: ThalovantReply = self._call(
            lambda c: c.ask(
                text,
                lang=lang,
                session_id=session_id,
                request_id=request_id,
                context=context,
                timeout=timeout,
            )
        )
        return result

    def emit(self, name: str, data: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None) -> None:
        self._call(lambda c: c.emit(name, data, context))

    def send_utterance(
        self,
        text: str,
        *,
        lang: str = "en-us",
        session_id: str | None = None,
        request_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> str:
        result: str = self._call(
            lambda c: c.send_utterance(text, lang=lang, session_id=session_id, request_id=request_id, context=context)
        )
        return result

    def send_action(
        self,
        payload: str,
        *,
        title: str | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        lang: str = "en-us",
    ) -> str:
        result: str = self._call(
            lambda c: c.send_action(payload, title=title, session_id=session_id, context=context, lang=lang)
        )
        return result

    def send_code(
        self,
        value: str,
        *,
        kind: str = "code",
        label: str | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        lang: str = "en-us",
    ) -> str:
        result: str = self._call(
            lambda c: c.send_code(value, kind=kind, label=label, session_id=session_id, context=context, lang=lang)
        )
        return result

    def conversation(self, lang: str = "en-us", session_id: str | None = None) -> Conversation:
        return Conversation(self, lang=lang, session_id=session_id)

    def wait_for_event(
        self, name: str, timeout: float = 12, request_id: str | None = None, session_id: str | None = None
    ) -> ThalovantEvent:
        result: ThalovantEvent = self._call(lambda c: c.wait_for_event(name, timeout, request_id, session_id))
        return result

    def listen(self, name: str, timeout: float = 30, max_events: int | None = None) -> Iterator[ThalovantEvent]:
        """An iterator of ``name`` events (subscribed at once); ends after ``timeout`` seconds
        in total or ``max_events`` events."""
        runner, client = self._ensure_runner()

        async def open_stream() -> EventStream:
            await client._ensure_link()
            return client.listen(name, timeout=timeout, max_events=max_events)

        stream = runner.run(open_stream())
        return _SyncEventIterator(runner, stream)

    def on(self, name: str, handler: Handler) -> Subscription:
        """Call ``handler(event)`` for every ``name`` event, on the client's loop thread."""
        runner, client = self._ensure_runner()

        async def subscribe() -> Subscription:
            return client.on(name, handler)

        return runner.run(subscribe())


class _SyncEventIterator(Iterator[ThalovantEvent]):
    def __init__(self, runner: LoopThread, stream: EventStream) -> None:
        self._runner = runner
        self._stream = stream

    def __iter__(self) -> _SyncEventIterator:
        return self

    def __next__(self) -> ThalovantEvent:
        try:
            return self._runner.run(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        if self._runner.running:
            self._runner.run(self._stream.aclose())


class Conversation:
    """The sync conversation of the guide: ``with client.conversation() as convo:``."""

    def __init__(self, client: ThalovantClient, *, lang: str, session_id: str | None) -> None:
        self.client = client
        self.lang = lang
        self.session_id = session_id or busmsg.new_conversation_session_id()

    def ask(
        self,
        text: str,
        *,
        lang: str | None = None,
        request_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        timeout: float = 12,
    ) -> ThalovantReply:
        return self.client.ask(
            text,
            lang=lang or self.lang,
            session_id=self.session_id,
            request_id=request_id,
            context=context,
            timeout=timeout,
        )

    def send_utterance(self, text: str, *, context: Mapping[str, Any] | None = None) -> str:
        return self.client.send_utterance(text, lang=self.lang, session_id=self.session_id, context=context)

    def forget(self) -> None:
        client = self.client.async_client
        client._carried.pop(self.session_id, None)

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.forget()


__all__ = [
    "DEFAULT_USERAGENT",
    "AsyncConversation",
    "AsyncThalovantClient",
    "Conversation",
    "EventStream",
    "ThalovantClient",
    "ThalovantConnectionInfo",
    "select_protocol",
]
