"""The embedded MQTT broker: amqtt, in the server's own event loop, TLS only, ACL enforced.

:class:`EmbeddedBroker` runs one amqtt broker with a single TLS listener (by default on
127.0.0.1:8883), anonymous access off, and one plugin, :class:`BrokerAccessPlugin`, that asks an
:class:`~thalovant_server.mqtt.acl.MqttAccessControl` for every decision:

- CONNECT: the username must exist and the password match its hash; a last will is accepted only
  on a topic the user may publish to (else CONNACK 5, not authorised);
- SUBSCRIBE: each filter must be covered by the user's subscribe grants (else SUBACK 0x80);
- PUBLISH: a message on a topic the user may not publish to is acknowledged (MQTT 3.1.1 has no
  negative PUBACK) and dropped;
- delivery: a message reaches a subscriber only on topics that subscriber may read, at the lower
  of the publish's QoS and the subscription's (MQTT 3.1.1, 3.8.4), as Mosquitto delivers it.

Accounts change at run time with :meth:`EmbeddedBroker.add_account` and
:meth:`EmbeddedBroker.remove_account`; removing an account also drops its live connections.

Limits (:class:`~thalovant_server.limits.Limits`): the TLS handshake and the CONNECT packet must
each arrive within their timeouts; a packet whose declared length exceeds ``mqtt_max_packet`` is
never read (the connection is dropped at its header, so a 64 MB publish costs nothing); past
``mqtt_max_connections`` new connections are dropped at once; each subscriber has at most
``mqtt_max_inflight`` QoS 1 messages awaiting its PUBACK and a bounded queue behind them (more are
dropped, with one log line); a subscriber that does not acknowledge in time costs a debug line,
not a traceback.
asyncio sets TCP_NODELAY on every TCP transport it creates, so the broker's sockets have it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, BrokerConfig, ListenerConfig, ListenerType
from amqtt.errors import AMQTTError, BrokerError, PluginError, PluginLoadError
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from thalovant_server.limits import Limits
from thalovant_server.mqtt.acl import InvalidTopicError, MqttAccessControl, validate_topic_filter
from thalovant_server.mqtt.broker import DEFAULT_HOST, DEFAULT_PORT, BrokerAddress, BrokerStartError
from thalovant_server.mqtt.credentials import BrokerAccount

LISTENER = "default"
# How long the broker keeps the state of a disconnected non-clean session.
SESSION_EXPIRY_SECONDS = 600

log = logging.getLogger(__name__)


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


class PacketTooLarge(ConnectionError):
    """A packet declared a length above the broker's limit; its connection is dropped unread."""


class _LimitedReader(ReaderAdapter):  # type: ignore[misc]
    """amqtt's view of one connection's bytes, with the limits applied before anything is
    buffered: a read longer than ``max_packet`` (a packet's body is read in one call, after its
    fixed header) ends the connection, and the first packet (the CONNECT: the first read longer
    than one byte) must be complete within ``connect_timeout`` of the connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: Limits) -> None:
        self._reader = reader
        self._writer = writer
        self._max_packet = limits.mqtt_max_packet
        self._connect_deadline: float | None = asyncio.get_running_loop().time() + limits.mqtt_connect_timeout

    async def read(self, n: int = -1) -> bytes:
        if n > self._max_packet:
            self._writer.transport.abort()
            raise PacketTooLarge(f"a {n}-byte MQTT packet exceeds the {self._max_packet}-byte limit")
        deadline = self._connect_deadline
        if deadline is None:
            return await self._read(n)
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(remaining, 0)):
                data = await self._read(n)
        except TimeoutError:
            self._writer.transport.abort()
            raise
        if n > 1:
            self._connect_deadline = None
        return data

    async def _read(self, n: int) -> bytes:
        return await (self._reader.read(n) if n == -1 else self._reader.readexactly(n))

    def feed_eof(self) -> None:
        self._reader.feed_eof()


#: QoS 1/2 messages that may wait behind a subscriber's in-flight window before more are dropped
MAX_QUEUED_PER_SUBSCRIBER = 100


def _bound_inflight(handler: Any, inflight: int, queued: int = MAX_QUEUED_PER_SUBSCRIBER) -> None:
    """Bound what one subscriber's connection holds: at most ``inflight`` QoS 1/2 messages
    awaiting its acknowledgement and ``queued`` waiting behind them; more are dropped."""
    publish = handler.mqtt_publish
    window = asyncio.Semaphore(inflight)
    waiting = 0

    async def bounded(topic: str, data: bytes, qos: int | None = None, retain: bool | None = None, **kw: Any) -> Any:
        nonlocal waiting
        if not qos:
            return await publish(topic, data, qos, retain, **kw)
        if waiting >= queued:
            log.debug("an MQTT subscriber's queue is full; a message to it was dropped")
            return None
        waiting += 1
        try:
            await window.acquire()
        finally:
            waiting -= 1
        try:
            return await publish(topic, data, qos, retain, **kw)
        finally:
            window.release()

    handler.mqtt_publish = bounded


_PUBLISH_QOS: contextvars.ContextVar[int | None] = contextvars.ContextVar("thalovant_publish_qos", default=None)
"""The QoS of the PUBLISH a connection's task is handing to the broadcast queue (None: none)."""


