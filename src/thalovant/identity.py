"""Client identity material (dataplane.md 1.1-1.5): what a client needs to reach its hub.

An identity is a JSON object with an access key, a password, a site id, the hub's address and
optionally endpoints per carrier, protocol flags, MQTT broker credentials and metadata. Load it
with :meth:`ThalovantIdentity.from_mapping`, :meth:`~ThalovantIdentity.from_file`,
:meth:`~ThalovantIdentity.from_config` or :meth:`~ThalovantIdentity.from_env`; write it with
:meth:`~ThalovantIdentity.save` (0600, atomic). ``repr`` and ``as_dict()`` hide every secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from thalovant.config import (
    default_config_path,
    load_config_document,
    read_private_text,
    select_identity_mapping,
)
from thalovant.errors import ThalovantIdentityError, ThalovantUnsupportedProtocolError
from thalovant.files import write_private
from thalovant.protocols import (
    HubProtocolSettings,
    canonical_protocol,
    normalize_endpoint,
    parse_flag,
    read_endpoints,
    strip_userinfo,
)

__all__ = ["DEFAULT_PORT", "MqttBrokerCredentials", "ThalovantIdentity", "is_secret_key", "redact_secrets"]

DEFAULT_PORT = 5679
REDACTED = "<redacted>"

_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "authorization",
    "cryptokey",
    "initialidentify",
)


def is_secret_key(name: str) -> bool:
    """True for a key name that looks like it holds a secret (``apiKey``, ``db_password``...).
    Reference keys (``apiKeyRef``) are not secrets."""
    normalised = name.lower().replace("_", "").replace("-", "")
    if normalised.endswith("ref") or normalised.endswith("refs"):
        return False
    return any(word in normalised for word in _SECRET_WORDS)


def redact_secrets(value: Any) -> Any:
    """A deep copy of ``value`` with the values of secret-looking keys replaced by
    ``"<redacted>"``."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact_secrets(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_secrets(item) for item in value]
    return value


