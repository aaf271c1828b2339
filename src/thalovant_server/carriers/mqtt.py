"""The hub side of the MQTT carrier (spec 4.3): I/O only, the protocol is the engine's.

The hub holds one broker connection (aiomqtt over paho, TLS, TCP_NODELAY) as its service user
and subscribes, at QoS 0 (:data:`QOS`), to every client's ``thalovant/<hub-id>/<client-id>/in``
and ``.../status``. A client is named by its topic prefix only (the broker ACL lets a client
publish under its own prefix alone; the access key never travels over MQTT). Per prefix:

1. a cleartext HELLO (a UTF-8 JSON object with ``msg_type`` ``hello``) on ``/in`` starts a
   fresh negotiation: any older session of that prefix ends; the hub looks the client up once
   (unknown or revoked client, or a hub without ``mqtt``: silence) and publishes its HELLO,
   then its offer, as two JSON messages on ``<prefix>/out``;
2. messages 1 and 3 arrive as JSON text, message 2 leaves as JSON text; an unreadable KK
   message 1 is answered with a non-authenticating message 2 (the engine's ``kk_decoy``), so
   the client retries with XX at once; every other abort (wrong password, client key that
   contradicts the pin, malformed input, no progress within :data:`NEGOTIATION_TIMEOUT`)
   means silence and the prefix's state is dropped; a completed XX pins the client key;
3. the client's encrypted HELLO arrives as raw bytes; the session is registered with the
   runtime; after that every publish, both ways, is one raw Noise transport message;
4. ``offline`` on ``<prefix>/status`` ends the established session for the runtime (it is
   unregistered and gets no pushes), but its Noise state is kept, dormant, for
   :data:`DORMANT_TTL`: the broker publishes a connection's last will only once it notices the
   connection is gone, which after a half-open drop is up to 1.5 keepalives later, when the
   client may be on a new connection with a new session already. A message that opens under the
   dormant session's keys (the next transport message of that very session: nobody else can seal
   it) brings the session back and is answered; a new HELLO, or the TTL, forgets it.

Everything the hub publishes goes to ``<prefix>/out`` with QoS 0 (:data:`OUT_QOS`), unretained, in
seal order. Messages of one prefix are handled in arrival order by a worker task of that
prefix (started when something is queued, gone when the queue is empty), so a slow or
malformed prefix never delays or breaks another. Retained deliveries (stale replays made at
subscription time) are ignored. If the broker connection drops, every session on it ends
and the carrier reconnects with a capped backoff.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
import socket
import ssl
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from thalovant.protocol.errors import NegotiationError, ProtocolError
from thalovant.protocol.negotiation import HubNegotiation
from thalovant_server.carriers.handshake import link_for, pin_when_complete
from thalovant_server.hub.directory import ClientCredentials
from thalovant_server.hub.link import HubLink, Outbound
from thalovant_server.hub.runtime import HubHost, HubRuntime
from thalovant_server.mqtt.broker import BrokerAddress
from thalovant_server.mqtt.credentials import TOPIC_ROOT, MqttCredentials

__all__ = [
    "NEGOTIATION_TIMEOUT",
    "BrokerRefusedError",
    "BrokerUnreachableError",
    "MqttCarrierError",
    "MqttHubCarrier",
    "MqttSession",
    "parse_topic",
]

log = logging.getLogger(__name__)

QOS = 0
"""QoS of the hub's subscriptions to every ``/in`` and ``/status``.

