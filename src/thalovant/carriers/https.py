"""The HTTPS polling carrier (spec 4.2), on an ``httpx.AsyncClient`` (HTTP/1.1, TCP_NODELAY).

A session is a sequence of short requests under the identity's ``endpoint_base()``:

- ``POST /connect`` (empty body) opens it; the hub queues its HELLO and offer;
- ``POST /send_message`` carries ``message=<text>`` during the handshake and
  ``message=<base64>&binary=1`` for every Noise transport message after it;
- a poller task GETs ``/get_messages`` (and, once this side has sent its first transport
  message, ``/get_binary_messages``) and queues what comes back, in order;
- ``POST /disconnect`` ends it, and is sent before every reconnect.

Every request carries ``authorization=<base64(useragent:access_key)>`` in its query, the
``User-Agent`` header and, once the hub has set one, the ``hivemind_http_replica`` cookie (other
cookies are ignored). All requests of one carrier go through one lock, so polls and sends never
overlap; redirects are not followed (a 3xx is a failure); 401/403 are the hub's refusal signal.

The poller sleeps :data:`POLL_INTERVAL` (0.1 s) after an empty round. For
:data:`ACTIVE_WINDOW` seconds after this side sent something it polls every
:data:`ACTIVE_POLL_INTERVAL` instead, so answers are picked up promptly without keeping an idle
client busy.

The replica cookie and the "admission still held" flag outlive one carrier: a fresh carrier for
the same endpoint and access key (the next connect attempt) reuses the cookie and first sends
the ``/disconnect`` its predecessor could not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from urllib.request import getproxies, proxy_bypass

import httpx

from thalovant.carriers.base import Carrier, CarrierClosed, CarrierOpenError, CarrierRefused
from thalovant.carriers.wss import authorization_value
from thalovant.noise_store import https_pin_id
from thalovant.trust import client_ssl_context

POLL_INTERVAL = 0.1
ACTIVE_POLL_INTERVAL = 0.02
ACTIVE_WINDOW = 1.0
SEND_TIMEOUT = 8.0
DISCONNECT_TIMEOUT = 2.0
MAX_QUEUED = 1024
REPLICA_COOKIE = "hivemind_http_replica"
REFUSAL_STATUSES = frozenset({401, 403})
_MAX_SHOWN_ERROR = 200


@dataclass
class Admission:
    """What one (endpoint, access key) keeps across carriers: the replica cookie and whether
    the hub may still hold an admission that no ``/disconnect`` has ended."""

    cookie: str | None = None
    held: bool = False


_ADMISSIONS: dict[tuple[str, str], Admission] = {}
_ADMISSIONS_LOCK = threading.Lock()


def admission_for(base: str, access_key: str) -> Admission:
    """The shared :class:`Admission` of ``base`` and ``access_key`` (the key is hashed)."""
    digest = hashlib.sha256(access_key.encode("utf-8")).hexdigest()[:32]
    with _ADMISSIONS_LOCK:
        return _ADMISSIONS.setdefault((base, digest), Admission())


def _no_cookie_jar() -> httpx.Cookies:
    """A cookie jar that stores nothing: the replica cookie is handled by hand."""
    return httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``/``ALL_PROXY``, ``NO_PROXY``)."""
    host = urlsplit(url).hostname or ""
    proxies = getproxies()
    proxy = proxies.get("https") or proxies.get("all")
    if not isinstance(proxy, str) or not proxy or proxy_bypass(host):
        return None
    return proxy


class _RequestTimedOut(CarrierClosed):
    """A request got no answer within its timeout."""


def _hub_error_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)[:_MAX_SHOWN_ERROR]
    return text[:_MAX_SHOWN_ERROR]


