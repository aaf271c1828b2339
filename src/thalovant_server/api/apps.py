"""Registered client applications: the app ids device and native sign-in accept.

A registered app has a name the sign-in pages show as verified, the scopes it may ask for, and
the redirect URIs native sign-in may send its code to. Two are built in (Home Assistant and the
Thalovant CLI); an operator registers more in ``DATA_DIR/apps.json``::

    [{"client_id": "kiosk-admin", "name": "Kiosk admin",
      "scopes": ["hubs:read", "clients:write"], "redirect_uris": ["https://kiosk.example/cb"]}]

Redirect URIs match exactly, except that a registered loopback URI (``http://127.0.0.1/...``
or ``http://[::1]/...`` without a port) matches that URI on any port (RFC 8252 7.3).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import Request

from thalovant_server.api.auth import ALL_SCOPES

__all__ = [
    "APPS_FILE",
    "BUILTIN_APPS",
    "DEVICE_DEFAULT_SCOPES",
    "AppRegistry",
    "RegisteredApp",
    "app_registry",
]

log = logging.getLogger(__name__)

APPS_FILE = "apps.json"
APP_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEVICE_DEFAULT_SCOPES = ("hubs:read", "clients:write")
_LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


@dataclass(frozen=True)
class RegisteredApp:
    """One registered application."""

    client_id: str
    name: str
    scopes: tuple[str, ...]
    redirect_uris: tuple[str, ...] = ()

    def allows_redirect(self, uri: str) -> bool:
        """Whether ``uri`` is one of this app's redirect URIs (loopback: any port)."""
        if uri in self.redirect_uris:
            return True
        parts = urlsplit(uri)
        if parts.scheme != "http" or parts.port is None or parts.username or parts.password:
            return False
        host = parts.netloc.rsplit(":", 1)[0]
        if host not in _LOOPBACK_HOSTS:
            return False
        portless = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
        return portless in self.redirect_uris


BUILTIN_APPS = (
    RegisteredApp(
        client_id="thalovant-home-assistant",
        name="Home Assistant",
        scopes=("hubs:read", "clients:read", "clients:write"),
        redirect_uris=("https://my.home-assistant.io/redirect/oauth",),
    ),
    RegisteredApp(
        client_id="thalovant-cli",
        name="Thalovant CLI",
        scopes=("hubs:read", "clients:read", "clients:write"),
        redirect_uris=("http://127.0.0.1/callback", "http://[::1]/callback"),
    ),
)


def _app_from(entry: Any) -> RegisteredApp:
    if not isinstance(entry, Mapping):
        raise ValueError("each app is an object")
    client_id = entry.get("client_id")
    name = entry.get("name")
    scopes = entry.get("scopes", list(ALL_SCOPES))
    redirects = entry.get("redirect_uris", [])
    if not isinstance(client_id, str) or not APP_ID.match(client_id):
        raise ValueError(f"client_id {client_id!r} must match {APP_ID.pattern}")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValueError(f"app {client_id}: name must be 1-200 characters")
    if not isinstance(scopes, list) or not scopes or any(s not in ALL_SCOPES for s in scopes):
        raise ValueError(f"app {client_id}: scopes must be a non-empty list of {list(ALL_SCOPES)}")
    if not isinstance(redirects, list) or not all(isinstance(u, str) for u in redirects):
        raise ValueError(f"app {client_id}: redirect_uris must be a list of URLs")
    for uri in redirects:
        parts = urlsplit(uri)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment or "@" in parts.netloc:
            raise ValueError(f"app {client_id}: {uri!r} is not an absolute http(s) URL without a fragment")
    return RegisteredApp(client_id, name.strip(), tuple(s for s in ALL_SCOPES if s in scopes), tuple(redirects))


class AppRegistry:
    """The registered apps of one server, by client id."""

    def __init__(self, apps: Iterable[RegisteredApp]) -> None:
        self._apps = {app.client_id: app for app in apps}

    @classmethod
    def load(cls, data_dir: Path) -> AppRegistry:
        """The built-in apps plus those of ``data_dir/apps.json`` (an unreadable file is logged
        and ignored; an entry that does not validate is skipped)."""
        apps = list(BUILTIN_APPS)
        path = data_dir / APPS_FILE
        if path.is_file():
            try:
                entries = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.error("%s is not readable JSON (%s); only the built-in apps are registered", path, exc)
                entries = []
            for entry in entries if isinstance(entries, list) else []:
                try:
                    apps.append(_app_from(entry))
                except ValueError as exc:
                    log.error("%s: %s; entry skipped", path, exc)
        return cls(apps)

    def get(self, client_id: str | None) -> RegisteredApp | None:
        return self._apps.get(client_id) if client_id else None

    @property
    def ids(self) -> list[str]:
        return sorted(self._apps)


def app_registry(request: Request) -> AppRegistry:
    registry: AppRegistry = request.app.state.apps
    return registry
