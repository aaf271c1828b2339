"""The resource limits of one server: what no client (or crowd of clients) can exceed.

Every limit has a default and a ``THALOVANT_*`` variable. They are enforced in one place each:

- connections (:mod:`thalovant_server.listener`): a TLS handshake must finish within
  ``tls_handshake_timeout`` and a request head arrive within ``request_head_timeout``; at most
  ``max_connections`` connections are open at once (further ones are closed on arrival); a
  WebSocket message larger than ``ws_max_message`` is refused before it is buffered, and a
  WebSocket peer that answers no ping for two ``ws_ping_interval`` periods is dropped;
- the API (:mod:`thalovant_server.api.request_limits`): a ``/v1`` body of at most ``api_max_body``
  bytes, at most ``api_max_concurrency`` ``/v1`` requests in progress (then 503 with
  ``Retry-After``); a hub ``spec`` is at most ``MAX_SPEC_BYTES`` as JSON
  (:mod:`thalovant_server.store.hub_spec`);
- MQTT (:mod:`thalovant_server.mqtt`): ``mqtt_max_packet``, ``mqtt_max_connections``,
  ``mqtt_max_inflight`` and ``mqtt_connect_timeout`` on both brokers.

At start the process's open-file limit is raised to its hard limit (:func:`raise_file_limit`),
and ``max_connections`` is lowered to fit what that limit leaves.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: a Noise negotiation text is at most 262144 characters; a transport message at most 65535 bytes
PROTOCOL_MAX_WS_MESSAGE = 262144 + 1024
#: file descriptors kept for the database, logs, the broker and the store when sizing connections
RESERVED_FILES = 256


@dataclass(frozen=True)
class Limits:
    tls_handshake_timeout: float = 5.0
    request_head_timeout: float = 5.0
    max_connections: int = 8192
    ws_max_message: int = PROTOCOL_MAX_WS_MESSAGE
    ws_ping_interval: float = 20.0
    api_max_body: int = 1024 * 1024
    api_max_concurrency: int = 64
    mqtt_max_packet: int = 256 * 1024
    mqtt_max_connections: int = 8192
    mqtt_max_inflight: int = 20
    mqtt_connect_timeout: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, each overridden by ``THALOVANT_<NAME>`` (e.g. ``THALOVANT_MAX_CONNECTIONS``)."""
        env = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for item in dataclasses.fields(cls):
            raw = env.get(f"THALOVANT_{item.name.upper()}")
            if raw is None or not raw.strip():
                continue
            kind = float if item.type in ("float", float) else int
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"THALOVANT_{item.name.upper()} must be a number, got {raw!r}") from None
            if value <= 0:
                raise ValueError(f"THALOVANT_{item.name.upper()} must be positive, got {raw!r}")
            values[item.name] = value
        return cls(**values)  # type: ignore[arg-type]

    def fitted_to(self, open_files: int | None) -> Limits:
        """These limits with ``max_connections`` lowered to what ``open_files`` leaves."""
        if open_files is None:
            return self
        room = max(open_files - RESERVED_FILES, 16)
        if room >= self.max_connections:
            return self
        log.warning("open-file limit %d allows %d connections (configured %d)", open_files, room, self.max_connections)
        return dataclasses.replace(self, max_connections=room)


def raise_file_limit() -> int | None:
    """Raise this process's soft open-file limit to its hard limit; the soft limit in force
    afterwards (``None`` where the platform has no such limit)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return None if soft == resource.RLIM_INFINITY else int(soft)