class _Delivery(dict[str, Any]):
    """One entry of amqtt's broadcast queue that caps the delivery QoS at ``cap``.

    amqtt 0.12 reads a broadcast's QoS as ``broadcast.get("qos", subscription_qos)``, and it
    never records a client's PUBLISH QoS there, so every subscriber got its subscription's QoS:
    a QoS 0 publish went out at QoS 1, with a PUBACK round trip per message. This entry answers
    that lookup with ``min(cap, subscription_qos)``.
    """

    def __init__(self, cap: int, **fields: Any) -> None:
        super().__init__(**fields)
        self.cap = cap

    def get(self, key: str, default: Any = None) -> Any:
        if key == "qos" and "qos" not in self and isinstance(default, int):
            return min(self.cap, default)
        return super().get(key, default)


class _PubackTimeouts(logging.Filter):
    """amqtt logs a subscriber's missing PUBACK as a failed task with its traceback; this turns
    that into one debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, TimeoutError) and "PUBACK" in str(error):
            log.debug("an MQTT subscriber did not acknowledge a message in time")
            return False
        return True


class _QuietBroker(Broker):  # type: ignore[misc]
    """amqtt's broker with the server's limits and four corrections.

    - A client that resets its connection costs a debug line, not a traceback.
    - A message goes to each subscriber at the lower of its PUBLISH QoS (or a last will's QoS)
      and the subscription's QoS, as MQTT 3.1.1 requires; amqtt 0.12 used the subscription's.
    - Retained messages go only to a session that holds the subscription itself: amqtt 0.12
      replays, to every new connection, the retained messages matching *any* session's filters
      (the hub's ``thalovant/+/+/status`` would hand every client the others' presence).
    - The subscription table (``_subscriptions``: filter -> list of (session, QoS)) is copy on
      write: a subscription added or dropped makes a new table, and a table in use never
      changes. amqtt's delivery loop walks the table and waits on the ACL plugin for every
      subscriber; a SUBSCRIBE, or the session monitor dropping a closed session, that ran in
      such a wait changed the table under the walk, and the message was lost for a subscriber
      (the list shifted past it) or for every later filter ("dictionary changed size during
      iteration"). A client's successor on the same ``/out`` lost the hub's replies so.
    """

    limits = Limits()
    open_connections = 0
    refused_connections = 0
    _subscriptions: dict[str, list[tuple[Any, int]]]

    async def add_subscription(self, subscription: tuple[str, int], session: Any) -> int:
        """The granted QoS of one SUBSCRIBE filter, or 0x80 (malformed or not allowed)."""
        topic_filter, requested = subscription
        try:
            validate_topic_filter(topic_filter)
        except InvalidTopicError:
            return 0x80
        if not await self._topic_filtering(session, topic_filter, Action.SUBSCRIBE):
            return 0x80
        ceiling = self.config.get("max-qos", requested)
        qos = min(requested, ceiling) if isinstance(ceiling, int) else requested
        held = self._subscriptions.get(topic_filter, [])
        if all(other.client_id != session.client_id for other, _qos in held):
            self._subscriptions = {**self._subscriptions, topic_filter: [*held, (session, qos)]}
        return qos

    def _del_subscription(self, a_filter: str, session: Any) -> int:
        held = self._subscriptions.get(a_filter)
        if not held:
            return 0
        kept = _without(held, session.client_id)
        if kept is held:
            return 0
        table = dict(self._subscriptions)
        if kept:
            table[a_filter] = kept
        else:
            del table[a_filter]
        self._subscriptions = table
        return len(held) - len(kept)

    async def _del_all_subscriptions(self, session: Any) -> None:
        table: dict[str, list[tuple[Any, int]]] = {}
        for topic_filter, held in self._subscriptions.items():
            if kept := _without(held, session.client_id):
                table[topic_filter] = kept
        self._subscriptions = table

    async def _create_server_instance(
        self,
        listener_name: str,
        listener_type: ListenerType,
        address: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> asyncio.Server:
        if listener_type != ListenerType.TCP:
            raise BrokerError(f"the embedded broker serves TCP listeners only, not {listener_type}")
        return await asyncio.start_server(
            functools.partial(self.stream_connected, listener_name=listener_name),
            address,
            port,
            reuse_address=True,
            ssl=ssl_context,
            ssl_handshake_timeout=self.limits.tls_handshake_timeout if ssl_context is not None else None,
        )

    async def stream_connected(self, reader: Any, writer: Any, listener_name: str) -> None:
        if self.open_connections >= self.limits.mqtt_max_connections:
            self.refused_connections += 1
            if self.refused_connections % 1000 == 1:
                log.warning("MQTT connection limit (%d) reached: refusing", self.limits.mqtt_max_connections)
            writer.transport.abort()
            return
        self.open_connections += 1
        try:
            await self.external_connected(
                _LimitedReader(reader, writer, self.limits), StreamWriterAdapter(writer), listener_name
            )
        except PacketTooLarge as exc:
            log.info("MQTT connection dropped: %s", exc)
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            log.debug("MQTT connection ended abruptly: %s", type(exc).__name__)
        finally:
            self.open_connections -= 1

    async def _handle_message_delivery(self, client_session: Any, handler: Any, wait_deliver: Any) -> Any:
        # amqtt hands the PUBLISH to the broadcast queue from this call, in this task's context
        failed = wait_deliver.cancelled() or wait_deliver.exception() is not None
        message = None if failed else wait_deliver.result()
        token = _PUBLISH_QOS.set(getattr(message, "qos", None))
        try:
            return await super()._handle_message_delivery(client_session, handler, wait_deliver)
        finally:
            _PUBLISH_QOS.reset(token)

    async def _broadcast_message(
        self, session: Any, topic: str | None, data: Any, force_qos: int | None = None
    ) -> None:
        cap = force_qos if force_qos is not None else _PUBLISH_QOS.get()
        if cap is None:
            await super()._broadcast_message(session, topic, data)
            return
        await self._broadcast_queue.put(_Delivery(cap, session=session, topic=topic, data=data))

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int], session: Any) -> None:
        holders = self._subscriptions.get(subscription[0], ())
        if any(held is session or held.client_id == session.client_id for held, _qos in holders):
            await super()._publish_retained_messages_for_subscription(subscription, session)


def _without(held: list[tuple[Any, int]], client_id: str) -> list[tuple[Any, int]]:
    """``held`` (the same list) when no entry is ``client_id``'s, else a new list without it."""
    if all(other.client_id != client_id for other, _qos in held):
        return held
    return [entry for entry in held if entry[0].client_id != client_id]


class _NoStartupTraceback(logging.Filter):
    """Drops amqtt's own "Broker startup failed" traceback: :class:`BrokerStartError` says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Broker startup failed"


class _LiveConnections:
    """The authenticated connections, by session, with their protocol handlers.

    Kept apart from amqtt's session table, which a new CONNECT with the same client id
    overwrites before it is authenticated; this list still finds such a displaced connection.
    """

    def __init__(self) -> None:
        self.broker: Broker | None = None
        self._live: dict[int, tuple[Any, Any]] = {}

    def connected(self, client_id: str, session: Any) -> Any:
        """Record an authenticated connection; returns its protocol handler (None if gone)."""
        broker = self.broker
        if broker is None:
            return None
        entry = broker.sessions.get(client_id)
        if entry is None or entry[0] is not session or entry[1] is None:
            return None
        self._live[id(session)] = (session, entry[1])
        return entry[1]

    def disconnected(self, session: Any) -> None:
        self._live.pop(id(session), None)

    def of_user(self, username: str) -> list[tuple[Any, Any]]:
        return [(s, h) for s, h in self._live.values() if _text(getattr(s, "username", None)) == username]

    def usernames(self) -> set[str]:
        return {name for s, _ in self._live.values() if (name := _text(getattr(s, "username", None)))}

    def clear(self) -> None:
        self._live.clear()


class BrokerAccessPlugin(BaseAuthPlugin, BaseTopicPlugin):  # type: ignore[misc]
    """amqtt plugin: authentication and topic ACL, delegated to an :class:`MqttAccessControl`.

    amqtt builds the plugin from the broker configuration; :class:`EmbeddedBroker` then attaches
    the access control (:meth:`attach`). Until then every request is refused.
    """

    access: MqttAccessControl | None = None
    connections: _LiveConnections | None = None
    limits: Limits = Limits()

    def attach(self, access: MqttAccessControl, connections: _LiveConnections, limits: Limits) -> None:
        self.access = access
        self.connections = connections
        self.limits = limits

    async def on_broker_client_connected(self, *, client_id: str, client_session: Any) -> None:
        if self.connections is None or self.access is None:
            return
        handler = self.connections.connected(client_id, client_session)
        if handler is not None:
            _bound_inflight(handler, self.limits.mqtt_max_inflight)
        username = _text(getattr(client_session, "username", None))
        if handler is not None and (username is None or username not in self.access):
            # The account was removed between this CONNECT's check and now.
            self.connections.disconnected(client_session)
            with contextlib.suppress(AMQTTError, OSError):
                await handler.handle_connection_closed()

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Any) -> None:
        if self.connections is not None:
            self.connections.disconnected(client_session)

    async def authenticate(self, *, session: Any) -> bool:
        access = self.access
        if access is None:
            return False
        username = _text(getattr(session, "username", None))
        password = _text(getattr(session, "password", None))
        if not access.authenticate(username, password):
            log.info("MQTT login refused for user %r", username)
            return False
        if getattr(session, "will_flag", False):
            will_topic = _text(getattr(session, "will_topic", None))
            if will_topic is None or not access.allows_publish(username, will_topic):
                log.info("MQTT login refused for user %r: last will on a topic it may not publish to", username)
                return False
        return True

    async def topic_filtering(self, *, session: Any = None, topic: str | None = None, action: Any = None) -> bool:
        access = self.access
        if access is None or session is None or not isinstance(topic, str):
            return False
        username = _text(getattr(session, "username", None))
        if action == Action.PUBLISH:
            return access.allows_publish(username, topic)
        if action == Action.SUBSCRIBE:
            return access.allows_subscribe(username, topic)
        if action == Action.RECEIVE:
            return access.allows_receive(username, topic)
        return False


class EmbeddedBroker:
    """An amqtt broker in the running event loop, with per-account credentials and topic ACLs.

    ``port=0`` picks a free port (read it from :attr:`address` after :meth:`start`). The broker
    holds the accounts in :attr:`access`; seed it with ``accounts`` or the methods below.
    """

    def __init__(
        self,
        *,
        cert_file: str | Path,
        key_file: str | Path,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        accounts: Iterable[BrokerAccount] = (),
        limits: Limits | None = None,
    ) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self.access = MqttAccessControl(accounts)
        self._broker: Broker | None = None
        self._address: BrokerAddress | None = None
        self._connections = _LiveConnections()

    # -- life cycle ---------------------------------------------------------------------------

    def _config(self) -> BrokerConfig:
        listener = ListenerConfig(
            type=ListenerType.TCP,
            bind=f"{self.host}:{self.port}",
            ssl=True,
            certfile=self.cert_file,
            keyfile=self.key_file,
        )
        return BrokerConfig(
            listeners={LISTENER: listener},
            plugins={f"{BrokerAccessPlugin.__module__}.{BrokerAccessPlugin.__qualname__}": {}},
            session_expiry_interval=SESSION_EXPIRY_SECONDS,
        )

    async def start(self) -> BrokerAddress:
        """Open the TLS listener; returns the address it is bound to.

        Raises :class:`BrokerStartError` when the certificate files cannot be used or the port
        cannot be bound.
        """
        if self._broker is not None:
            raise BrokerStartError("the embedded broker is already running")
        try:
            broker_class = type("LimitedBroker", (_QuietBroker,), {"limits": self.limits})
            broker = broker_class(self._config())
        except (OSError, ValueError, AMQTTError, BrokerError, PluginError, PluginLoadError) as exc:
            raise BrokerStartError(f"cannot configure the embedded MQTT broker: {exc}") from exc
        plugins = [p for p in broker.plugins_manager.plugins if isinstance(p, BrokerAccessPlugin)]
        if len(plugins) != 1:
            raise BrokerStartError("the embedded MQTT broker did not load its access plugin")
        self._connections.broker = broker
        plugins[0].attach(self.access, self._connections, self.limits)
        broker.logger.addFilter(_PubackTimeouts())
        quiet = _NoStartupTraceback()
        broker.logger.addFilter(quiet)
        try:
            await broker.start()
        except (OSError, AMQTTError, BrokerError) as exc:
            raise BrokerStartError(f"cannot start the embedded MQTT broker on {self.host}:{self.port}: {exc}") from exc
        finally:
            broker.logger.removeFilter(quiet)
        self._broker = broker
        self._address = BrokerAddress(self.host, self._bound_port(broker))
        log.info("embedded MQTT broker listening on %s", self._address.endpoint)
        return self._address

    @staticmethod
    def _bound_port(broker: Broker) -> int:
        server = broker._servers.get(LISTENER)
        sockets = getattr(getattr(server, "instance", None), "sockets", None) or ()
        for sock in sockets:
            return int(sock.getsockname()[1])
        raise BrokerStartError("the embedded MQTT broker has no listening socket")

    async def stop(self) -> None:
        """Close every connection and the listener. Safe to call twice."""
        broker, self._broker = self._broker, None
        self._address = None
        if broker is not None:
            with contextlib.suppress(AMQTTError, BrokerError):
                await broker.shutdown()
        self._connections.clear()
        self._connections.broker = None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._broker is not None

    @property
    def address(self) -> BrokerAddress:
        if self._address is None:
            raise RuntimeError("the embedded MQTT broker is not running")
        return self._address

    # -- accounts -----------------------------------------------------------------------------

    async def add_account(self, account: BrokerAccount) -> None:
        """Add or replace an account; it can log in at once.

        Replacing an account does not drop its live connections; a changed password or changed
        grants apply to the next CONNECT, SUBSCRIBE and PUBLISH.
        """
        self.access.add(account)

    async def remove_account(self, username: str) -> bool:
        """Remove an account and drop its live connections. Returns whether it existed."""
        existed = self.access.remove(username) is not None
        await self.disconnect_user(username)
        return existed

    async def replace_accounts(self, accounts: Iterable[BrokerAccount]) -> None:
        """Make ``accounts`` the complete set; users that are gone are disconnected."""
        before = {account.username for account in self.access}
        self.access.replace_all(accounts)
        for username in before - {account.username for account in self.access}:
            await self.disconnect_user(username)

    def connected_users(self) -> set[str]:
        """Usernames with a live, authenticated connection."""
        return self._connections.usernames()

    async def disconnect_user(self, username: str) -> int:
        """Close every live connection of ``username``; returns how many were closed.

        The broker then handles each as an abnormal disconnection (a last will is published).
        """
        closed = 0
        for session, handler in self._connections.of_user(username):
            self._connections.disconnected(session)
            with contextlib.suppress(AMQTTError, OSError):
                await handler.handle_connection_closed()
            closed += 1
        return closed