One connection carries every client's messages to the hub, and both brokers bound what one
subscriber may have unacknowledged at QoS 1 (``mqtt_max_inflight`` plus a queue of 100): at QoS 1
Mosquitto dropped a burst beyond that bound (2,000 publishes from four clients at once: 59 and 75
reached the hub in two runs; the embedded broker delivered all of them). At QoS 0 the broker
writes each message to the hub's socket as it comes, with no PUBACK per message, and nothing is
lost while the connection lives; when it drops every session ends anyway. A client's QoS 1
publish reaches the hub at QoS 0 (the lower of the two)."""

OUT_QOS = 0
"""QoS of the hub's publishes to ``/out``. At QoS 1 the client would acknowledge every reply,
and a client without TCP_NODELAY (paho's default) then holds its next publish behind that
unacknowledged PUBACK until the broker's delayed ACK, about 40 ms per ask. QoS 0 loses nothing
a client could use: a message can only be lost with its connection, and a new connection means
a new Noise session."""

SUBSCRIPTIONS = (f"{TOPIC_ROOT}/+/+/in", f"{TOPIC_ROOT}/+/+/status")

NEGOTIATION_TIMEOUT = 30.0
"""Seconds from a cleartext HELLO to the encrypted HELLO before the prefix's state is dropped."""

DORMANT_TTL = 600.0
"""Seconds a session ended by ``offline`` stays ready to come back (step 4 above)."""

MAX_NEGOTIATION_TEXT = 262144
"""Largest payload accepted on ``/in`` (a hex Noise message is at most 131070 chars)."""

MAX_QUEUED_PER_PREFIX = 256
"""Messages waiting for one prefix's worker; more ends that prefix's session."""

MAX_PREFIXES = 100_000
"""Prefixes with live state (sessions plus negotiations) before new HELLOs are ignored."""

MAX_QUEUED_INCOMING = 100_000
"""Messages the broker connection buffers before the hub handles them (then it discards)."""

SEND_TIMEOUT = 8.0
"""Seconds to wait for the broker's PUBACK (or SUBACK, CONNACK)."""

KEEPALIVE = 30
RECONNECT_FIRST_DELAY = 0.5
RECONNECT_MAX_DELAY = 30.0

OFFLINE = b"offline"


class MqttCarrierError(RuntimeError):
    """The hub could not connect to, or subscribe on, the MQTT broker."""


class BrokerUnreachableError(MqttCarrierError):
    """No MQTT connection to the broker (network, TLS or timeout)."""


class BrokerRefusedError(MqttCarrierError):
    """The broker refused the hub's login (CONNACK) or its subscriptions (SUBACK)."""


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """``(hub_id, client_id, kind)`` of ``thalovant/<hub-id>/<client-id>/{in,status}``, else None."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[3] not in ("in", "status"):
        return None
    if not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2], parts[3]


def is_cleartext_hello(payload: bytes) -> bool:
    """Whether ``payload`` is a UTF-8 JSON object with ``msg_type`` ``hello`` (spec 4.3 step 3)."""
    if len(payload) > MAX_NEGOTIATION_TEXT or b'"hello"' not in payload or payload.lstrip()[:1] != b"{":
        return False
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("msg_type") == "hello"


def _negotiation_text(payload: bytes) -> str:
    """A negotiation message as text; raises :class:`NegotiationError` for binary bytes."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise NegotiationError("binary message before the handshake completed") from None


class _Silent(Exception):
    """The prefix gets no answer (unknown client, hub without MQTT, ...): drop its state."""


class _Prefix:
    """What the hub holds for one client prefix: its queue, negotiation or session."""

    __slots__ = (
        "client_id",
        "creds",
        "dormant",
        "generation",
        "host",
        "hub_id",
        "inbox",
        "negotiation",
        "out",
        "prefix",
        "session",
        "task",
        "timer",
    )

    def __init__(self, hub_id: str, client_id: str) -> None:
        self.hub_id = hub_id
        self.client_id = client_id
        self.prefix = f"{TOPIC_ROOT}/{hub_id}/{client_id}"
        self.out = f"{self.prefix}/out"
        self.inbox: collections.deque[tuple[str, Any]] = collections.deque()
        self.task: asyncio.Task[None] | None = None
        self.negotiation: HubNegotiation | None = None
        self.host: HubHost | None = None
        self.creds: ClientCredentials | None = None
        self.session: MqttSession | None = None
        self.dormant: MqttSession | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.generation = 0

    @property
    def idle(self) -> bool:
        return (
            self.negotiation is None
            and self.session is None
            and self.dormant is None
            and not self.inbox
            and self.task is None
        )


class MqttSession:
    """An authenticated MQTT session (the runtime's ``LiveSession``): one client prefix.

    Inbound transport messages are opened and answered, and hub-initiated messages sealed,
    under one lock, and published in that order. After :meth:`terminate` (or any failure)
    the session is silent.
    """

    __slots__ = ("_carrier", "_lock", "_state", "closed", "link")

    carrier = "mqtt"

    def __init__(self, carrier: MqttHubCarrier, state: _Prefix, link: HubLink) -> None:
        self._carrier = carrier
        self._state = state
        self._lock = asyncio.Lock()
        self.link = link
        self.closed = False

    @property
    def prefix(self) -> str:
        return self._state.prefix

    async def answer(self, message: bytes) -> None:
        """Open one inbound transport message and publish the replies it produces.

        Raises :class:`~thalovant.protocol.errors.ProtocolError` for a message that does not
        decrypt or parse (the caller ends the session), ``aiomqtt.MqttError`` if publishing fails.
        """
        async with self._lock:
            if self.closed:
                return
            replies = self.link.receive(message)
            if replies:
                await self._carrier.publish(self._state.out, replies)

    async def deliver(self, messages: Sequence[Outbound]) -> None:
        """Seal and publish hub-initiated bus messages; never raises."""
        if self.closed:
            return
        try:
            async with self._lock:
                if not self.closed:
                    await self._carrier.publish(self._state.out, self.link.seal_bus(messages))
        except Exception as exc:
            log.debug("push to MQTT client %s failed: %s", self.link.client_id, type(exc).__name__)

    async def terminate(self, reason: str) -> None:
        """End the session from the hub side: nothing is published for it afterwards."""
        if self.closed:
            return
        self.closed = True
        log.info("ending MQTT session of client %s: %s", self.link.client_id, reason)
        self._carrier.end_session(self)


class MqttHubCarrier:
    """The hub's MQTT carrier: one broker connection serving every client prefix.

    ``login`` is the hub service user (:func:`~thalovant_server.mqtt.issue_hub_credentials`),
    ``ca_file`` the CA that signed the broker's certificate; a negotiation that does not reach
    the encrypted HELLO within ``negotiation_timeout`` seconds is dropped. :meth:`start` connects and
    subscribes (raising :class:`BrokerRefusedError` or :class:`BrokerUnreachableError`), then
    serves in a background task until :meth:`stop`.
    """

    def __init__(
        self,
        runtime: HubRuntime,
        *,
        address: BrokerAddress,
        login: MqttCredentials,
        ca_file: Path,
        negotiation_timeout: float = NEGOTIATION_TIMEOUT,
        dormant_ttl: float = DORMANT_TTL,
    ) -> None:
        self.runtime = runtime
        self.negotiation_timeout = negotiation_timeout
        self.dormant_ttl = dormant_ttl
        self.address = address
        self._login = login
        self._ca_file = Path(ca_file)
        self._tls: ssl.SSLContext | None = None
        self._client: aiomqtt.Client | None = None
        self._exit: contextlib.AsyncExitStack | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._prefixes: dict[str, _Prefix] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self.connections = 0
        """Successful broker connections so far (1 after :meth:`start`, more after reconnects)."""
        self.received = 0
        """Messages the broker delivered to the hub so far (diagnostics and tests)."""
        self.connected = asyncio.Event()
        """Set while subscribed on a live broker connection."""

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect over TLS, subscribe to every ``/in`` and ``/status`` (QoS 0), start serving."""
        if self._runner is not None:
            raise MqttCarrierError("the MQTT carrier is already running")
        self._stopping.clear()
        await self._connect()
        self._runner = asyncio.get_running_loop().create_task(self._serve(), name="thalovant-mqtt-hub")

    async def stop(self) -> None:
        """End every session, disconnect from the broker and stop serving. Idempotent."""
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        self._drop_all("hub carrier stopping")
        await self._disconnect()
        for worker in list(self._workers):
            worker.cancel()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)

    async def __aenter__(self) -> MqttHubCarrier:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def prefix_count(self) -> int:
        """Prefixes with live state (established sessions, negotiations, queued messages)."""
        return len(self._prefixes)

    def socket_nodelay(self) -> bool:
        """Whether TCP_NODELAY is set on the broker socket (diagnostics and tests)."""
        client = self._client
        paho = getattr(client, "_client", None)  # aiomqtt keeps its paho client private
        sock = paho.socket() if paho is not None else None
        if not isinstance(sock, socket.socket):
            return False
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            try:
                self._tls = ssl.create_default_context(cafile=str(self._ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise BrokerUnreachableError(f"cannot load the broker CA file: {exc}") from None
        return self._tls

    async def _connect(self) -> None:
        client = aiomqtt.Client(
            self.address.host,
            self.address.port,
            username=self._login.username,
            password=self._login.password,
            identifier=f"thalovant-hub-{secrets.token_hex(8)}",
            clean_session=True,
            keepalive=KEEPALIVE,
            timeout=SEND_TIMEOUT,
            tls_context=self._tls_context(),
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            max_inflight_messages=1000,
            max_queued_incoming_messages=MAX_QUEUED_INCOMING,
        )
        client.pending_calls_threshold = 1_000_000  # many sessions publish at once: no warnings
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(client)
        except MqttConnectError as exc:
            raise BrokerRefusedError(f"the MQTT broker refused the hub's login: {exc}") from None
        except aiomqtt.MqttError as exc:
            raise BrokerUnreachableError(
                f"cannot connect to the MQTT broker at {self.address.endpoint}: {exc}"
            ) from None
        try:
            codes = await client.subscribe([(topic, QOS) for topic in SUBSCRIPTIONS])
        except aiomqtt.MqttError as exc:
            await _close_quietly(stack)
            raise BrokerUnreachableError(f"the MQTT broker did not confirm the subscriptions: {exc}") from None
        if len(codes) != len(SUBSCRIPTIONS) or any(_refused(code) for code in codes):
            await _close_quietly(stack)
            raise BrokerRefusedError("the MQTT broker refused the hub's subscriptions (check the hub user's ACL)")
        self._client, self._exit = client, stack
        self.connections += 1
        self.connected.set()
        log.info("MQTT hub carrier subscribed on %s", self.address.endpoint)

    async def _disconnect(self) -> None:
        stack, self._exit = self._exit, None
        self._client = None
        self.connected.clear()
        if stack is not None:
            await _close_quietly(stack)

    async def _serve(self) -> None:
        """Handle messages until stopped; reconnect (sessions end) when the connection drops."""
        while not self._stopping.is_set():
            client = self._client
            if client is not None:
                try:
                    async for message in client.messages:
                        self.received += 1
                        try:
                            self._dispatch(message)
                        except Exception:  # a bug here must not stop the other prefixes
                            log.exception("MQTT message on %s could not be dispatched", message.topic.value)
                except aiomqtt.MqttError as exc:
                    log.warning("MQTT broker connection lost: %s", exc)
                self._drop_all("broker connection lost")
                await self._disconnect()
            await self._reconnect()

    async def _reconnect(self) -> None:
        delay = RECONNECT_FIRST_DELAY
        while not self._stopping.is_set():
            try:
                await self._connect()
                return
            except MqttCarrierError as exc:
                log.warning("MQTT broker reconnect failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    # -- publishing -------------------------------------------------------------------------

    async def publish(self, topic: str, payloads: Iterable[bytes]) -> None:
        """Publish ``payloads`` to ``topic`` in order (:data:`OUT_QOS`, never retained).

        The publishes are handed to paho in order before any of them is awaited. Raises
        ``aiomqtt.MqttError`` when not connected.
        """
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected to the MQTT broker")
        pending = [client.publish(topic, payload, qos=OUT_QOS, retain=False) for payload in payloads]
        if len(pending) == 1:
            await pending[0]
        elif pending:
            # gather starts the coroutines in order; each hands its message to paho first thing
            await asyncio.gather(*pending)

    # -- dispatch (synchronous, in the receive loop) -------------------------------------------

    def _dispatch(self, message: aiomqtt.Message) -> None:
        parsed = parse_topic(message.topic.value)
        payload = message.payload
        if parsed is None or not isinstance(payload, bytes | bytearray):
            return
        hub_id, client_id, kind = parsed
        prefix = f"{TOPIC_ROOT}/{hub_id}/{client_id}"
        state = self._prefixes.get(prefix)
        data = bytes(payload)
        if kind == "status":
            # a retained ``offline`` replayed at subscription finds no session: harmless
            if state is not None and data.strip() == OFFLINE:
                self._enqueue(state, ("offline", None))
            return
        if message.retain:
            return  # a retained ``/in`` message replayed at subscription: stale by definition
        if len(data) > MAX_NEGOTIATION_TEXT:
            if state is not None:
                self._enqueue(state, ("end", "oversized message"))
            return
        if is_cleartext_hello(data):
            if state is None:
                if len(self._prefixes) >= MAX_PREFIXES:
                    log.warning("too many MQTT prefixes with state; HELLO on %s ignored", prefix)
                    return
                state = self._prefixes[prefix] = _Prefix(hub_id, client_id)
            self._enqueue(state, ("hello", None))
        elif state is not None:
            self._enqueue(state, ("in", data))

    def _enqueue(self, state: _Prefix, event: tuple[str, Any]) -> None:
        if event[0] == "hello":
            state.inbox.clear()  # a HELLO restarts the prefix: whatever was queued is moot
        elif len(state.inbox) >= MAX_QUEUED_PER_PREFIX:
            log.info("MQTT prefix %s: more than %d queued messages; ending it", state.prefix, MAX_QUEUED_PER_PREFIX)
            state.inbox.clear()
            event = ("end", "inbound queue overflow")
        state.inbox.append(event)
        if state.task is None:
            task = asyncio.get_running_loop().create_task(self._drain(state))
            state.task = task
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    def _expire(self, state: _Prefix, generation: int) -> None:
        state.timer = None
        if self._prefixes.get(state.prefix) is state:
            self._enqueue(state, ("expire", generation))

    def end_session(self, session: MqttSession) -> None:
        """Drop ``session`` (already marked closed) from its prefix and the runtime."""
        self.runtime.unregister(session)
        state = self._prefixes.get(session.prefix)
        if state is not None and state.session is session:
            self._enqueue(state, ("end", "terminated"))

    # -- one prefix's worker ----------------------------------------------------------------

    async def _drain(self, state: _Prefix) -> None:
        try:
            while state.inbox:
                kind, data = state.inbox.popleft()
                try:
                    await self._handle(state, kind, data)
                except _Silent as exc:
                    log.info("MQTT client %s gets no answer: %s", state.prefix, exc)
                    self.runtime.count_refusal("unknown")
                    self._reset(state)
                except ProtocolError as exc:
                    log.info("MQTT negotiation or session of %s aborted: %s", state.prefix, type(exc).__name__)
                    self.runtime.count_refusal("aborted")
                    self._reset(state)
                except aiomqtt.MqttError as exc:
                    log.info("publishing to %s failed: %s", state.prefix, type(exc).__name__)
                    self._reset(state)
                except Exception:
                    log.exception("MQTT handling for %s failed", state.prefix)
                    self._reset(state)
        finally:
            state.task = None
            if state.idle and self._prefixes.get(state.prefix) is state:
                del self._prefixes[state.prefix]

    async def _handle(self, state: _Prefix, kind: str, data: Any) -> None:
        if kind == "hello":
            await self._start_negotiation(state)
        elif kind == "in":
            await self._inbound(state, data)
        elif kind == "offline":
            if state.session is not None:  # a negotiation in progress belongs to a newer attempt
                self._doze(state)
        elif kind == "expire":
            if data != state.generation:
                return
            if state.negotiation is not None:
                log.info("MQTT negotiation of %s timed out", state.prefix)
                self.runtime.count_refusal("timeout")
                self._reset(state)
            elif state.dormant is not None:
                self._reset(state, "offline")
        elif kind == "end":
            self._reset(state, str(data))

    def _reset(self, state: _Prefix, reason: str = "aborted") -> None:
        """Forget the prefix's negotiation and session, live or dormant (a live one is
        unregistered)."""
        session, state.session = state.session, None
        if session is not None:
            session.closed = True
            self.runtime.unregister(session)
            log.info("MQTT session of %s ended: %s", state.prefix, reason)
        state.dormant = None
        state.negotiation = None
        state.host = state.creds = None
        _disarm(state)

    def _doze(self, state: _Prefix) -> None:
        """``offline``: end the live session for the runtime, keep its keys for
        :attr:`dormant_ttl` (module docstring, step 4)."""
        session = state.session
        self._reset(state, "client offline")
        state.dormant = session
        state.generation += 1
        state.timer = asyncio.get_running_loop().call_later(self.dormant_ttl, self._expire, state, state.generation)

    def _wake(self, state: _Prefix) -> MqttSession:
        """The dormant session, registered again, for a transport message on its prefix. The
        caller answers that message with it: one that does not open under the session's keys
        raises there and ends the session, as it would a live one."""
        session, state.dormant = state.dormant, None
        assert session is not None
        _disarm(state)
        if not self.runtime.register(session):
            raise _Silent("client revoked or hub reloaded while its session was dormant")
        session.closed = False
        state.session = session
        log.info("MQTT session of %s resumed: a transport message after its offline", state.prefix)
        return session

    def _drop_all(self, reason: str) -> None:
        for state in list(self._prefixes.values()):
            state.inbox.clear()
            self._reset(state, reason)
        self._prefixes.clear()

    async def _start_negotiation(self, state: _Prefix) -> None:
        self._reset(state, "new HELLO")
        state.generation += 1
        host = await self.runtime.host(state.hub_id)
        creds = await self.runtime.credentials_by_id(state.hub_id, state.client_id) if host is not None else None
        if self._prefixes.get(state.prefix) is not state:
            return  # dropped meanwhile (broker connection lost, carrier stopping)
        if host is None or creds is None:
            raise _Silent("unknown hub or client")
        if not host.keys.serves("mqtt"):
            raise _Silent("the hub does not serve MQTT")
        if state.inbox and state.inbox[0][0] == "hello":
            return  # a newer HELLO is already queued: answer that one only
        negotiation = HubNegotiation(
            node_id=host.keys.node_id,
            static=host.keys.static,
            psk=creds.psk,
            pinned_client_key=creds.pinned_key,
            kk_decoy=True,
        )
        state.host, state.creds, state.negotiation = host, creds, negotiation
        state.timer = asyncio.get_running_loop().call_later(
            self.negotiation_timeout, self._expire, state, state.generation
        )
        await self.publish(state.out, [text.encode("utf-8") for text in negotiation.opening()])

    async def _inbound(self, state: _Prefix, data: bytes) -> None:
        session = state.session
        if session is None and state.dormant is not None:
            session = self._wake(state)
        if session is not None:
            await session.answer(data)
            return
        negotiation, creds, host = state.negotiation, state.creds, state.host
        if negotiation is None or creds is None or host is None:
            return  # no HELLO yet, or the attempt was dropped: silence
        if not negotiation.complete:
            replies = negotiation.receive_text(_negotiation_text(data))
            if replies:
                await self.publish(state.out, [reply.encode("utf-8") for reply in replies])
            if negotiation.decoy_sent:
                log.info("unreadable KK message 1 on %s: decoy sent, expecting an XX retry", state.prefix)
                self.runtime.count_refusal("kk-decoy")
                self._reset(state)
                return
            await pin_when_complete(self.runtime, creds, negotiation)
            return
        hello = negotiation.receive_binary(data)
        live = MqttSession(self, state, link_for(negotiation, hello, creds, host, carrier="mqtt"))
        self._reset(state, "negotiation complete")
        if not self.runtime.register(live):
            raise _Silent("client revoked or hub reloaded during the negotiation")
        state.session = live
        log.info("MQTT session open: hub=%s client=%s pattern=%s", state.hub_id, creds.client_id, live.link.pattern)


def _disarm(state: _Prefix) -> None:
    """Cancel the prefix's pending expiry (of a negotiation or of dormant keys), if any."""
    if state.timer is not None:
        state.timer.cancel()
        state.timer = None


def _refused(code: Any) -> bool:
    """Whether a SUBACK reason code is a failure (0x80 and up)."""
    if getattr(code, "is_failure", False):
        return True
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80


async def _close_quietly(stack: contextlib.AsyncExitStack) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(stack.aclose(), SEND_TIMEOUT)