class HTTPSCarrier(Carrier):
    """An HTTPS polling session with a hub (spec 4.2)."""

    protocol = "https"

    def __init__(
        self,
        base: str,
        *,
        access_key: str,
        useragent: str,
        verify_tls: bool = True,
        poll_interval: float = POLL_INTERVAL,
        active_poll_interval: float = ACTIVE_POLL_INTERVAL,
        active_window: float = ACTIVE_WINDOW,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        if poll_interval <= 0 or active_poll_interval <= 0 or send_timeout <= 0 or active_window < 0:
            raise ValueError("Poll intervals and timeouts must be positive.")
        self._base = base.strip()
        parts = urlsplit(self._base)
        self._scheme = parts.scheme.lower()
        self._host = parts.hostname or ""
        self._base_path = parts.path.rstrip("/")
        self._base_query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "authorization"]
        self._netloc = parts.netloc
        self._authorization = authorization_value(useragent, access_key)
        self._useragent = useragent
        self._verify_tls = verify_tls
        self.poll_interval = poll_interval
        self.active_poll_interval = active_poll_interval
        self.active_window = active_window
        self.send_timeout = send_timeout
        self._admission = admission_for(self._base, access_key)
        self._client: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()
        self._inbound: collections.deque[str | bytes] = collections.deque()
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._failure: CarrierClosed | None = None
        self._unreachable = False
        self._open = False
        self._closed = False
        self._binary_phase = False
        self._active_until = 0.0
        self._socket_open_ms: float | None = None
        self._urls: dict[str, str] = {}

    # ------------------------------------------------------------------ identity of the carrier

    @property
    def pin_id(self) -> str:
        return https_pin_id(self._base)

    @property
    def endpoint(self) -> str:
        return urlunsplit((self._scheme, self._netloc.rpartition("@")[2], self._base_path, "", ""))

    @property
    def alive(self) -> bool:
        return self._open and not self._closed and self._failure is None

    def extra_info(self) -> dict[str, Any]:
        return {
            "socket_open_ms": self._socket_open_ms,
            "tls": True,
            "verify_tls": self._verify_tls,
            "poll_interval": self.poll_interval,
        }

    # ------------------------------------------------------------------ requests

    def _url(self, path: str) -> str:
        url = self._urls.get(path)
        if url is None:
            query = urlencode([*self._base_query, ("authorization", self._authorization)])
            url = urlunsplit((self._scheme, self._netloc, self._base_path + path, query, ""))
            self._urls[path] = url
        return url

    def _scrub(self, text: str) -> str:
        """``text`` without the credential (it is in every URL)."""
        for secret in (self._authorization, urlencode({"a": self._authorization})[2:]):
            text = text.replace(secret, "<redacted>")
        return text

    def _new_client(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(
            verify=client_ssl_context(self._verify_tls),
            http1=True,
            http2=False,
            retries=0,
            trust_env=False,
            proxy=_proxy_for(self._base),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=30.0),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        return httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            cookies=_no_cookie_jar(),
            headers={"User-Agent": self._useragent},
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        form: list[tuple[str, str]] | None = None,
        timeout: float | None = None,
        already_disconnected_ok: bool = False,
    ) -> dict[str, Any]:
        """One request; the hub's JSON object, or :class:`CarrierClosed` with the evidence."""
        client = self._client
        if client is None:
            raise CarrierClosed("The HTTPS session is not open.")
        headers: dict[str, str] = {}
        cookie = self._admission.cookie
        if cookie:
            headers["Cookie"] = cookie
        content: bytes | None = None
        if form is not None:
            content = urlencode(form).encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif method == "POST":
            content = b""
            headers["Content-Type"] = "application/octet-stream"
        async with self._lock:
            try:
                response = await client.request(
                    method,
                    self._url(path),
                    content=content,
                    headers=headers,
                    timeout=timeout if timeout is not None else self.send_timeout,
                )
            except httpx.TimeoutException:
                self._unreachable = True
                raise _RequestTimedOut(f"The hub did not answer {path} in time.") from None
            except httpx.HTTPError as exc:
                self._unreachable = True
                detail = self._scrub(f"{type(exc).__name__}: {exc}")
                raise CarrierClosed(f"HTTPS request {path} failed: {detail}") from None
        self._keep_cookie(response)
        return self._read(path, response, already_disconnected_ok=already_disconnected_ok)

    def _keep_cookie(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            pair = header.split(";", 1)[0].strip()
            if pair.startswith(REPLICA_COOKIE + "="):
                self._admission.cookie = pair

    @staticmethod
    def _read(path: str, response: httpx.Response, *, already_disconnected_ok: bool) -> dict[str, Any]:
        status = response.status_code
        if 300 <= status < 400:
            raise CarrierClosed(
                f"The hub answered {path} with a redirect (HTTP {status}); redirects are not followed.",
                code=status,
            )
        if status in REFUSAL_STATUSES:
            raise CarrierClosed(f"The hub refused {path} (HTTP {status}).", code=status, refusal_signal=True)
        if not 200 <= status < 300:
            raise CarrierClosed(f"The hub answered {path} with HTTP {status}.", code=status)
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise CarrierClosed(f"Invalid HiveMind HTTP response to {path}: not a JSON object.", code=status)
        error = data.get("error")
        if error:
            if already_disconnected_ok and error == "Already Disconnected":
                return data
            raise CarrierClosed(f"The hub answered {path} with an error: {_hub_error_text(error)}", code=status)
        return data

    # ------------------------------------------------------------------ opening and closing

    async def open(self, timeout: float) -> None:
        if self._scheme != "https" or not self._host:
            raise CarrierOpenError(
                f"Refusing to use the HTTP transport over {self._scheme or 'a schemeless'}:// URL; "
                "the hub's endpoint_base() must be an https:// URL with a host."
            )
        if self._open or self._closed:
            raise CarrierOpenError("An HTTPS carrier opens once; use a fresh one per connection.")
        started = time.perf_counter()
        self._client = self._new_client()
        if self._admission.held:
            try:
                await self._disconnect(min(DISCONNECT_TIMEOUT, timeout))
            except CarrierClosed as exc:
                raise CarrierOpenError(
                    f"Previous connection cleanup failed ({exc}); not reconnecting until /disconnect succeeds."
                ) from None
        try:
            data = await self._call("POST", "/connect", timeout=max(timeout - (time.perf_counter() - started), 0.001))
        except _RequestTimedOut:
            raise TimeoutError from None
        except CarrierClosed as exc:
            if exc.refusal_signal:
                raise CarrierRefused(str(exc), exc.code or 401) from None
            raise CarrierOpenError(str(exc)) from None
        if "status" in data and data["status"] != "Connected":
            raise CarrierOpenError(f"The hub answered /connect with status {_hub_error_text(data['status'])!r}.")
        self._admission.held = True
        self._open = True
        self._socket_open_ms = (time.perf_counter() - started) * 1000
        self._poller = asyncio.create_task(self._poll_loop(), name="thalovant-https-poller")

    async def _disconnect(self, timeout: float) -> None:
        await self._call("POST", "/disconnect", timeout=timeout, already_disconnected_ok=True)
        self._admission.held = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        poller, self._poller = self._poller, None
        if poller is not None and not poller.done():
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await poller
        client = self._client
        if client is None:
            return
        try:
            if self._admission.held and not self._unreachable:
                with contextlib.suppress(CarrierClosed):
                    await self._disconnect(min(DISCONNECT_TIMEOUT, self.send_timeout))
        except (Exception, asyncio.CancelledError):  # closing is best effort
            pass
        finally:
            self._client = None
            with contextlib.suppress(Exception):
                await client.aclose()
            self._readable.set()

    # ------------------------------------------------------------------ sending

    async def send_text(self, text: str) -> None:
        await self._send([("message", text)])

    async def send_binary(self, data: bytes) -> None:
        self._binary_phase = True
        await self._send([("message", base64.b64encode(data).decode("ascii")), ("binary", "1")])

    async def _send(self, form: list[tuple[str, str]]) -> None:
        if self._failure is not None:
            raise self._failure
        if not self._open or self._closed:
            raise CarrierClosed("The HTTPS session is not open.")
        try:
            await self._call("POST", "/send_message", form=form)
        except CarrierClosed as exc:
            self._fail(exc)
            raise
        self._active_until = time.monotonic() + self.active_window
        self._wake.set()

    # ------------------------------------------------------------------ receiving

    async def receive(self) -> str | bytes:
        while True:
            if self._inbound:
                item = self._inbound.popleft()
                if len(self._inbound) < MAX_QUEUED:
                    self._drained.set()
                return item
            if self._failure is not None:
                raise self._failure
            if self._closed or not self._open:
                raise CarrierClosed("The HTTPS session is closed.")
            self._readable.clear()
            await self._readable.wait()

    def _fail(self, failure: CarrierClosed) -> None:
        if self._failure is None:
            self._failure = failure
        self._readable.set()

    def _queue(self, item: str | bytes) -> None:
        self._inbound.append(item)
        self._readable.set()

    async def _poll_loop(self) -> None:
        try:
            while True:
                while len(self._inbound) >= MAX_QUEUED:
                    self._drained.clear()
                    await self._drained.wait()
                if not await self._poll_once():
                    await self._idle()
        except asyncio.CancelledError:
            raise
        except CarrierClosed as exc:
            self._fail(exc)
        except Exception as exc:  # a bug must not leave a silent dead session
            self._fail(CarrierClosed(f"The HTTPS poller failed: {type(exc).__name__}"))

    async def _idle(self) -> None:
        active = time.monotonic() < self._active_until
        interval = self.active_poll_interval if active else self.poll_interval
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), interval)

    async def _poll_once(self) -> bool:
        """One round of polls; true when anything arrived."""
        binary_phase = self._binary_phase
        data = await self._call("GET", "/get_messages")
        messages = data.get("messages", [])
        if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
            raise CarrierClosed("Invalid HiveMind HTTP response to /get_messages: messages is not a list of strings.")
        for message in messages:
            self._queue(message)
        received = len(messages)
        if binary_phase:
            data = await self._call("GET", "/get_binary_messages")
            encoded = data.get("b64_messages", [])
            if not isinstance(encoded, list) or not all(isinstance(m, str) for m in encoded):
                raise CarrierClosed(
                    "Invalid HiveMind HTTP response to /get_binary_messages: b64_messages is not a list of strings."
                )
            for item in encoded:
                try:
                    self._queue(base64.b64decode(item, validate=True))
                except (binascii.Error, ValueError):
                    raise CarrierClosed(
                        "Invalid HiveMind HTTP response to /get_binary_messages: an item is not valid base64."
                    ) from None
            received += len(encoded)
        return received > 0
