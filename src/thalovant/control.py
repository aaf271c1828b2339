"""The control-plane client: discover hubs and provision client identities (controlplane.md).

:class:`AsyncThalovantControlPlane` is the implementation (httpx). :class:`ThalovantControlPlane`
is its synchronous facade: every method runs the async one on a private event-loop thread.

Configuration:

- API URL: the ``api_url`` argument, else ``THALOVANT_API_URL``, else the ``api_url`` key of the
  config file, else ``https://localhost:8443``. A trailing ``/v1`` is dropped; requests go to
  ``<base>/v1/...``.
- Token: :meth:`~AsyncThalovantControlPlane.login`, the ``access_token`` argument, or
  ``THALOVANT_API_TOKEN``. An authenticated call without one raises
  ``ThalovantAPIError("Missing Thalovant API access token. ...")`` before any I/O.
- TLS trust as :mod:`thalovant.trust` says. No redirects are followed (a 3xx is an error), no cookies are kept, and
  credentials never go over plain HTTP except to a loopback host.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import socket
import ssl
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from importlib import metadata as _metadata
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from thalovant.config import config_api_url
from thalovant.errors import (
    ThalovantAPIError,
    ThalovantAPIUnreachableError,
    ThalovantUnsupportedConnectionTypeError,
    api_error_from_response,
)
from thalovant.events import DEFAULT_PROTOCOL_PREFERENCE
from thalovant.hub_extras import HubExtraMethods
from thalovant.identity import ThalovantIdentity
from thalovant.memory import MemoryMethods
from thalovant.protocols import HubProtocolSettings, canonical_protocol, read_endpoints
from thalovant.runtime.loop import LoopThread
from thalovant.runtime.twin import SyncTwin, attribute, blocking
from thalovant.runtime_control import AsyncRuntimeControl
from thalovant.signin import SignInMethods
from thalovant.trust import TrustStoreError, client_ssl_context, describe_trust_store

__all__ = [
    "DEFAULT_API_URL",
    "MISSING_TOKEN_MESSAGE",
    "AsyncThalovantControlPlane",
    "BootstrapIdentityResult",
    "SelectedHubEndpoint",
    "ThalovantControlPlane",
    "clean_site_id",
    "normalize_api_url",
    "scrub_secrets",
]

T = TypeVar("T")

DEFAULT_API_URL = "https://localhost:8443"
DEFAULT_TIMEOUT = 10.0
MISSING_TOKEN_MESSAGE = (
    "Missing Thalovant API access token. Sign in with login(email, password) or pass access_token=..."
)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_SCRUBBED_KEYS = frozenset(
    {
        "initialidentify",
        "initialidentifytoken",
        "apikey",
        "accesskey",
        "password",
        "cryptokey",
        "token",
        "accesstoken",
        "refreshtoken",
        "authorization",
        "clientsecret",
        "privatekey",
        "secret",
        "apisecret",
        "secretkey",
        "credentials",
    }
)
_CAMEL_HUB_KEYS = {
    "ownerId": "owner_id",
    "runtimeGroupId": "runtime_group_id",
    "capacityProfile": "capacity_profile",
    "isLocked": "is_locked",
}


def _sdk_version() -> str:
    try:
        return _metadata.version("thalovant-selfhosted")
    except _metadata.PackageNotFoundError:
        return "0.1.0"


USER_AGENT = f"ThalovantSelfHostedSDK/{_sdk_version()}"


def _normalised_key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def scrub_secrets(value: Any) -> Any:
    """A deep copy without any key whose normalised name is a known secret (controlplane.md
    5.4); reference keys such as ``apiKeyRef`` stay."""
    if isinstance(value, Mapping):
        return {
            k: scrub_secrets(v)
            for k, v in value.items()
            if not (isinstance(k, str) and _normalised_key(k) in _SCRUBBED_KEYS)
        }
    if isinstance(value, list | tuple):
        return [scrub_secrets(item) for item in value]
    return copy.deepcopy(value)


def normalize_api_url(url: str | None) -> str:
    """Trim, drop trailing slashes and one trailing ``/v1``, end with ``/``."""
    text = (url or "").strip().rstrip("/")
    if text.lower().endswith("/v1"):
        text = text[:-3].rstrip("/")
    return (text or DEFAULT_API_URL) + "/"


def resolve_api_url(api_url: str | None) -> str:
    """The API URL by precedence: argument, ``THALOVANT_API_URL``, config file, default."""
    if api_url and api_url.strip():
        return normalize_api_url(api_url)
    env = os.environ.get("THALOVANT_API_URL", "").strip()
    if env:
        return normalize_api_url(env)
    configured = config_api_url()
    return normalize_api_url(configured or DEFAULT_API_URL)


def clean_site_id(value: str | None) -> str:
    """controlplane.md 5.1 step 2: trim, ``_`` to ``-``, whitespace runs to ``-``; no
    lowercasing; empty gives ``thalovant-client-<8 hex>``."""
    text = (value or "").strip().replace("_", "-")
    text = re.sub(r"\s+", "-", text)
    return text or f"thalovant-client-{secrets.token_hex(4)}"


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def unreachable_message(api_url: str, exc: BaseException, timeout: float) -> str:
    """"Could not reach the Thalovant API at <url>: <why>", with a hint for the usual causes
    (the TLS certificate does not verify, nothing listens, no answer in time)."""
    parts = urlsplit(api_url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    chain = _causes(exc)
    reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = (
                f"its TLS certificate does not verify against {describe_trust_store()} ({cause.verify_message}); "
                "for a server with a development CA, set SSL_CERT_FILE to its ca.pem (DATA_DIR/ca.pem)"
            )
            break
        if isinstance(cause, ConnectionRefusedError):
            reason = f"connection refused: nothing listens on {where} (is the server running?)"
            break
        if isinstance(cause, socket.gaierror):
            reason = f"the host name {parts.hostname} does not resolve"
            break
        if isinstance(cause, httpx.TimeoutException | TimeoutError):
            reason = f"no answer from {where} within {timeout:g} s"
            break
        if isinstance(cause, ssl.SSLError):
            reason = f"the TLS handshake with {where} failed ({cause})"
            break
    return f"Could not reach the Thalovant API at {api_url}: {reason}."


def _domain_host(domain: Any) -> str | None:
    if not isinstance(domain, str) or not domain.strip():
        return None
    text = domain.strip().rstrip("/")
    if "://" in text:
        netloc = urlsplit(text).netloc
        return netloc or None
    return text.split("/", 1)[0] or None


def hub_endpoints(hub: Mapping[str, Any]) -> tuple[HubProtocolSettings, dict[str, str]]:
    """A hub resource's protocol flags and data-plane endpoints (controlplane.md 4.1, 5.3):
    given endpoints, plus ``https://<domain>`` / ``wss://<domain>`` for enabled protocols that
    have none. MQTT is never derived."""
    flags = HubProtocolSettings.from_mapping(hub)
    endpoints = read_endpoints(hub)
    host = _domain_host(hub.get("domain"))
    if host:
        if flags.http and "https" not in endpoints:
            endpoints["https"] = f"https://{host}"
        if flags.wss and "wss" not in endpoints:
            endpoints["wss"] = f"wss://{host}"
    return flags, endpoints


@dataclass(frozen=True)
class SelectedHubEndpoint:
    """The carrier a new identity will use first, and its endpoint."""

    protocol: str
    endpoint: str


@dataclass(repr=False)
class BootstrapIdentityResult:
    """What :meth:`AsyncThalovantControlPlane.create_client_identity` returns.

    ``identity`` is ready to use; ``hub`` the hub resource; ``client`` the raw API answer (it
    may hold secrets: left out of ``repr``, scrubbed by ``as_dict()``)."""

    identity: ThalovantIdentity
    hub: dict[str, Any]
    client: dict[str, Any]
    endpoint: SelectedHubEndpoint | None = None
    operation: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def selected_protocol(self) -> str | None:
        return self.endpoint.protocol if self.endpoint else None

    @property
    def selected_endpoint(self) -> str | None:
        return self.endpoint.endpoint if self.endpoint else None

    @property
    def client_id(self) -> str | None:
        value = self.client.get("id")
        return value if isinstance(value, str) else None

    @property
    def connection_type(self) -> str | None:
        spec = self.client.get("spec")
        value = spec.get("connection_type") if isinstance(spec, Mapping) else None
        return value if isinstance(value, str) else None

    def as_dict(self, include_secrets: bool = False) -> dict[str, Any]:
        """The result as plain data; without ``include_secrets`` every secret is removed
        (the identity's ``as_dict`` is then what an identity file holds, minus secrets)."""
        return {
            "identity": self.identity.as_dict(include_secrets),
            "hub": self.hub,
            "client": self.client if include_secrets else scrub_secrets(self.client),
            "selected_protocol": self.selected_protocol,
            "selected_endpoint": self.selected_endpoint,
            "operation": self.operation,
        }

    def save(self, path: str | os.PathLike[str]) -> os.PathLike[str]:
        """Write the identity file (0600); see :meth:`ThalovantIdentity.save`."""
        return self.identity.save(path)

    def __repr__(self) -> str:
        return (
            f"BootstrapIdentityResult(client_id={self.client_id!r}, hub_id={self.hub.get('id')!r}, "
            f"selected_protocol={self.selected_protocol!r}, identity={self.identity!r})"
        )


def _mentions_connection_type(error: ThalovantAPIError) -> bool:
    def mentions(value: Any) -> bool:
        return isinstance(value, str) and ("connection_type" in value or "connectionType" in value)

    if mentions(error.detail) or mentions(error.code):
        return True
    problem = error.problem or {}
    entries: list[Any] = []
    for key in ("errors", "detail"):
        if isinstance(problem.get(key), list):
            entries.extend(problem[key])
    for entry in entries:
        if isinstance(entry, Mapping):
            loc = entry.get("loc")
            if mentions(entry.get("msg")) or (isinstance(loc, list) and any(mentions(part) for part in loc)):
                return True
    return False


class AsyncThalovantControlPlane(AsyncRuntimeControl, SignInMethods, HubExtraMethods, MemoryMethods):
    """The asyncio control-plane client. Use as ``async with``, or call :meth:`close`.

    Operations, hub skills, runtime groups and the marketplace come from
    :class:`~thalovant.runtime_control.AsyncRuntimeControl`; sign-in, hub extras, memory and
    analytics from :mod:`thalovant.signin`, :mod:`thalovant.hub_extras` and :mod:`thalovant.memory`."""

    def __init__(
        self,
        api_url: str | None = None,
        *,
        access_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        user_agent: str | None = None,
        verify: bool | str | ssl.SSLContext | None = None,
    ) -> None:
        self.api_url = resolve_api_url(api_url)
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ThalovantAPIError(f"The Thalovant API URL must be http(s):// with a host, got {self.api_url!r}.")
        if parts.username is not None or parts.password is not None:
            raise ThalovantAPIError("The Thalovant API URL must not carry credentials (user:password@).")
        token = access_token if access_token is not None else os.environ.get("THALOVANT_API_TOKEN", "")
        self.access_token: str | None = token.strip() or None
        self.token_id: str | None = None
        self.timeout = timeout
        self.user_agent = user_agent or USER_AGENT
        try:
            self._verify = client_ssl_context(True if verify is None else verify)
        except TrustStoreError as exc:
            raise ThalovantAPIError(f"{exc}.") from None
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        signed_in = "yes" if self.access_token else "no"
        return f"{type(self).__name__}(api_url={self.api_url!r}, signed_in={signed_in})"

    # -- plumbing

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
            self._http = httpx.AsyncClient(
                timeout=self.timeout,
                follow_redirects=False,
                verify=self._verify,
                cookies=jar,
                trust_env=True,
                headers={"accept": "application/json", "user-agent": self.user_agent},
            )
        return self._http

    async def close(self) -> None:
        """Close the HTTP connections (the token is kept)."""
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def aclose(self) -> None:
        """Alias of :meth:`close` (the public SDK's name)."""
        await self.close()

    async def __aenter__(self) -> AsyncThalovantControlPlane:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _url(self, path: str) -> str:
        return self.api_url + path.lstrip("/")

    async def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request and return its JSON object (``{}`` for an empty 2xx body).

        ``timeout`` (seconds) bounds this request instead of the client's timeout. Raises the
        typed errors of controlplane.md 12; ``ThalovantAPIError`` with
        :data:`MISSING_TOKEN_MESSAGE` before any I/O when ``auth`` and no token."""
        send_headers: dict[str, str] = dict(headers or {})
        if auth:
            if not self.access_token:
                raise ThalovantAPIError(MISSING_TOKEN_MESSAGE)
            send_headers["authorization"] = f"Bearer {self.access_token}"
        url = self._url(path)
        parts = urlsplit(url)
        credential_bearing = auth or json_body is not None
        if credential_bearing and parts.scheme != "https" and (parts.hostname or "") not in LOOPBACK_HOSTS:
            raise ThalovantAPIError(
                "Refusing to send credentials over plain HTTP to a non-loopback host; use an https:// API URL."
            )
        query = {
            k: ("true" if v is True else str(v))
            for k, v in (params or {}).items()
            if v is not None and v is not False and v != ""
        }
        try:
            response = await self._client().request(
                method,
                url,
                params=query,
                json=dict(json_body) if json_body is not None else None,
                headers=send_headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            raise ThalovantAPIError("Could not form a valid Thalovant API URL; check the API URL.") from None
        except (httpx.TimeoutException, httpx.TransportError, ssl.SSLError, OSError) as exc:
            raise ThalovantAPIUnreachableError(unreachable_message(self.api_url, exc, self.timeout)) from None
        return self._interpret(response)

    @staticmethod
    def _interpret(response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if not 200 <= status < 300:
            raise api_error_from_response(status, response.content, dict(response.headers))
        text = response.content.decode("utf-8", errors="replace")
        if not text.strip():
            return {}
        try:
            body = response.json()
        except ValueError:
            raise ThalovantAPIError(
                f"Thalovant API returned a non-JSON response (HTTP {status}).", status_code=status
            ) from None
        if not isinstance(body, dict):
            raise ThalovantAPIError(
                f"Thalovant API returned an unexpected response shape (HTTP {status}): expected a JSON object.",
                status_code=status,
            )
        return body

    # -- auth and account

    async def login(
        self,
        email: str,
        password: str,
        scope: str | None = None,
        *,
        otp_code: str | None = None,
        recovery_code: str | None = None,
    ) -> dict[str, Any]:
        """Sign in with a password (POST /v1/auth/token); keeps the token in memory and
        returns the whole token response."""
        body: dict[str, Any] = {"email": email, "password": password}
        for key, value in (("scope", scope), ("otp_code", otp_code), ("recovery_code", recovery_code)):
            if value is not None:
                body[key] = value
        answer = await self.request("POST", "/v1/auth/token", auth=False, json_body=body)
        token = answer.get("access_token")
        if not isinstance(token, str) or not token.strip():
            raise ThalovantAPIError("Thalovant API token response did not include access_token.")
        self.access_token = token
        token_id = answer.get("token_id")
        self.token_id = token_id if isinstance(token_id, str) and token_id else None
        return answer

    async def get_profile(self) -> dict[str, Any]:
        """The signed-in user's profile (``id``, ``email``, ``display_name``, ``role``)."""
        answer = await self.request("GET", "/v1/users/profile")
        data = answer.get("data")
        return data if isinstance(data, dict) else answer

    async def revoke_api_token(self, token_id: str | None = None) -> None:
        """Revoke an API token (default: the one this client signed in with, which is then
        forgotten)."""
        target = token_id or self.token_id
        if not target:
            raise ThalovantAPIError(
                "No API token id to revoke: pass token_id=... (password sign-ins return session tokens without one)."
            )
        await self.request("DELETE", f"/v1/auth/api-tokens/{quote(target, safe='')}")
        if target == self.token_id:
            self.access_token = None
            self.token_id = None

    # -- hubs

    async def list_public_hubs(self, limit: int = 24, cursor: str | None = None) -> dict[str, Any]:
        """Public, active hubs (no sign-in): ``{"data": [...], "meta": ..., "links": ...}``."""
        return await self.request("GET", "/v1/public/hubs", auth=False, params={"limit": limit, "cursor": cursor})

    async def get_public_hub(self, hub_ref: str) -> dict[str, Any]:
        """One public hub by slug, public ref or id (no sign-in)."""
        return await self.request("GET", f"/v1/public/hubs/{quote(str(hub_ref), safe='')}", auth=False)

    async def list_hubs(
        self, limit: int = 100, cursor: str | None = None, owner_id: str | None = None
    ) -> dict[str, Any]:
        """The hubs visible to the signed-in user, in the cursor envelope."""
        return await self.request("GET", "/v1/hubs", params={"limit": limit, "cursor": cursor, "owner_id": owner_id})

    async def get_hub(self, hub_id: str) -> dict[str, Any]:
        """One hub (with its ``etag``)."""
        return await self.request("GET", f"/v1/hubs/{quote(str(hub_id), safe='')}")

    async def create_hub(self, payload: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Create a hub (``name`` and ``spec`` with ``version`` are required)."""
        body = {_CAMEL_HUB_KEYS.get(k, k): v for k, v in payload.items()}
        return await self.request(
            "POST", "/v1/hubs", json_body=body, headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        )

    async def _etag_of(self, path: str) -> str:
        current = await self.request("GET", path)
        etag = current.get("etag")
        if not isinstance(etag, str) or not etag:
            raise ThalovantAPIError("The resource has no etag; cannot update or delete it safely.")
        return etag

    async def update_hub(self, hub_id: str, payload: Mapping[str, Any], etag: str | None = None) -> dict[str, Any]:
        """Patch a hub with ``If-Match`` (the current etag is read first when not given)."""
        path = f"/v1/hubs/{quote(str(hub_id), safe='')}"
        tag = etag or await self._etag_of(path)
        body = {_CAMEL_HUB_KEYS.get(k, k): v for k, v in payload.items()}
        return await self.request("PATCH", path, json_body=body, headers={"If-Match": tag})

    async def delete_hub(self, hub_id: str, etag: str | None = None) -> None:
        """Delete a hub with ``If-Match`` (the current etag is read first when not given)."""
        path = f"/v1/hubs/{quote(str(hub_id), safe='')}"
        tag = etag or await self._etag_of(path)
        await self.request("DELETE", path, headers={"If-Match": tag})

    # -- clients

    async def create_client(self, payload: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """POST /v1/clients with the payload as given."""
        return await self.request(
            "POST",
            "/v1/clients",
            json_body=dict(payload),
            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())},
        )

    async def get_client(self, client_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/clients/{quote(str(client_id), safe='')}")

    async def list_clients(
        self,
        hub_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        owner_id: str | None = None,
        include_spec: bool = True,
    ) -> dict[str, Any]:
        """Client identities in the cursor envelope, filtered by hub and owner."""
        params: dict[str, Any] = {"limit": limit, "hub_id": hub_id, "cursor": cursor, "owner_id": owner_id}
        if not include_spec:
            params["include_spec"] = "false"
        return await self.request("GET", "/v1/clients", params=params)

    async def delete_client(self, client_id: str, etag: str | None = None) -> None:
        """Delete a client identity; reads the etag when not given, retries once after a 412
        and treats 404 as already deleted."""
        path = f"/v1/clients/{quote(str(client_id), safe='')}"
        for attempt in range(2):
            try:
                tag = etag or await self._etag_of(path)
                await self.request("DELETE", path, headers={"If-Match": tag})
                return
            except ThalovantAPIError as exc:
                if exc.status_code == 404:
                    return
                if exc.status_code == 412 and attempt == 0:
                    etag = None
                    continue
                raise

    async def create_client_identity(
        self,
        hub: str | Mapping[str, Any],
        name: str,
        site_id: str | None = None,
        spec: Mapping[str, Any] | None = None,
        owner_id: str | None = None,
        active: bool = True,
        preferred_protocols: Sequence[str] = DEFAULT_PROTOCOL_PREFERENCE,
        idempotency_key: str | None = None,
        connection_type: str | None = None,
    ) -> BootstrapIdentityResult:
        """Create a client identity on a hub (controlplane.md 5.1-5.4) and return it ready
        to use. ``hub`` is a hub id (read with GET /v1/hubs/{id}) or a hub resource."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError("name must be a non-empty string")
        hub_resource = dict(await self.get_hub(hub)) if isinstance(hub, str) else dict(hub)
        hub_id = hub_resource.get("id")
        if not isinstance(hub_id, str) or not hub_id:
            raise ThalovantAPIError("Hub resource is missing id.")
        site = clean_site_id(site_id if site_id is not None else name)
        access_key = secrets.token_urlsafe(32)
        password = secrets.token_urlsafe(32)
        client_spec = {k: copy.deepcopy(v) for k, v in (spec or {}).items() if _normalised_key(str(k)) != "cryptokey"}
        client_spec.setdefault("version", "1")
        if connection_type is not None:
            client_spec["connection_type"] = connection_type
        client_spec.update({"apiKey": access_key, "password": password, "siteId": site})
        body: dict[str, Any] = {"hub_id": hub_id, "name": name, "spec": client_spec, "active": active}
        if owner_id is not None:
            body["owner_id"] = owner_id
        try:
            client = await self.create_client(body, idempotency_key=idempotency_key)
        except ThalovantAPIError as exc:
            if exc.status_code == 422 and connection_type is not None and _mentions_connection_type(exc):
                raise ThalovantUnsupportedConnectionTypeError(
                    f"The API does not support connection_type {connection_type!r}: {exc.detail or exc.message}",
                    status_code=exc.status_code,
                    code=exc.code,
                    detail=exc.detail,
                    problem=exc.problem,
                ) from None
            raise
        if connection_type is not None:
            echoed = client.get("spec", {}).get("connection_type") if isinstance(client.get("spec"), Mapping) else None
            if echoed != connection_type:
                client_id = client.get("id")
                if isinstance(client_id, str) and client_id:
                    etag = client.get("etag")
                    await self.delete_client(client_id, etag if isinstance(etag, str) and etag else None)
                raise ThalovantUnsupportedConnectionTypeError(
                    f"The API did not confirm connection_type {connection_type!r}; the new client was deleted."
                )

        flags, endpoints = hub_endpoints(hub_resource)
        selected: SelectedHubEndpoint | None = None
        for wanted in preferred_protocols:
            protocol = canonical_protocol(wanted)
            if protocol and flags.is_enabled(protocol) and endpoints.get(protocol):
                selected = SelectedHubEndpoint(protocol, endpoints[protocol])
                break

        initial = client.get("initial_identify")
        if isinstance(initial, Mapping):
            material = {k: v for k, v in initial.items() if k not in ("spec", "protocols", "network")}
            merged = dict(endpoints)
            for key, value in read_endpoints(initial).items():
                merged.setdefault(key, value)
            material["data_plane_endpoints"] = merged
            material["protocols"] = flags.as_dict()
        else:
            master: str | None = None
            if endpoints.get("https"):
                parts = urlsplit(endpoints["https"])
                master = f"{parts.scheme}://{parts.netloc}"
            elif _domain_host(hub_resource.get("domain")):
                master = f"https://{_domain_host(hub_resource.get('domain'))}"
            elif selected is not None:
                parts = urlsplit(selected.endpoint)
                master = f"{parts.scheme}://{parts.netloc}"
            if master is None:
                raise ThalovantAPIError("Hub resource does not expose a usable data-plane endpoint.")
            material = {
                "access_key": access_key,
                "password": password,
                "site_id": site,
                "default_master": master,
                "default_port": 443,
                "default_path": "",
                "data_plane_endpoints": endpoints,
                "protocols": flags.as_dict(),
            }
        identity = ThalovantIdentity.from_mapping(material)
        operation = client.get("operation")
        return BootstrapIdentityResult(
            identity=identity,
            hub=hub_resource,
            client=client,
            endpoint=selected,
            operation=dict(operation) if isinstance(operation, Mapping) and operation.get("id") else None,
        )


class ThalovantControlPlane(
    SyncTwin[AsyncThalovantControlPlane],
    twin_of=AsyncThalovantControlPlane,
    own=("aclose",),  # the async client's alias of close(); the sync one has close() only
):
    """The synchronous control-plane client: the methods of :class:`AsyncThalovantControlPlane`
    (generated from them), each run on a private event-loop thread (started on first use,
    stopped by :meth:`close` or the ``with`` block)."""

    _async: AsyncThalovantControlPlane

    def __init__(
        self,
        api_url: str | None = None,
        *,
        access_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        user_agent: str | None = None,
        verify: bool | str | ssl.SSLContext | None = None,
    ) -> None:
        self._async = AsyncThalovantControlPlane(
            api_url, access_token=access_token, timeout=timeout, user_agent=user_agent, verify=verify
        )
        self._loop: LoopThread | None = None

    def _target(self) -> tuple[LoopThread, AsyncThalovantControlPlane]:
        if self._loop is None:
            self._loop = LoopThread(name="thalovant-control-plane")
        return self._loop, self._async

    api_url = attribute[str]()
    access_token = attribute["str | None"](writable=True)
    token_id = attribute["str | None"]()
    timeout = attribute[float]()
    user_agent = attribute[str]()

    def __repr__(self) -> str:
        signed_in = "yes" if self.access_token else "no"
        return f"ThalovantControlPlane(api_url={self.api_url!r}, signed_in={signed_in})"

    def close(self) -> None:
        """Close the HTTP connections and stop the loop thread (the token is kept)."""
        if self._loop is not None:
            loop, self._loop = self._loop, None
            try:
                loop.run(self._async.close())
            finally:
                loop.stop()

    def __enter__(self) -> ThalovantControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None:
            loop.stop()

    request = blocking(AsyncThalovantControlPlane.request)
    login = blocking(AsyncThalovantControlPlane.login)
    get_profile = blocking(AsyncThalovantControlPlane.get_profile)
    revoke_api_token = blocking(AsyncThalovantControlPlane.revoke_api_token)
    list_public_hubs = blocking(AsyncThalovantControlPlane.list_public_hubs)
    get_public_hub = blocking(AsyncThalovantControlPlane.get_public_hub)
    list_hubs = blocking(AsyncThalovantControlPlane.list_hubs)
    get_hub = blocking(AsyncThalovantControlPlane.get_hub)
    create_hub = blocking(AsyncThalovantControlPlane.create_hub)
    update_hub = blocking(AsyncThalovantControlPlane.update_hub)
    delete_hub = blocking(AsyncThalovantControlPlane.delete_hub)
    create_client = blocking(AsyncThalovantControlPlane.create_client)
    get_client = blocking(AsyncThalovantControlPlane.get_client)
    list_clients = blocking(AsyncThalovantControlPlane.list_clients)
    delete_client = blocking(AsyncThalovantControlPlane.delete_client)
    create_client_identity = blocking(AsyncThalovantControlPlane.create_client_identity)

    # operations, hub skills, runtime groups, marketplace (thalovant.runtime_control)
    get_operation = blocking(AsyncThalovantControlPlane.get_operation)
    wait_for_operation = blocking(AsyncThalovantControlPlane.wait_for_operation)
    wait_for_admission = blocking(AsyncThalovantControlPlane.wait_for_admission)
    list_hub_skills = blocking(AsyncThalovantControlPlane.list_hub_skills)
    list_hub_skill_history = blocking(AsyncThalovantControlPlane.list_hub_skill_history)
    install_hub_skill = blocking(AsyncThalovantControlPlane.install_hub_skill)
    update_hub_skill = blocking(AsyncThalovantControlPlane.update_hub_skill)
    remove_hub_skill = blocking(AsyncThalovantControlPlane.remove_hub_skill)
    list_runtime_groups = blocking(AsyncThalovantControlPlane.list_runtime_groups)
    get_runtime_group = blocking(AsyncThalovantControlPlane.get_runtime_group)
    create_runtime_group = blocking(AsyncThalovantControlPlane.create_runtime_group)
    update_runtime_group = blocking(AsyncThalovantControlPlane.update_runtime_group)
    delete_runtime_group = blocking(AsyncThalovantControlPlane.delete_runtime_group)
    get_runtime_group_config = blocking(AsyncThalovantControlPlane.get_runtime_group_config)
    update_runtime_group_config = blocking(AsyncThalovantControlPlane.update_runtime_group_config)
    release_runtime_group = blocking(AsyncThalovantControlPlane.release_runtime_group)
    install_runtime_group_skill = blocking(AsyncThalovantControlPlane.install_runtime_group_skill)
    uninstall_runtime_group_skill = blocking(AsyncThalovantControlPlane.uninstall_runtime_group_skill)
    list_runtime_group_marketplace = blocking(AsyncThalovantControlPlane.list_runtime_group_marketplace)
    list_runtime_group_inventory = blocking(AsyncThalovantControlPlane.list_runtime_group_inventory)
    list_marketplace_skills = blocking(AsyncThalovantControlPlane.list_marketplace_skills)

    # sign-in, hub extras, memory and analytics (thalovant.signin, .hub_extras, .memory)
    require_runtime_protocol = HubExtraMethods.require_runtime_protocol
    begin_device_login = blocking(AsyncThalovantControlPlane.begin_device_login)
    poll_device_login = blocking(AsyncThalovantControlPlane.poll_device_login)
    describe_device_login = blocking(AsyncThalovantControlPlane.describe_device_login)
    login_with_browser = blocking(AsyncThalovantControlPlane.login_with_browser)
    complete_native_sign_in = blocking(AsyncThalovantControlPlane.complete_native_sign_in)
    release_hub = blocking(AsyncThalovantControlPlane.release_hub)
    set_hub_rating = blocking(AsyncThalovantControlPlane.set_hub_rating)
    clear_hub_rating = blocking(AsyncThalovantControlPlane.clear_hub_rating)
    get_hub_runtime_capabilities = blocking(AsyncThalovantControlPlane.get_hub_runtime_capabilities)
    list_memory_items = blocking(AsyncThalovantControlPlane.list_memory_items)
    get_memory_summary = blocking(AsyncThalovantControlPlane.get_memory_summary)
    create_memory_item = blocking(AsyncThalovantControlPlane.create_memory_item)
    get_memory_item = blocking(AsyncThalovantControlPlane.get_memory_item)
    update_memory_item = blocking(AsyncThalovantControlPlane.update_memory_item)
    delete_memory_item = blocking(AsyncThalovantControlPlane.delete_memory_item)
    get_analytics_overview = blocking(AsyncThalovantControlPlane.get_analytics_overview)
