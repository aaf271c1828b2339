"""The MQTT carrier (spec 4.3): the negotiation and Noise messages as MQTT publishes.

- paho-mqtt 2.x (the ``mqtt`` extra), imported lazily; MQTT 3.1.1, clean session, keepalive
  60 s, no automatic reconnect, client id ``thalovant-<32 hex>`` (new on every connect);
- TLS is mandatory (the identity's ``tls`` flag or an ``mqtts``/``ssl`` scheme), verified against
  ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or ``SSL_CERT_FILE`` (the first set), else the default
  trust store; the port defaults to 8883; TCP_NODELAY on the socket;
- topics ``<prefix>/in`` (client to hub), ``<prefix>/out`` (hub to client) and
  ``<prefix>/status`` (presence: last will ``offline``, ``online`` once authenticated, both QoS 1
  and retained);
- opening is CONNECT (wait for CONNACK), SUBSCRIBE ``/out`` at the identity's QoS (wait for
  SUBACK), then the cleartext HELLO published on ``/in`` (the same object as the encrypted HELLO
  of spec 3.10; see :meth:`MQTTCarrier.bind_session`);
- negotiation JSON goes as UTF-8 text, Noise transport messages as raw bytes, one per publish;
  every publish to ``/in`` uses the identity's QoS, no retain, and is awaited (PUBACK at QoS 1).

paho runs on the asyncio loop itself: the blocking TCP + TLS connect happens in a worker thread,
then the socket is watched with ``add_reader``/``add_writer`` and paho's ``loop_read``,
``loop_write`` and ``loop_misc`` run on the loop. Publishes are written straight from the loop
(no thread hop), which keeps a round trip to a local broker well under a millisecond.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import json
import secrets
import socket
import ssl
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from thalovant.carriers.base import Carrier, CarrierClosed, CarrierOpenError, set_nodelay
from thalovant.errors import ThalovantUnsupportedProtocolError
from thalovant.trust import client_ssl_context

if TYPE_CHECKING:
    from paho.mqtt.client import Client, MQTTMessage

    from thalovant.identity import MqttBrokerCredentials

DEFAULT_TLS_PORT = 8883
KEEPALIVE = 60
SEND_TIMEOUT = 8.0
CLOSE_TIMEOUT = 2.0
MAX_INBOUND = 256
MISC_INTERVAL = 1.0
SCHEMES = ("mqtt", "mqtts", "tcp", "ssl")
TLS_SCHEMES = ("mqtts", "ssl")
ONLINE = b"online"
OFFLINE = b"offline"
INSTALL_HINT = "pip install 'thalovant-selfhosted[mqtt]'"

_connect_pool: concurrent.futures.ThreadPoolExecutor | None = None
_connect_pool_lock = threading.Lock()


def _connect_executor() -> concurrent.futures.ThreadPoolExecutor:
    global _connect_pool
    with _connect_pool_lock:
        if _connect_pool is None:
            _connect_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="thalovant-mqtt-connect"
            )
        return _connect_pool


def load_paho() -> ModuleType:
    """``paho.mqtt.client`` (2.x), or :class:`ThalovantUnsupportedProtocolError` with the
    install hint when the optional dependency is missing or too old."""
    try:
        import paho.mqtt.client as paho_client
    except ImportError:
        raise ThalovantUnsupportedProtocolError(f"The MQTT carrier needs paho-mqtt 2: {INSTALL_HINT}") from None
    if not hasattr(paho_client, "CallbackAPIVersion"):
        raise ThalovantUnsupportedProtocolError(
            f"The MQTT carrier needs paho-mqtt 2 (an older one is installed): {INSTALL_HINT}"
        )
    return paho_client


def new_mqtt_session_id() -> str:
    """A connection SID for MQTT: ``thalovant-python-mqtt-<32 hex>``."""
    return f"thalovant-python-mqtt-{secrets.token_hex(16)}"


def hello_text(session_id: str, site_id: str) -> str:
    """The client HELLO of spec 3.10 as compact JSON (sent in cleartext on MQTT)."""
    envelope: dict[str, Any] = {
        "msg_type": "hello",
        "payload": {"pubkey": "", "session": {"session_id": session_id}, "site_id": site_id},
        "metadata": {},
        "route": [],
        "node": None,
        "target_site_id": None,
        "target_pubkey": None,
        "source_peer": None,
    }
    return json.dumps(envelope, separators=(",", ":"))


@dataclass(frozen=True)
class MqttTopics:
    """The three topics of one client."""

    inbound: str  # client to hub: <prefix>/in
    outbound: str  # hub to client: <prefix>/out
    status: str  # presence: <prefix>/status


def topics_for_prefix(prefix: str | None) -> MqttTopics:
    """The topics of ``prefix`` (trimmed of whitespace and ``/``); refuses an empty prefix or one
    with ``#``, ``+`` or control characters."""
    cleaned = (prefix or "").strip().strip("/").strip()
    if not cleaned:
        raise ThalovantUnsupportedProtocolError("The identity's MQTT block has no topic_prefix; MQTT needs one.")
    if "#" in cleaned or "+" in cleaned or any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise ThalovantUnsupportedProtocolError(
            "The MQTT topic_prefix must not contain '#', '+' or control characters."
        )
    return MqttTopics(f"{cleaned}/in", f"{cleaned}/out", f"{cleaned}/status")