def _first(source: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in source and source[key] is not None:
            return source[key]
    return None


def _required_text(source: Mapping[str, Any], keys: tuple[str, ...], what: str, *, strip: bool = True) -> str:
    value = _first(source, keys)
    if value is None:
        aliases = f" (also accepted: {', '.join(keys[1:])})" if len(keys) > 1 else ""
        raise ThalovantIdentityError(f"The identity is missing {keys[0]}{aliases}.")
    if not isinstance(value, str):
        raise ThalovantIdentityError(f"The identity's {what} must be a string.")
    text = value.strip() if strip else value
    if not text:
        raise ThalovantIdentityError(f"The identity's {what} is empty.")
    return text


def _port(value: Any, what: str = "default_port") -> int:
    if isinstance(value, bool):
        raise ThalovantIdentityError(f"The identity's {what} must be an integer, not a boolean.")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ThalovantIdentityError(f"The identity's {what} must be an integer, got {value!r}.") from None
    if isinstance(value, float) and not value.is_integer():
        raise ThalovantIdentityError(f"The identity's {what} must be an integer, got {value!r}.")
    if not 0 <= port <= 65535:
        raise ThalovantIdentityError(f"The identity's {what} must be between 0 and 65535, got {port}.")
    return port


def _normalise_path(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ThalovantIdentityError("The identity's default_path must be a string.")
    parts = [part for part in value.strip().split("/") if part]
    return "/" + "/".join(parts) if parts else ""


def _authority_has_port(url: str) -> bool:
    """The naive check of dataplane.md 1.2: any ``:`` in the host part (after userinfo)."""
    rest = url.split("://", 1)[1] if "://" in url else url
    authority = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return ":" in authority


def _with_port(url: str, port: int) -> str:
    if _authority_has_port(url):
        return url
    if "://" in url:
        scheme, rest = url.split("://", 1)
    else:
        scheme, rest = "", url
    authority, sep, tail = rest.partition("/")
    joined = f"{authority}:{port}{sep}{tail}"
    return f"{scheme}://{joined}" if scheme else joined


# ---------------------------------------------------------------------------- MQTT


@dataclass(frozen=True, repr=False)
class MqttBrokerCredentials(Mapping[str, Any]):
    """Client-scoped MQTT broker credentials (dataplane.md 1.4).

    Attribute and mapping access both work: ``identity.mqtt.host`` and
    ``identity.mqtt["host"]``; ``host`` and ``port`` come from the endpoint URL (port 8883 for
    TLS, else 1883, when the URL names none).
    """

    endpoint: str
    username: str
    password: str
    topic_prefix: str | None = None
    qos: int = 1
    tls: bool = False

    @classmethod
    def from_mapping(cls, source: Any) -> MqttBrokerCredentials | None:
        """The block, or None when endpoint, username or password is missing."""
        if not isinstance(source, Mapping):
            return None
        endpoint = normalize_endpoint(_first(source, ("endpoint", "broker_url", "brokerUrl")))
        username = _first(source, ("username", "broker_username", "brokerUsername"))
        password = _first(source, ("password", "broker_password", "brokerPassword"))
        if (
            not endpoint
            or not isinstance(username, str)
            or not username
            or not isinstance(password, str)
            or not password
        ):
            return None
        prefix = _first(source, ("topic_prefix", "topicPrefix"))
        qos_raw = source.get("qos")
        qos = qos_raw if isinstance(qos_raw, int) and not isinstance(qos_raw, bool) and qos_raw in (0, 1) else 1
        if isinstance(qos_raw, str) and qos_raw.strip() in ("0", "1"):
            qos = int(qos_raw.strip())
        tls_flag = parse_flag(source.get("tls")) if "tls" in source else None
        tls = tls_flag if tls_flag is not None else endpoint.lower().startswith("mqtts://")
        return cls(
            endpoint=endpoint,
            username=username,
            password=password,
            topic_prefix=prefix.strip().rstrip("/") if isinstance(prefix, str) and prefix.strip() else None,
            qos=qos,
            tls=tls,
        )

    @property
    def host(self) -> str:
        parts = urlsplit(self.endpoint if "://" in self.endpoint else f"mqtt://{self.endpoint}")
        return parts.hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.endpoint if "://" in self.endpoint else f"mqtt://{self.endpoint}")
        try:
            explicit = parts.port
        except ValueError:
            explicit = None
        if explicit:
            return explicit
        return 8883 if self.tls or parts.scheme.lower() == "mqtts" else 1883

    _KEYS = ("endpoint", "host", "port", "username", "password", "topic_prefix", "qos", "tls")

    def __getitem__(self, key: str) -> Any:
        if key not in self._KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def as_dict(self, include_secrets: bool = False) -> dict[str, Any]:
        """The identity-file form; without secrets only ``endpoint`` (no userinfo) and ``tls``."""
        if not include_secrets:
            return {"endpoint": strip_userinfo(self.endpoint), "tls": self.tls}
        result: dict[str, Any] = {
            "endpoint": self.endpoint,
            "tls": self.tls,
            "username": self.username,
            "password": self.password,
        }
        if self.topic_prefix:
            result["topic_prefix"] = self.topic_prefix
        if self.qos != 1:
            result["qos"] = self.qos
        return result

    def __repr__(self) -> str:
        return f"MqttBrokerCredentials(endpoint={strip_userinfo(self.endpoint)!r}, tls={self.tls}, qos={self.qos})"


# ---------------------------------------------------------------------------- identity


@dataclass(repr=False)
class ThalovantIdentity:
    """A client's identity on one hub. See the module docstring and dataplane.md 1.1."""

    access_key: str
    password: str
    site_id: str
    default_master: str
    default_port: int = DEFAULT_PORT
    default_path: str = ""
    data_plane_endpoints: dict[str, str] = field(default_factory=dict)
    protocols: HubProtocolSettings = field(default_factory=HubProtocolSettings)
    mqtt: MqttBrokerCredentials | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source_path: Path | None = None

    # -- loading

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, source_path: str | os.PathLike[str] | None = None
    ) -> ThalovantIdentity:
        """Build an identity from a mapping, accepting the aliases of dataplane.md 1.1."""
        if not isinstance(data, Mapping):
            raise ThalovantIdentityError("Identity material must be a JSON object (a mapping).")
        access_key = _required_text(data, ("access_key", "key", "api_key", "apiKey"), "access key")
        password = _required_text(data, ("password",), "password", strip=False)
        master = _required_text(
            data,
            ("default_master", "defaultMaster", "host", "hub_http_host", "hubHttpHost", "master"),
            "default_master",
        ).rstrip("/")
        if not master:
            raise ThalovantIdentityError("The identity's default_master is empty.")
        site_id = _required_text(data, ("site_id", "siteId", "site", "client_id", "clientId"), "site id")
        port_value = _first(data, ("default_port", "port", "hub_http_port"))
        port = DEFAULT_PORT if port_value is None else _port(port_value)
        path = _normalise_path(_first(data, ("default_path", "defaultPath", "hub_http_path", "path", "uri_path")))
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ThalovantIdentityError("The identity's metadata must be a mapping.")
        return cls(
            access_key=access_key,
            password=password,
            site_id=site_id,
            default_master=master,
            default_port=port,
            default_path=path,
            data_plane_endpoints=read_endpoints(data),
            protocols=HubProtocolSettings.from_mapping(data),
            mqtt=MqttBrokerCredentials.from_mapping(data.get("mqtt")),
            metadata=dict(metadata or {}),
            source_path=Path(source_path).absolute() if source_path is not None else None,
        )

    @classmethod
    def from_json(cls, text: str) -> ThalovantIdentity:
        """Parse identity JSON text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ThalovantIdentityError(f"Identity JSON is not valid: {exc.msg} at line {exc.lineno}.") from None
        if not isinstance(data, Mapping):
            raise ThalovantIdentityError("Identity JSON must be an object.")
        return cls.from_mapping(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ThalovantIdentity:
        """Read an identity JSON file; it must be private (0600), see dataplane.md 1.5."""
        target = Path(path).expanduser()
        text = read_private_text(target)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ThalovantIdentityError(f"{target} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
        if not isinstance(data, Mapping):
            raise ThalovantIdentityError(f"{target} must hold a JSON object.")
        return cls.from_mapping(data, source_path=target)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, profile: str | None = None) -> ThalovantIdentity:
        """Read the identity of a profile from the YAML config file (default path:
        :func:`thalovant.config.default_config_path`)."""
        target = Path(path).expanduser() if path is not None else default_config_path()
        if not target.exists():
            raise ThalovantIdentityError(
                f"No Thalovant config file at {target}. Create it (mode 0600) or pass path=..."
            )
        document = load_config_document(target)
        mapping = select_identity_mapping(document, profile, where=f"config file {target}")
        return cls.from_mapping(mapping, source_path=target)

    @classmethod
    def from_env(cls, prefix: str = "THALOVANT_", environ: Mapping[str, str] | None = None) -> ThalovantIdentity:
        """Build an identity from ``<prefix>*`` environment variables (dataplane.md 1.5)."""
        env = os.environ if environ is None else environ

        def get(*names: str) -> str | None:
            for name in names:
                value = env.get(prefix + name)
                if value is not None and value.strip():
                    return value.strip()
            return None

        data: dict[str, Any] = {}
        for key, names in (
            ("access_key", ("ACCESS_KEY",)),
            ("password", ("PASSWORD",)),
            ("site_id", ("SITE_ID",)),
            ("default_master", ("HUB_HTTP_HOST", "DEFAULT_MASTER")),
            ("default_port", ("HUB_HTTP_PORT", "DEFAULT_PORT")),
            ("default_path", ("HUB_HTTP_PATH", "DEFAULT_PATH")),
        ):
            value = get(*names)
            if value is not None:
                data[key] = value
        missing = [
            prefix + name
            for key, name in (
                ("access_key", "ACCESS_KEY"),
                ("password", "PASSWORD"),
                ("site_id", "SITE_ID"),
                ("default_master", "HUB_HTTP_HOST"),
            )
            if key not in data
        ]
        if missing:
            raise ThalovantIdentityError(
                "No identity in the environment: set " + ", ".join(missing) + " (or pass an identity file)."
            )
        endpoints: dict[str, str] = {}
        for key, names in (
            ("https", ("HUB_HTTPS_HOST", "HUB_HTTP_HOST")),
            ("wss", ("HUB_WSS_HOST", "HUB_WEBSOCKET_HOST")),
            ("mqtt", ("HUB_MQTT_HOST",)),
        ):
            value = get(*names)
            if value is not None:
                endpoints[key] = value
        if endpoints:
            data["data_plane_endpoints"] = endpoints
        mqtt = {
            "endpoint": get("MQTT_ENDPOINT", "HUB_MQTT_HOST"),
            "username": get("MQTT_USERNAME"),
            "password": get("MQTT_PASSWORD"),
            "topic_prefix": get("MQTT_TOPIC_PREFIX"),
            "qos": get("MQTT_QOS"),
        }
        if any(mqtt.values()):
            data["mqtt"] = {k: v for k, v in mqtt.items() if v is not None}
        return cls.from_mapping(data)

    # -- protocols and endpoints

    def enabled_protocols(self) -> list[str]:
        """The enabled protocols, in the order wss, https, mqtt."""
        return self.protocols.enabled()

    def supports_protocol(self, protocol: str) -> bool:
        """The protocol's flag (``https`` and ``http`` share one)."""
        return self.protocols.is_enabled(protocol)

    def endpoint_base(self) -> str:
        """The HTTPS base (never empty), with the port rule of dataplane.md 1.2: the https
        endpoint with ``default_port`` when it names no port; else ``default_master`` (ws
        schemes rewritten to http ones) with the port and ``default_path``."""
        https = self.data_plane_endpoints.get("https")
        if https:
            return _with_port(https, self.default_port)
        master = self.default_master
        lowered = master.lower()
        if lowered.startswith("wss://"):
            master = "https://" + master[6:]
        elif lowered.startswith("ws://"):
            master = "http://" + master[5:]
        elif "://" not in master:
            master = "https://" + master
        return _with_port(master, self.default_port) + self.default_path

    def endpoint_for(self, protocol: str) -> str | None:
        """The endpoint for ``wss``, ``https`` (aliases ``ws``, ``http``) or ``mqtt``; None when
        the identity has none for it."""
        name = canonical_protocol(protocol)
        if name == "https":
            return self.endpoint_base()
        if name == "wss":
            wss = self.data_plane_endpoints.get("wss")
            if wss:
                return wss
            if self.default_master.lower().startswith(("wss://", "ws://")):
                return self.default_master
            return None
        if name == "mqtt":
            return self.data_plane_endpoints.get("mqtt")
        raise ThalovantUnsupportedProtocolError(f"Unknown protocol {protocol!r}; use one of wss, https, mqtt.")

    # -- output

    def as_dict(self, include_secrets: bool = False) -> dict[str, Any]:
        """The identity-file form. Without ``include_secrets`` the access key, the password,
        the MQTT credentials and URL userinfo are left out and secret-looking metadata values
        read ``"<redacted>"``."""

        def url(value: str) -> str:
            return value if include_secrets else strip_userinfo(value)

        result: dict[str, Any] = {
            "site_id": self.site_id,
            "default_master": url(self.default_master),
            "default_port": self.default_port,
            "default_path": self.default_path,
        }
        if self.data_plane_endpoints:
            result["data_plane_endpoints"] = {k: url(v) for k, v in self.data_plane_endpoints.items()}
        if include_secrets:
            result["access_key"] = self.access_key
            result["password"] = self.password
        if self.mqtt is not None:
            result["mqtt"] = self.mqtt.as_dict(include_secrets)
        result["protocols"] = self.protocols.as_dict()
        if self.metadata:
            result["metadata"] = dict(self.metadata) if include_secrets else redact_secrets(self.metadata)
        return result

    def to_json(self, include_secrets: bool = False) -> str:
        return json.dumps(self.as_dict(include_secrets), indent=2, sort_keys=False) + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the identity file (with secrets) atomically, mode 0600; returns the path and
        sets :attr:`source_path` to it."""
        target = Path(path).expanduser()
        directory = target.parent if str(target.parent) else Path(".")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            write_private(target, self.to_json(include_secrets=True))
        except OSError as exc:
            raise ThalovantIdentityError(f"Cannot write {target}: {exc.strerror or exc}.") from None
        self.source_path = target.absolute()
        return target

    def __repr__(self) -> str:
        endpoints = {k: strip_userinfo(v) for k, v in self.data_plane_endpoints.items()}
        return (
            f"ThalovantIdentity(site_id={self.site_id!r}, default_master={strip_userinfo(self.default_master)!r}, "
            f"default_port={self.default_port}, endpoints={endpoints!r}, protocols={self.enabled_protocols()!r}, "
            f"mqtt={'yes' if self.mqtt else 'no'}, access_key=<redacted>, password=<redacted>)"
        )

    __str__ = __repr__
