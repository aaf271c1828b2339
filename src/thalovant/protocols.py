"""Data-plane protocol names, protocol flags and endpoint normalisation (dataplane.md 1.1-1.3).

Shared by identities (``ThalovantIdentity``) and the control plane (hub resources).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from thalovant.events import DEFAULT_PROTOCOL_PREFERENCE

__all__ = [
    "DEFAULT_PROTOCOL_PREFERENCE",
    "ENDPOINT_SCHEMES",
    "PROTOCOLS",
    "HubProtocolSettings",
    "canonical_protocol",
    "normalize_endpoint",
    "parse_flag",
    "read_endpoints",
    "strip_userinfo",
]

PROTOCOLS = ("wss", "https", "mqtt")
ENDPOINT_SCHEMES = frozenset({"http", "https", "ws", "wss", "mqtt", "mqtts"})
_ALIASES = {
    "wss": "wss",
    "ws": "wss",
    "websocket": "wss",
    "https": "https",
    "http": "https",
    "mqtt": "mqtt",
    "mqtts": "mqtt",
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def canonical_protocol(protocol: str) -> str | None:
    """``wss``, ``https`` or ``mqtt`` for a protocol name or alias; None when unknown."""
    if not isinstance(protocol, str):
        return None
    return _ALIASES.get(protocol.strip().lower())


def parse_flag(value: Any) -> bool | None:
    """A protocol flag: a bool, a bool-string, or a mapping with ``enabled``; None when the
    value says nothing usable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return None
    if isinstance(value, Mapping):
        return parse_flag(value.get("enabled"))
    return None


def normalize_endpoint(value: Any) -> str | None:
    """An endpoint URL trimmed of whitespace and trailing ``/``; a mapping gives its
    ``endpoint``/``broker_url``/``brokerUrl``. A URL with a scheme outside http, https, ws,
    wss, mqtt, mqtts, or without a host, is dropped (None)."""
    if isinstance(value, Mapping):
        for key in ("endpoint", "broker_url", "brokerUrl"):
            if isinstance(value.get(key), str):
                return normalize_endpoint(value[key])
        return None
    if not isinstance(value, str):
        return None
    raw = value.strip()
    text = raw.rstrip("/")
    if not text:
        return None
    if "://" in raw:
        try:
            parts = urlsplit(text)
        except ValueError:
            return None
        if parts.scheme.lower() not in ENDPOINT_SCHEMES or not parts.hostname:
            return None
    return text


def read_endpoints(source: Mapping[str, Any]) -> dict[str, str]:
    """The ``https``/``wss``/``mqtt`` endpoints of a mapping: from its ``data_plane_endpoints``
    (or ``dataPlaneEndpoints``, ``endpoints``) mapping, else from its own top level."""
    container: Mapping[str, Any] = source
    for key in ("data_plane_endpoints", "dataPlaneEndpoints", "endpoints"):
        found = source.get(key)
        if isinstance(found, Mapping):
            container = found
            break
    result: dict[str, str] = {}
    for protocol, keys in (("https", ("https", "http")), ("wss", ("wss", "ws")), ("mqtt", ("mqtt", "mqtts"))):
        for key in keys:
            if key in container and container[key] is not None:
                endpoint = normalize_endpoint(container[key])
                if endpoint:
                    result[protocol] = endpoint
                break
    return result


def strip_userinfo(url: str) -> str:
    """The URL without ``user:password@`` in its authority."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    authority, sep, tail = rest.partition("/")
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    return f"{scheme}://{authority}{sep}{tail}"


@dataclass(frozen=True)
class HubProtocolSettings:
    """Which carriers a hub (or an identity) enables. Defaults: wss on, http off, mqtt off."""

    wss: bool = True
    http: bool = False
    mqtt: bool = False

    @classmethod
    def from_mapping(cls, source: Mapping[str, Any] | None) -> HubProtocolSettings:
        """Read ``spec.protocols`` (else ``spec.network``) when a ``spec`` mapping exists,
        else the top-level ``protocols`` (else ``network``). A non-empty ``protocols`` wins."""
        if not isinstance(source, Mapping):
            return cls()
        holder: Mapping[str, Any] = source
        if isinstance(source.get("spec"), Mapping):
            holder = source["spec"]
        flags: Mapping[str, Any] | None = None
        for key in ("protocols", "network"):
            candidate = holder.get(key)
            if isinstance(candidate, Mapping) and candidate:
                flags = candidate
                break
        if flags is None:
            return cls()
        values = {"wss": True, "http": False, "mqtt": False}
        for name, keys in (("wss", ("wss", "websocket")), ("http", ("http", "https")), ("mqtt", ("mqtt",))):
            for key in keys:
                if key in flags:
                    parsed = parse_flag(flags[key])
                    if parsed is not None:
                        values[name] = parsed
                    break
        return cls(wss=values["wss"], http=values["http"], mqtt=values["mqtt"])

    def is_enabled(self, protocol: str) -> bool:
        name = canonical_protocol(protocol)
        if name == "wss":
            return self.wss
        if name == "https":
            return self.http
        if name == "mqtt":
            return self.mqtt
        return False

    def enabled(self) -> list[str]:
        """The enabled protocols in the fixed order wss, https, mqtt."""
        return [protocol for protocol in PROTOCOLS if self.is_enabled(protocol)]

    def as_dict(self) -> dict[str, dict[str, bool]]:
        return {"wss": {"enabled": self.wss}, "http": {"enabled": self.http}, "mqtt": {"enabled": self.mqtt}}
