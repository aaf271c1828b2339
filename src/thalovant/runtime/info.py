"""``connection_info()``: what the client knows about its link, without asking the hub (spec 9)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PHASES = ("idle", "connecting", "handshake", "ready", "closed", "error")


def redact_error(message: str | None) -> str | None:
    """Cut everything after ``?`` (URLs carry the credential in their query)."""
    if message is None:
        return None
    return message.split("?", 1)[0]


@dataclass(frozen=True)
class ThalovantConnectionInfo:
    """A snapshot of the client's connection; timings in milliseconds, times in UTC ISO."""

    phase: str
    protocol: str
    endpoint: str | None
    session_id: str | None
    noise_pattern: str | None
    started_at: str | None
    connected_at: str | None
    transport_open_ms: float | None
    socket_open_ms: float | None
    handshake_ms: float | None
    connect_ms: float | None
    attempts: int
    reconnects: int
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