@dataclass(frozen=True)
class MqttSettings:
    """Validated broker settings of one identity (spec 4.3 preconditions)."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    topics: MqttTopics = field(repr=False)
    qos: int = 1

    @classmethod
    def from_credentials(cls, credentials: MqttBrokerCredentials | None) -> MqttSettings:
        """Check an identity's MQTT block; :class:`ThalovantUnsupportedProtocolError` when MQTT
        cannot be used with it (no block, bad scheme, no host, no TLS, bad topic prefix)."""
        if credentials is None:
            raise ThalovantUnsupportedProtocolError("This identity has no MQTT broker credentials; it cannot use mqtt.")
        endpoint = credentials.endpoint.strip()
        parts = urlsplit(endpoint if "://" in endpoint else f"mqtt://{endpoint}")
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES or not parts.hostname:
            raise ThalovantUnsupportedProtocolError(
                "The MQTT endpoint must be an mqtt://, mqtts://, tcp:// or ssl:// URL with a host."
            )
        if not (credentials.tls or scheme in TLS_SCHEMES):
            raise ThalovantUnsupportedProtocolError("HiveMind MQTT requires a broker connection with TLS.")
        try:
            port = parts.port or DEFAULT_TLS_PORT
        except ValueError:
            raise ThalovantUnsupportedProtocolError("The MQTT endpoint has an invalid port.") from None
        qos = credentials.qos if credentials.qos in (0, 1) else 1
        return cls(
            host=parts.hostname,
            port=port,
            username=credentials.username,
            password=credentials.password,
            topics=topics_for_prefix(credentials.topic_prefix),
            qos=qos,
        )


class MQTTCarrier(Carrier):
    """One MQTT session with a hub through a broker (spec 4.3)."""

    protocol = "mqtt"
    #: ``<prefix>/out`` is the identity's: the negotiation skips another session's answers on it
    shared_inbound = True

    def __init__(
        self,
        settings: MqttSettings,
        *,
        pin_id: str,
        site_id: str,
        session_id: str | None = None,
        verify_tls: bool = True,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.settings = settings
        self._pin_id = pin_id
        self._site_id = site_id
        self.session_id = session_id or new_mqtt_session_id()
        self._verify_tls = verify_tls
        self.send_timeout = send_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._client: Client | None = None
        self._fd: int | None = None
        self._writing = False
        self._misc: asyncio.TimerHandle | None = None
        self._connect_job: concurrent.futures.Future[Any] | None = None
        self._connack: asyncio.Future[Any] | None = None
        self._subacks: dict[int, asyncio.Future[list[Any]]] = {}
        self._pubacks: dict[int, asyncio.Future[None]] = {}
        self._inbound: collections.deque[str | bytes] = collections.deque()
        self._readable = asyncio.Event()
        self._failure: CarrierClosed | None = None
        self._authenticated = False
        self._open = False
        self._closed = False
        self._socket_open_ms: float | None = None

    # ------------------------------------------------------------------ identity of the carrier

    def bind_session(self, session_id: str, site_id: str | None = None) -> None:
        """Use ``session_id`` (and ``site_id``) in the cleartext HELLO, so that it is the same
        object as the encrypted HELLO the negotiation sends (spec 3.10). Call before :meth:`open`."""
        self.session_id = session_id
        if site_id is not None:
            self._site_id = site_id

    @property
    def hello_text(self) -> str:
        """The cleartext HELLO this carrier publishes when it opens."""
        return hello_text(self.session_id, self._site_id)

    @property
    def pin_id(self) -> str:
        return self._pin_id

    @property
    def endpoint(self) -> str:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        return f"mqtts://{host}:{self.settings.port}"

    @property
    def alive(self) -> bool:
        return self._open and not self._closed and self._failure is None and self._fd is not None

    def extra_info(self) -> dict[str, Any]:
        return {
            "socket_open_ms": self._socket_open_ms,
            "tls": True,
            "verify_tls": self._verify_tls,
            "qos": self.settings.qos,
        }

    # ------------------------------------------------------------------ paho on the event loop

    def _new_client(self) -> Client:
        paho = load_paho()
        client: Client = paho.Client(
            callback_api_version=paho.CallbackAPIVersion.VERSION2,
            client_id=f"thalovant-{secrets.token_hex(16)}",
            clean_session=True,
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,
        )
        client.username_pw_set(self.settings.username, self.settings.password)
        client.tls_set_context(client_ssl_context(self._verify_tls))
        client.will_set(self.settings.topics.status, OFFLINE, qos=1, retain=True)
        client.on_socket_open = _nodelay_on_open
        client.on_socket_close = lambda _c, _u, _s: self._detach()
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def _attach(self, client: Client) -> None:
        loop = self._loop
        sock = client.socket()
        if loop is None or sock is None:
            raise CarrierOpenError("The MQTT connection closed while opening.")
        self._fd = sock.fileno()
        loop.add_reader(self._fd, self._on_readable)
        self._sync_writer()
        self._misc = loop.call_later(MISC_INTERVAL, self._run_misc)

    def _detach(self) -> None:
        """Stop watching the socket (paho is about to close it, or we are done)."""
        loop, fd = self._loop, self._fd
        if loop is None or fd is None:
            return
        if threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._detach)
            return
        self._fd = None
        self._writing = False
        with contextlib.suppress(Exception):
            loop.remove_reader(fd)
        with contextlib.suppress(Exception):
            loop.remove_writer(fd)
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    def _sync_writer(self) -> None:
        client, loop, fd = self._client, self._loop, self._fd
        if client is None or loop is None or fd is None:
            return
        wanted = client.want_write()
        if wanted and not self._writing:
            loop.add_writer(fd, self._on_writable)
            self._writing = True
        elif not wanted and self._writing:
            loop.remove_writer(fd)
            self._writing = False

    def _on_readable(self) -> None:
        client = self._client
        if client is None:
            return
        rc = client.loop_read()
        sock = client.socket()
        while rc == 0 and isinstance(sock, ssl.SSLSocket) and self._fd is not None and sock.pending():
            rc = client.loop_read()
        self._sync_writer()

    def _on_writable(self) -> None:
        client = self._client
        if client is None:
            return
        client.loop_write()
        self._sync_writer()

    def _run_misc(self) -> None:
        self._misc = None
        client, loop = self._client, self._loop
        if client is None or loop is None or self._fd is None:
            return
        client.loop_misc()
        self._sync_writer()
        if self._fd is not None:
            self._misc = loop.call_later(MISC_INTERVAL, self._run_misc)

    # ------------------------------------------------------------------ paho callbacks (loop thread)

    def _on_connect(self, _client: Client, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(reason_code)

    def _on_subscribe(self, _client: Client, _userdata: Any, mid: int, codes: list[Any], _props: Any) -> None:
        future = self._subacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(list(codes))

    def _on_publish(self, _client: Client, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        future = self._pubacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _on_message(self, _client: Client, _userdata: Any, message: MQTTMessage) -> None:
        if message.topic != self.settings.topics.outbound or self._failure is not None:
            return
        payload = bytes(message.payload)
        item: str | bytes = payload
        if not self._authenticated and payload.lstrip()[:1] == b"{":
            with contextlib.suppress(UnicodeDecodeError):
                item = payload.decode("utf-8")
        if not self._authenticated and isinstance(item, bytes):
            # The topic outlives sessions: a hub may still be answering this identity's previous
            # session. Noise transport messages before our handshake cannot be ours: drop them.
            return
        if len(self._inbound) >= MAX_INBOUND:
            self._fail(CarrierClosed(f"More than {MAX_INBOUND} MQTT messages queued; disconnecting."))
            self._drop()
            return
        self._inbound.append(item)
        self._readable.set()

    def _on_disconnect(self, _client: Client, _userdata: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        self._detach()
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(CarrierOpenError(f"The MQTT broker closed the connection ({reason_code})."))
        self._fail(CarrierClosed(f"The MQTT broker connection was lost ({reason_code})."))

    def _fail(self, failure: CarrierClosed) -> None:
        if self._failure is None and not self._closed:
            self._failure = failure
        for futures in (self._subacks, self._pubacks):
            for future in futures.values():
                if not future.done():
                    future.set_exception(failure)
            futures.clear()
        self._readable.set()

    def _drop(self) -> None:
        """Close the socket at once (no DISCONNECT)."""
        client = self._client
        self._detach()
        if client is not None:
            sock = client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    # ------------------------------------------------------------------ opening

    async def open(self, timeout: float) -> None:
        if self._open or self._closed:
            raise CarrierOpenError("An MQTT carrier opens once; use a fresh one per connection.")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_thread = threading.get_ident()
        deadline = time.perf_counter() + timeout
        started = time.perf_counter()
        client = self._new_client()
        client.connect_timeout = max(timeout, 0.001)
        self._client = client
        self._connack = loop.create_future()
        job = _connect_executor().submit(client.connect, self.settings.host, self.settings.port, keepalive=KEEPALIVE)
        self._connect_job = job
        try:
            await asyncio.wrap_future(job)
        except TimeoutError:
            raise
        except ssl.SSLCertVerificationError as exc:
            raise CarrierOpenError(f"TLS certificate verification failed: {exc.verify_message}") from None
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise CarrierOpenError(f"Cannot reach the MQTT broker: {type(exc).__name__}: {exc}") from None
        if self._closed:  # closed while the worker was connecting
            raise CarrierOpenError("The MQTT carrier was closed while opening.")
        self._attach(client)
        reason = await asyncio.wait_for(self._connack, max(deadline - time.perf_counter(), 0.001))
        if getattr(reason, "is_failure", False) or (isinstance(reason, int) and reason != 0):
            raise CarrierOpenError(f"The MQTT broker refused the connection: {reason}.")
        self._socket_open_ms = (time.perf_counter() - started) * 1000

        result, mid = client.subscribe(self.settings.topics.outbound, qos=self.settings.qos)
        if result != 0 or mid is None:
            raise CarrierOpenError(f"Cannot subscribe to the hub's topic (paho error {result}).")
        suback: asyncio.Future[list[Any]] = loop.create_future()
        self._subacks[mid] = suback
        self._sync_writer()
        try:
            codes = await asyncio.wait_for(suback, max(deadline - time.perf_counter(), 0.001))
        except CarrierClosed as exc:
            raise CarrierOpenError(str(exc)) from None
        if any(getattr(code, "is_failure", False) or int(getattr(code, "value", code)) >= 128 for code in codes):
            raise CarrierOpenError("The MQTT broker refused the subscription to the hub's topic.")
        self._open = True
        try:
            await self._publish(self.settings.topics.inbound, self.hello_text.encode("utf-8"), self.settings.qos)
        except CarrierClosed as exc:
            self._open = False
            raise CarrierOpenError(str(exc)) from None

    # ------------------------------------------------------------------ sending

    async def _publish(self, topic: str, payload: bytes, qos: int, *, retain: bool = False, wait: bool = True) -> None:
        client, loop = self._client, self._loop
        if self._failure is not None:
            raise self._failure
        if client is None or loop is None or self._closed:
            raise CarrierClosed("The MQTT session is not open.")
        future: asyncio.Future[None] = loop.create_future()
        info = client.publish(topic, payload, qos=qos, retain=retain)
        self._sync_writer()
        if info.rc != 0:
            failure = CarrierClosed(f"Cannot publish to the broker (paho error {info.rc}).")
            self._fail(failure)
            raise failure
        if not wait or info.is_published():
            return
        self._pubacks[info.mid] = future
        try:
            await asyncio.wait_for(future, self.send_timeout)
        except TimeoutError:
            self._pubacks.pop(info.mid, None)
            failure = CarrierClosed(f"The broker did not acknowledge a publish within {self.send_timeout:g} s.")
            self._fail(failure)
            raise failure from None

    async def send_text(self, text: str) -> None:
        await self._publish(self.settings.topics.inbound, text.encode("utf-8"), self.settings.qos)

    async def send_binary(self, data: bytes) -> None:
        first = not self._authenticated
        self._authenticated = True
        await self._publish(self.settings.topics.inbound, data, self.settings.qos)
        if first:
            await self._publish(self.settings.topics.status, ONLINE, 1, retain=True, wait=False)

    # ------------------------------------------------------------------ receiving

    async def receive(self) -> str | bytes:
        while True:
            if self._inbound:
                return self._inbound.popleft()
            if self._failure is not None:
                raise self._failure
            if self._closed or not self._open:
                raise CarrierClosed("The MQTT session is closed.")
            self._readable.clear()
            await self._readable.wait()

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        if self._closed:
            return
        was_open = self._open and self._failure is None and self._fd is not None
        job, client = self._connect_job, self._client
        if was_open:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(
                    self._publish(self.settings.topics.status, OFFLINE, 1, retain=True), CLOSE_TIMEOUT
                )
        self._closed = True
        self._readable.set()
        if client is not None and self._fd is not None:
            with contextlib.suppress(Exception):
                client.disconnect()
                self._sync_writer()
        self._drop()
        if job is not None and not job.done():
            # the worker is still connecting: drop that socket when it is done
            job.add_done_callback(lambda _job: _close_quietly(client))
        self._fail(CarrierClosed("The MQTT session is closed."))


def _nodelay_on_open(_client: Client, _userdata: Any, sock: Any) -> None:
    if isinstance(sock, socket.socket):
        set_nodelay(sock)


def _close_quietly(client: Client | None) -> None:
    if client is None:
        return
    sock = client.socket()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
