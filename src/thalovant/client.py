"""The runtime client: connect to a hub, ask, emit, send inputs, listen for events.

:class:`AsyncThalovantClient` is the implementation (asyncio). :class:`ThalovantClient` is the
synchronous twin of the guide, generated from it (:mod:`thalovant.runtime.twin`): it runs an
:class:`AsyncThalovantClient` on a private event loop thread, so there is exactly one
implementation of every behaviour.

A client owns at most one link at a time, kept by a :class:`LinkSupervisor`. With
``auto_reconnect`` (the default) every loss of the link ends in the same reconnect loop (first
retry within a second, then back-off: :mod:`thalovant.runtime.policy`), listeners stay
subscribed across reconnects, and a call made while the link is down waits for it up to its
timeout (``send_timeout`` for calls without one) and then sends. A message that went out before
the link dropped is never replayed: an ``ask`` waiting for its reply then fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata as _metadata
from os import PathLike
from types import TracebackType
from typing import Any, Self, TypedDict, Unpack

from thalovant.carriers import PROTOCOLS, Carrier, carrier_for
from thalovant.errors import (
    ThalovantConnectionError,
    ThalovantError,
    ThalovantPolicyDeniedError,
    ThalovantRuntimeError,
    ThalovantTimeoutError,
    ThalovantUnsupportedProtocolError,
)
from thalovant.events import (
    EVENT_ADAPT_MANIFEST,
    EVENT_ADAPT_MANIFEST_GET,
    EVENT_INTENT_DESCRIBE,
    EVENT_INTENT_DESCRIBE_RESPONSE,
    EVENT_INTENT_LIST,
    EVENT_INTENT_LIST_RESPONSE,
    EVENT_PADATIOUS_MANIFEST,
    EVENT_PADATIOUS_MANIFEST_GET,
    EVENT_POLICY_DENIED,
    EVENT_UTTERANCE_HANDLED,
    HIVE_BROADCAST,
    HIVE_ESCALATE,
    HIVE_PROPAGATE,
    ThalovantEvent,
)
from thalovant.identity import ThalovantIdentity
from thalovant.models import ThalovantBinary, ThalovantDoctorReport, ThalovantHealth, ThalovantReply
from thalovant.noise_store import NoiseStore
from thalovant.protocol.envelope import HiveMessage, copy_json
from thalovant.protocol.wire1 import Wire1Frame
from thalovant.runtime import bus as busmsg
from thalovant.runtime.ask import EMPTY_REPLY_WAIT_SECONDS, ReplyCollector
from thalovant.runtime.doctor import run_doctor
from thalovant.runtime.inbound import RecentEvents, bus_event, bus_of
from thalovant.runtime.info import ThalovantConnectionInfo, redact_error
from thalovant.runtime.intents import (
    IntentDefinition,
    IntentRegistration,
    definitions_from,
    registrations_from,
    registrations_from_manifest,
)
from thalovant.runtime.link import Credentials, HubRestarting, Link, LinkDown, establish
from thalovant.runtime.loop import LoopThread
from thalovant.runtime.subscriptions import (
    EventQueue,
    Handler,
    Subscription,
    SubscriptionRegistry,
    event_matches,
)
from thalovant.runtime.supervisor import LinkSupervisor
from thalovant.runtime.twin import SyncTwin, attribute, blocking, on_loop

log = logging.getLogger("thalovant.client")


def _sdk_version() -> str:
    try:
        return _metadata.version("thalovant-selfhosted")
    except _metadata.PackageNotFoundError:
        return "0.1.0"


DEFAULT_USERAGENT = f"ThalovantPythonSDK/{_sdk_version()}"
CARRY_GRACE_SECONDS = 2.0
UNTRACKED_UTTERANCE_GRACE_SECONDS = 10.0
SEND_TIMEOUT = 8.0
MAX_DESCRIBES_IN_FLIGHT = 32
QUERY_KINDS = frozenset({"query", "cascade"})


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


class ClientOptions(TypedDict, total=False):
    """The keyword options of :class:`AsyncThalovantClient` (and of its sync twin)."""

    noise_state_dir: str | PathLike[str] | None
    reply_settle_seconds: float
    connect_timeout: float
    handshake_timeout: float
    send_timeout: float
    useragent: str
    auto_reconnect: bool
    self_signed: bool
    empty_reply_wait_seconds: float


class _FromIdentity:
    """The guide's constructors, shared by the async client and its sync twin: each loads an
    identity and passes it, with ``protocol`` and the options, to the class's ``__init__``."""

    def __init__(
        self, identity: ThalovantIdentity, protocol: str | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        raise NotImplementedError

    @classmethod
    def from_config(
        cls,
        path: str | PathLike[str] | None = None,
        *,
        profile: str | None = None,
        protocol: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> Self:
        """A client for the identity of a config profile (spec 1.5)."""
        return cls(ThalovantIdentity.from_config(path, profile=profile), protocol, **options)

    @classmethod
    def from_identity_file(
        cls, path: str | PathLike[str], protocol: str | None = None, **options: Unpack[ClientOptions]
    ) -> Self:
        """A client for an identity file (0600)."""
        return cls(ThalovantIdentity.from_file(path), protocol, **options)

    @classmethod
    def from_env(
        cls, prefix: str = "THALOVANT_", protocol: str | None = None, **options: Unpack[ClientOptions]
    ) -> Self:
        """A client for the identity in ``THALOVANT_*`` environment variables."""
        return cls(ThalovantIdentity.from_env(prefix), protocol, **options)


class AsyncThalovantClient(_FromIdentity):
    """A runtime client for one hub identity (asyncio).

    ``protocol`` forces a carrier ("wss", "https", "mqtt"); without it the choice of spec 1.6
    applies. ``noise_state_dir`` overrides where the client's Noise key, hub pins and PSK
    cache live (spec 1.8). ``reply_settle_seconds`` is how long ``ask`` keeps collecting speech
    after the first sentence. ``send_timeout`` is how long a call without a timeout of its own
    (``emit``, ``send_*``) waits for a link that is down. ``self_signed=True`` turns TLS
    verification off (development only).
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
        send_timeout: float = SEND_TIMEOUT,
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
        self.send_timeout = send_timeout
        self.useragent = useragent
        self.self_signed = self_signed
        self.empty_reply_wait_seconds = empty_reply_wait_seconds
        self._store: NoiseStore | None = None
        self._endpoint: str | None = None
        self._supervisor = LinkSupervisor(self._dial, auto_reconnect=auto_reconnect, on_down=self._on_down)
        self._phase = "idle"
        self._subscriptions = SubscriptionRegistry()
        self._queues: set[EventQueue] = set()
        self._collectors: dict[str, ReplyCollector] = {}
        self._carry_watch: dict[str, str] = {}
        self._carried: dict[str, dict[str, Any]] = {}
        self._last_untracked = -1e9
        self._recent = RecentEvents(time.monotonic)
        self._publish_seq = 0
        self._binary_handlers: list[Callable[[ThalovantBinary], Any]] = []
        self._queries: dict[str, ReplyCollector] = {}
        self._describe_slots: asyncio.Semaphore | None = None
        self._handler_tasks: set[asyncio.Future[Any]] = set()

    # ------------------------------------------------------------------ state

    @property
    def auto_reconnect(self) -> bool:
        """Whether a lost link is redialled in the background."""
        return self._supervisor.auto_reconnect

    @property
    def noise_store(self) -> NoiseStore:
        """Where this client's Noise key, hub pins and PSK cache live."""
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
        """True while the link is up."""
        return self._supervisor.up

    @property
    def session_id(self) -> str | None:
        """The connection SID of the live link (the default session of its messages)."""
        link = self._supervisor.link
        return link.session_id if link is not None else None

    @property
    def endpoint(self) -> str:
        """The endpoint this client dials, without credentials; raises a
        :class:`ThalovantError` when the identity cannot use its protocol."""
        if self._endpoint is None:
            self._endpoint = self._new_carrier().endpoint
        return self._endpoint

    def _new_carrier(self) -> Carrier:
        return carrier_for(self.protocol, self.identity, useragent=self.useragent, verify_tls=not self.self_signed)

    def connection_info(self) -> ThalovantConnectionInfo:
        """A snapshot of the link: phase, Noise pattern, timings, last error (nothing is sent)."""
        link = self._supervisor.link
        timings = link.timings if link is not None else None
        endpoint: str | None
        try:
            endpoint = self.endpoint
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
            reconnects=self._supervisor.reconnects,
            last_error=self._last_error(),
        )

    def _last_error(self) -> str | None:
        error = self._supervisor.last_error
        return redact_error(f"{type(error).__name__}: {error}") if error is not None else None

    # ------------------------------------------------------------------ connecting

    async def connect(self) -> None:
        """Connect and authenticate, unless already connected. Raises the typed errors of
        spec 12 (refused, key changed, client key rejected, timeout, connection)."""
        await self._supervisor.connect()

    async def _dial(self) -> Link:
        """One attempt: a started link wired to this client (called by the supervisor)."""
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
        except BaseException:
            self._phase = "error"
            raise
        supervisor = self._supervisor
        link.on_envelope = self._on_envelope
        link.on_binary = self._on_binary
        link.on_lost = lambda error: supervisor.lost(link, error)
        self._phase = "ready"
        link.start()
        return link

    def _on_down(self, error: ThalovantError) -> None:
        """An established link was lost: asks waiting for a reply fail (their message went
        out and is never replayed), except those the failure policy sends again (a hub
        restarting before it answered anything of theirs); without auto-reconnect, waits for
        events fail too."""
        self._phase = "error"
        resend = isinstance(error, HubRestarting) and self.auto_reconnect
        for collector in list(self._collectors.values()):
            if not collector.sent:
                continue  # its message is still waiting for a link: it goes out on the next one
            if resend and not collector.events:
                collector.abort(_SendAgain())
            else:
                collector.abort(ThalovantConnectionError(f"The hub connection dropped before the reply: {error}"))
        if not self.auto_reconnect:
            for queue in list(self._queues):
                queue.fail(ThalovantConnectionError(f"The hub connection dropped: {error}"))

    async def wait_connected(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the link (connecting or reconnecting as the
        failure policy says); raises like :meth:`connect`."""
        await self._supervisor.wait_up(timeout)

    async def close(self) -> None:
        """Close the link (normal close) and stop reconnecting. Idempotent."""
        await self._supervisor.close()
        for collector in list(self._collectors.values()):
            collector.abort(ThalovantConnectionError("The client was closed."))
        for queue in list(self._queues):
            queue.fail(ThalovantConnectionError("The client was closed."))
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
        if envelope.msg_type in QUERY_KINDS:
            self._on_query_frame(envelope)
            return
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

    def _on_query_frame(self, envelope: HiveMessage) -> None:
        """A ``query``/``cascade`` answer frame (spec 6.4): its bus message goes to the query."""
        query_id = envelope.metadata.get("query_id", envelope.metadata.get("queryId"))
        collector = self._queries.get(str(query_id)) if query_id is not None else None
        if collector is None:
            return
        inner = envelope.inner()
        bus = inner.bus_message() if inner is not None and inner.msg_type == "bus" else envelope.bus_message()
        if bus.type:
            collector.feed(bus_event(bus))

    def _on_binary(self, frame: Wire1Frame) -> None:
        payload = frame.payload if isinstance(frame.payload, bytes) else b""
        binary = ThalovantBinary(frame.kind or "binary", payload, dict(frame.metadata))
        for handler in list(self._binary_handlers):
            try:
                result = handler(binary)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._handler_tasks.add(task)
                    task.add_done_callback(self._handler_tasks.discard)
            except Exception:
                log.exception("A binary handler raised")

    def _attribute_denial(self, event: ThalovantEvent) -> None:
        """A denial without a request id goes to the only ask in flight, if no untracked
        utterance was sent in the last 10 s (spec 6.5)."""
        if event.data.get("denied_type") != busmsg.UTTERANCE or len(self._collectors) != 1 or self._queries:
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

    def forget_conversation(self, session_id: str) -> None:
        """Drop the conversation state carried for ``session_id`` (spec 6.6)."""
        self._carried.pop(session_id, None)

    # ------------------------------------------------------------------ publishing

    def _context(self, context: Mapping[str, Any] | None, link: Link, *, owned: bool = False) -> dict[str, Any]:
        metadata = getattr(self.identity, "metadata", None)
        return busmsg.runtime_context(
            context,
            useragent=self.useragent,
            connection_sid=link.session_id,
            site_id=self.identity.site_id,
            identity_metadata=metadata if isinstance(metadata, Mapping) else None,
            owned=owned,
        )

    async def _deliver(self, build: Callable[[Link], HiveMessage], timeout: float) -> Link:
        """Send the message ``build(link)`` makes for the live link, waiting up to ``timeout``
        seconds for the link. A message that found the link down before anything went out is
        built again for the next link and sent there."""
        deadline = time.monotonic() + timeout
        while True:
            link = await self._supervisor.wait_up(max(deadline - time.monotonic(), 0.0))
            message = build(link)
            self._publish_seq = self._recent.seq
            try:
                await link.send_envelope(message)
                return link
            except LinkDown:
                if time.monotonic() >= deadline:
                    raise

    async def emit(
        self, name: str, data: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> None:
        """Send a raw bus event ``name`` with ``data`` and the runtime context (spec 6.7)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError("An event name is a non-empty string.")
        payload = dict(data or {})

        def build(link: Link) -> HiveMessage:
            return HiveMessage.bus(name, payload, self._context(context, link))

        await self._deliver(build, self.send_timeout)

    async def _send_utterance(
        self,
        text: str,
        *,
        lang: str,
        session_id: str | None,
        request_id: str | None,
        context: Mapping[str, Any] | None,
        timeout: float,
        data_extra: Mapping[str, Any] | None = None,
        context_extra: Mapping[str, Any] | None = None,
        collector: ReplyCollector | None = None,
    ) -> str:
        """Send one utterance (waiting up to ``timeout`` for the link); with ``collector``, the
        reply is collected and the conversation state carried. Returns the request id."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("An utterance is a non-empty string.")
        rid = request_id or busmsg.new_request_id()

        def build(link: Link) -> HiveMessage:
            effective_sid = session_id or _context_session_id(context) or link.session_id
            carried = self._carried.get(effective_sid) if collector is not None else None
            _rid, data, ctx = busmsg.utterance_message(
                text,
                lang=lang,
                session_id=session_id,
                request_id=rid,
                context=context,
                site_id=self.identity.site_id,
                carried=carried,
            )
            data.update(data_extra or {})
            if context_extra:
                ctx.update(copy_json(dict(context_extra)))
            if collector is not None:
                collector.session_id = effective_sid
                self._carry_watch[rid] = effective_sid
            # ctx is this message's own (utterance_message copied the caller's context)
            return HiveMessage.bus(busmsg.UTTERANCE, data, self._context(ctx, link, owned=True))

        if collector is not None:
            self._collectors[rid] = collector
        else:
            self._last_untracked = time.monotonic()
        try:
            await self._deliver(build, timeout)
        except BaseException:
            self._collectors.pop(rid, None)
            self._carry_watch.pop(rid, None)
            raise
        if collector is not None:
            collector.sent = True
        return rid

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
        """Send an utterance and collect the hub's spoken reply (spec 6.3). While the link is
        down the ask waits for it; ``timeout`` covers the wait and the reply."""
        deadline = time.monotonic() + timeout
        collector = ReplyCollector(
            request_id or busmsg.new_request_id(),
            None,
            settle_seconds=self.reply_settle_seconds,
            empty_reply_wait=self.empty_reply_wait_seconds,
        )
        rid = collector.request_id
        try:
            while True:
                await self._send_utterance(
                    text,
                    lang=lang,
                    session_id=session_id,
                    request_id=rid,
                    context=context,
                    timeout=max(deadline - time.monotonic(), 0.0),
                    collector=collector,
                )
                try:
                    return await collector.result(max(deadline - time.monotonic(), 0.0))
                except _SendAgain:
                    collector = collector.fresh()
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
        return await self._send_utterance(
            text,
            lang=lang,
            session_id=session_id,
            request_id=request_id,
            context=context,
            timeout=self.send_timeout,
        )

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
        return await self._send_utterance(
            payload,
            lang=lang,
            session_id=session_id,
            request_id=None,
            context=context,
            timeout=self.send_timeout,
            context_extra={"input": action},
        )

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
        return await self._send_utterance(
            value,
            lang=lang,
            session_id=session_id,
            request_id=None,
            context=context,
            timeout=self.send_timeout,
            data_extra={"input": dict(code)},
            context_extra={"input": dict(code)},
        )

    def conversation(self, lang: str = "en-us", session_id: str | None = None) -> AsyncConversation:
        """Related turns sharing one session (spec 6.6); use with ``async with`` or directly."""
        return AsyncConversation(self, lang=lang, session_id=session_id)

    # ------------------------------------------------------------------ events

    def on(self, name: str, handler: Handler) -> Subscription:
        """Call ``handler(event)`` on the client's event loop for every ``name`` event
        (``"*"`` for all). Returns a subscription; ``close()`` it to stop. Subscriptions
        outlive reconnects."""
        return self._subscriptions.add(name, handler)

    def on_binary(self, handler: Callable[[ThalovantBinary], Any]) -> Callable[[], None]:
        """Call ``handler`` with every binary frame the hub sends (audio, files) as a
        :class:`ThalovantBinary`; returns a function that unsubscribes."""
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
        deadline = time.monotonic() + timeout
        await self._supervisor.wait_up(timeout)
        queue = self._queue(name, request_id, session_id, prefill=True)
        try:
            return await queue.get(max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            raise ThalovantTimeoutError(f"No {name!r} event within {timeout:g} s.") from None
        finally:
            self._drop_queue(queue)

    def listen(self, name: str, timeout: float = 30, max_events: int | None = None) -> EventStream:
        """An async iterator of ``name`` events: it ends after ``timeout`` seconds in total or
        after ``max_events`` events. It subscribes at once, when called, so create it before
        sending what the events answer; it keeps listening across reconnects."""
        return EventStream(
            self._queue(name, None, None, prefill=False),
            self._drop_queue,
            timeout=timeout,
            max_events=max_events,
        )

    # ------------------------------------------------------------------ queries and intents

    async def query(
        self,
        text: str,
        *,
        timeout: float = 12.0,
        lang: str = "en-us",
        context: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        request_id: str | None = None,
        query_id: str | None = None,
    ) -> ThalovantReply:
        """Ask through a direct HiveMind query (spec 6.4): the answer ends with the hub's
        ``hive.query.complete`` (no settle window). Each query gets a session of its own unless
        ``session_id`` is given."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("An utterance is a non-empty string.")
        deadline = time.monotonic() + timeout
        rid = request_id or busmsg.new_request_id()
        qid = query_id or rid
        sid = session_id or busmsg.new_conversation_session_id()
        collector = ReplyCollector(rid, sid, settle_seconds=0, direct=True)
        ctx = busmsg.query_context(context, request_id=rid, session_id=sid, site_id=self.identity.site_id, lang=lang)
        data = {"utterances": [text.strip()], "lang": lang}
        self._queries[qid] = collector
        try:
            await self._deliver(
                lambda _link: busmsg.nested("query", busmsg.UTTERANCE, data, ctx, query_id=qid), timeout
            )
            return await collector.result(max(deadline - time.monotonic(), 0.0))
        finally:
            self._queries.pop(qid, None)

    async def _exchange(
        self,
        name: str,
        data: Mapping[str, Any],
        *,
        answer: str,
        timeout: float,
        lang: str | None = None,
        lenient: Callable[[ThalovantEvent], bool] = lambda _event: True,
    ) -> ThalovantEvent:
        """Send the bus query ``name`` and wait for its ``answer`` (spec 6.7): an answer with
        our request id, or one without any that ``lenient`` accepts; a denial of ``name``
        raises :class:`ThalovantPolicyDeniedError`."""
        rid = busmsg.new_request_id()
        found: asyncio.Future[ThalovantEvent] = asyncio.get_running_loop().create_future()

        def take(event: ThalovantEvent) -> None:
            if found.done() or event.request_id not in (None, rid):
                return
            if event.name == EVENT_POLICY_DENIED:
                if event.data.get("denied_type") == name:
                    found.set_exception(ThalovantPolicyDeniedError.from_event(event))
            elif event.request_id == rid or lenient(event):
                found.set_result(event)

        watching = [self._subscriptions.add(answer, take), self._subscriptions.add(EVENT_POLICY_DENIED, take)]
        context: dict[str, Any] = {"request_id": rid}
        if lang:
            context["lang"] = lang
        deadline = time.monotonic() + timeout
        try:
            await self._deliver(lambda link: HiveMessage.bus(name, data, self._context(context, link)), timeout)
            return await asyncio.wait_for(asyncio.shield(found), max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            raise ThalovantTimeoutError(f"No {answer!r} within {timeout:g} s.") from None
        finally:
            for subscription in watching:
                subscription.close()

    async def list_intents(
        self, lang: str | None = None, *, timeout: float = 5.0, include_definitions: bool = False
    ) -> list[IntentRegistration]:
        """The intents the hub's skills registered, for ``lang`` (every language when None).

        When the hub refuses or does not answer ``ovos.intent.list``, the adapt and padatious
        manifests are asked instead; when those fail too, the first error is raised."""
        data: dict[str, Any] = {} if lang is None else {"lang": lang}
        if include_definitions:
            data["include_definitions"] = True
        try:
            event = await self._exchange(
                EVENT_INTENT_LIST, data, answer=EVENT_INTENT_LIST_RESPONSE, timeout=timeout, lang=lang
            )
        except (ThalovantPolicyDeniedError, ThalovantTimeoutError) as first:
            try:
                return await self._manifest_intents(lang or "en-us", timeout)
            except ThalovantError:
                raise first from None
        if event.data.get("ok") is False:
            raise ThalovantRuntimeError(str(event.data.get("error") or "The hub could not list its intents."))
        session = event.context.get("session")
        hub_lang = session.get("lang") if isinstance(session, Mapping) else None
        return registrations_from(event.data, lang or (hub_lang if isinstance(hub_lang, str) and hub_lang else "en-us"))

    async def _manifest_intents(self, lang: str, timeout: float) -> list[IntentRegistration]:
        adapt, padatious = await asyncio.gather(
            self._exchange(EVENT_ADAPT_MANIFEST_GET, {"lang": lang}, answer=EVENT_ADAPT_MANIFEST, timeout=timeout),
            self._exchange(
                EVENT_PADATIOUS_MANIFEST_GET, {"lang": lang}, answer=EVENT_PADATIOUS_MANIFEST, timeout=timeout
            ),
        )
        return [
            *registrations_from_manifest(adapt.data, "keyword", lang),
            *registrations_from_manifest(padatious.data, "template", lang),
        ]

    async def describe_intent(
        self, skill_id: str, intent_name: str, lang: str | None = None, *, timeout: float = 5.0
    ) -> list[IntentDefinition]:
        """How one intent of one skill is recognised (``ovos.intent.describe``); at most 32 in flight."""
        wanted = lang or "en-us"

        def same_intent(event: ThalovantEvent) -> bool:
            found = definitions_from(event.data)
            return not found or (found[0].skill_id, found[0].intent_name, found[0].lang or wanted) == (
                skill_id,
                intent_name,
                wanted,
            )

        if self._describe_slots is None:
            self._describe_slots = asyncio.Semaphore(MAX_DESCRIBES_IN_FLIGHT)
        async with self._describe_slots:
            event = await self._exchange(
                EVENT_INTENT_DESCRIBE,
                {"skill_id": skill_id, "intent_name": intent_name, "lang": wanted},
                answer=EVENT_INTENT_DESCRIBE_RESPONSE,
                timeout=timeout,
                lang=wanted,
                lenient=same_intent,
            )
        if event.data.get("ok") is False:
            raise ThalovantRuntimeError(str(event.data.get("error") or "The hub could not describe the intent."))
        return definitions_from(event.data)

    # ------------------------------------------------------------------ replies and mesh sends

    async def reply(
        self,
        event: ThalovantEvent | Mapping[str, Any],
        msg_type: str,
        data: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """Answer a hub message along its route (spec 6.7): the message's own context with
        source and destination swapped, session and request id kept."""
        if not isinstance(msg_type, str) or not msg_type.strip():
            raise ValueError("A message type is a non-empty string.")
        original: Mapping[str, Any]
        if isinstance(event, ThalovantEvent):
            original = event.routing_context if event.routing_context is not None else event.context
        else:
            raw = event.get("context")
            original = raw if isinstance(raw, Mapping) else {}
        routed = busmsg.reply_context(original, context)
        payload = dict(data or {})

        def build(link: Link) -> HiveMessage:
            ctx = self._context(routed, link)
            if "destination" not in routed:
                ctx.pop("destination", None)  # a request with a destination but no source
            return HiveMessage.bus(msg_type, payload, ctx)

        await self._deliver(build, self.send_timeout)

    async def _mesh(
        self, kind: str, event_type: str, data: Mapping[str, Any] | None, context: Mapping[str, Any] | None
    ) -> None:
        if not isinstance(event_type, str) or not event_type.strip():
            raise ValueError("An event type is a non-empty string.")
        payload = dict(data or {})
        await self._deliver(
            lambda link: busmsg.nested(kind, event_type, payload, self._context(context, link)), self.send_timeout
        )

    async def propagate(
        self, event_type: str, data: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> None:
        """Send a bus message for the hub to pass on through the mesh (``propagate``)."""
        await self._mesh(HIVE_PROPAGATE, event_type, data, context)

    async def escalate(
        self, event_type: str, data: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> None:
        """Send a bus message up the mesh (``escalate``)."""
        await self._mesh(HIVE_ESCALATE, event_type, data, context)

    async def broadcast(
        self, event_type: str, data: Mapping[str, Any] | None = None, context: Mapping[str, Any] | None = None
    ) -> None:
        """Send a bus message to every node of the mesh (``broadcast``). It needs admin standing
        on the hub: a hub disconnects a client without it (spec 6.7)."""
        await self._mesh(HIVE_BROADCAST, event_type, data, context)

    # ------------------------------------------------------------------ the connection's life

    async def connect_with_info(self, timeout: float | None = None) -> ThalovantConnectionInfo:
        """Connect (within ``timeout`` seconds, when given) and return :meth:`connection_info`."""
        if timeout is None:
            await self.connect()
        else:
            try:
                async with asyncio.timeout(timeout):
                    await self.connect()
            except TimeoutError:
                raise ThalovantTimeoutError(f"Not connected within {timeout:g} s.") from None
        return self.connection_info()

    async def disconnect(self, timeout: float | None = None) -> None:
        """Close the connection normally and stop reconnecting (``connect`` opens a new one)."""
        if timeout is None:
            await self.close()
            return
        try:
            async with asyncio.timeout(timeout):
                await self.close()
        except TimeoutError:
            raise ThalovantTimeoutError(f"The connection did not close within {timeout:g} s.") from None

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the current connection ends (closed by either side, or lost); at once
        when there is none."""
        link = self._supervisor.link
        if link is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await link.wait_ended()
        except TimeoutError:
            raise ThalovantTimeoutError(f"The connection was still open after {timeout:g} s.") from None

    # ------------------------------------------------------------------ diagnostics

    async def healthcheck(self) -> ThalovantHealth:
        """Connect if needed, then report the link state (no network round trip)."""
        error: str | None = None
        if not self.connected:
            try:
                await self.connect()
            except ThalovantError as exc:
                error = f"{type(exc).__name__}: {exc}"
        link = self._supervisor.link
        alive = link is not None and link.alive
        return ThalovantHealth(
            connected=link is not None,
            handshake_complete=link is not None and link.pattern is not None,
            transport_alive=alive,
            last_error=redact_error(error) if error else (None if alive else self._last_error()),
            protocol=self.protocol,
            noise_pattern=link.pattern if link is not None else None,
        )

    async def doctor(self) -> ThalovantDoctorReport:
        """Check identity, endpoint, TLS, handshake and transport; readable when printed."""
        return await run_doctor(self)


class _SendAgain(Exception):
    """Internal: the hub restarted before answering this ask; send it again on the next link."""


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
    """The async iterator ``listen`` returns: a queue subscribed from creation until the
    stream is exhausted or closed. Events arrive whenever the link is up."""

    def __init__(
        self,
        queue: EventQueue,
        drop: Callable[[EventQueue], None],
        *,
        timeout: float,
        max_events: int | None,
    ) -> None:
        self._queue: EventQueue | None = queue
        self._drop = drop
        self._deadline = time.monotonic() + timeout
        self._left = max_events

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ThalovantEvent:
        queue = self._queue
        remaining = self._deadline - time.monotonic()
        if queue is None or (self._left is not None and self._left <= 0) or remaining <= 0:
            self.close()
            raise StopAsyncIteration
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
        """Unsubscribe (idempotent)."""
        queue, self._queue = self._queue, None
        if queue is not None:
            self._drop(queue)

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
        """One turn of the conversation (see :meth:`AsyncThalovantClient.ask`)."""
        return await self.client.ask(
            text,
            lang=lang or self.lang,
            session_id=self.session_id,
            request_id=request_id,
            context=context,
            timeout=timeout,
        )

    async def send_utterance(self, text: str, *, context: Mapping[str, Any] | None = None) -> str:
        """Send a turn without waiting for the reply."""
        return await self.client.send_utterance(text, lang=self.lang, session_id=self.session_id, context=context)

    def forget(self) -> None:
        """Drop the carried conversation state of this session."""
        self.client.forget_conversation(self.session_id)

    async def __aenter__(self) -> AsyncConversation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.forget()


# ====================================================================== the sync twins


class SyncEventStream(SyncTwin[EventStream], Iterator[ThalovantEvent], twin_of=EventStream):
    """The iterator the sync ``listen`` returns."""

    def __init__(self, runner: LoopThread, stream: EventStream) -> None:
        self._runner = runner
        self._stream = stream

    def _target(self) -> tuple[LoopThread, EventStream]:
        return self._runner, self._stream

    def __iter__(self) -> SyncEventStream:
        return self

    def __next__(self) -> ThalovantEvent:
        try:
            return self._runner.run(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    close = on_loop(EventStream.close)
    aclose = blocking(EventStream.aclose)


class Conversation(SyncTwin[AsyncConversation], twin_of=AsyncConversation):
    """The sync conversation of the guide: ``with client.conversation() as convo:``."""

    def __init__(self, runner: LoopThread, conversation: AsyncConversation) -> None:
        self._runner = runner
        self._conversation = conversation

    def _target(self) -> tuple[LoopThread, AsyncConversation]:
        return self._runner, self._conversation

    lang = attribute[str]()
    session_id = attribute[str]()
    ask = blocking(AsyncConversation.ask)
    send_utterance = blocking(AsyncConversation.send_utterance)
    forget = on_loop(AsyncConversation.forget)

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.forget()


class ThalovantClient(SyncTwin[AsyncThalovantClient], _FromIdentity, twin_of=AsyncThalovantClient):
    """The synchronous client of the guide: an :class:`AsyncThalovantClient` on a private loop
    thread. Same arguments, same methods (generated from the async ones); handlers given to
    :meth:`on` run on that thread."""

    def __init__(
        self, identity: ThalovantIdentity, protocol: str | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        self._identity = identity
        self._protocol = protocol
        self._options = options
        select_protocol(identity, protocol)  # raise here, in the caller's thread
        self._runner: LoopThread | None = None
        self._client: AsyncThalovantClient | None = None
        self._target()

    def _target(self) -> tuple[LoopThread, AsyncThalovantClient]:
        """The loop thread and the async client (a fresh pair after :meth:`close`)."""
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

    @property
    def async_client(self) -> AsyncThalovantClient:
        """The asyncio client this twin drives (use it only on its own loop)."""
        return self._target()[1]

    identity = attribute[ThalovantIdentity]()
    protocol = attribute[str]()
    auto_reconnect = attribute[bool]()
    noise_store = attribute[NoiseStore]()
    connected = attribute[bool]()
    session_id = attribute["str | None"]()
    endpoint = attribute[str]()

    connection_info = on_loop(AsyncThalovantClient.connection_info)
    connect = blocking(AsyncThalovantClient.connect)
    wait_connected = blocking(AsyncThalovantClient.wait_connected)
    healthcheck = blocking(AsyncThalovantClient.healthcheck)
    doctor = blocking(AsyncThalovantClient.doctor)
    ask = blocking(AsyncThalovantClient.ask)
    emit = blocking(AsyncThalovantClient.emit)
    send_utterance = blocking(AsyncThalovantClient.send_utterance)
    send_action = blocking(AsyncThalovantClient.send_action)
    send_code = blocking(AsyncThalovantClient.send_code)
    wait_for_event = blocking(AsyncThalovantClient.wait_for_event)
    conversation = on_loop(AsyncThalovantClient.conversation, Conversation)
    forget_conversation = on_loop(AsyncThalovantClient.forget_conversation)
    listen = on_loop(AsyncThalovantClient.listen, SyncEventStream)
    on = on_loop(AsyncThalovantClient.on)
    on_binary = on_loop(AsyncThalovantClient.on_binary)
    query = blocking(AsyncThalovantClient.query)
    list_intents = blocking(AsyncThalovantClient.list_intents)
    describe_intent = blocking(AsyncThalovantClient.describe_intent)
    reply = blocking(AsyncThalovantClient.reply)
    propagate = blocking(AsyncThalovantClient.propagate)
    escalate = blocking(AsyncThalovantClient.escalate)
    broadcast = blocking(AsyncThalovantClient.broadcast)
    connect_with_info = blocking(AsyncThalovantClient.connect_with_info)
    disconnect = blocking(AsyncThalovantClient.disconnect)
    wait_closed = blocking(AsyncThalovantClient.wait_closed)

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


__all__ = [
    "DEFAULT_USERAGENT",
    "AsyncConversation",
    "AsyncThalovantClient",
    "ClientOptions",
    "Conversation",
    "EventStream",
    "SyncEventStream",
    "ThalovantClient",
    "ThalovantConnectionInfo",
    "select_protocol",
]
