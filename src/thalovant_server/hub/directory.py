"""What the hub runtime needs from the store: hub keys and client credentials.

The control plane implements :class:`ClientDirectory` over the database; the runtime only
reads through it (and persists TOFU pins). Nothing here touches the per-message hot path:
lookups happen once per connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from thalovant.protocol.noise import KeyPair
from thalovant_server.hub.skill_guard import DEFAULT_SKILL_TIMEOUT

__all__ = [
    "ALLOW_ALL",
    "DEFAULT_ALLOWED_TYPES",
    "ClientCredentials",
    "ClientDirectory",
    "HubKeys",
    "is_type_allowed",
]

DEFAULT_ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        # asking: ask, send_utterance, send_action, send_code
        "recognizer_loop:utterance",
        # the guide's emit example
        "thalovant.client.status",
        # the speech loop family a voice client may report
        "recognizer_loop:record_begin",
        "recognizer_loop:record_end",
        "recognizer_loop:audio_output_start",
        "recognizer_loop:audio_output_end",
        "recognizer_loop:b64_transcribe",
        "speak",
        "speak:b64_audio",
        # intent and skill manifest queries (spec 6.7)
        "ovos.intent.list",
        "ovos.intent.describe",
        "ovos.skills.list",
        "intent.service.adapt.manifest.get",
        "intent.service.padatious.manifest.get",
    }
)
"""Bus types a new client identity may send when nothing narrower was asked for."""

ALLOW_ALL = "*"
"""An ``allowed_types`` entry that allows every bus type."""


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """One client identity as the data plane sees it.

    ``psk`` is the derived Noise pre-shared key (never the password); ``pinned_key`` the
    client's static key pinned on its first completed XX handshake, if any. An empty
    ``allowed_types`` means :data:`DEFAULT_ALLOWED_TYPES`; ``"*"`` in it allows every type.
    """

    client_id: str
    hub_id: str
    name: str
    site_id: str
    psk: bytes
    pinned_key: bytes | None
    allowed_types: frozenset[str]

    def __repr__(self) -> str:  # keep the PSK out of logs
        return f"ClientCredentials(client_id={self.client_id!r}, hub_id={self.hub_id!r}, name={self.name!r})"


@dataclass(frozen=True, slots=True)
class HubKeys:
    """A hub's stable identity and spec: node id, static key, skills, enabled protocols.

    ``skills`` are the hub spec's own skills and the active skills of its runtime group;
    ``skill_timeout`` bounds each async skill handler (the group's ``skills.timeout_seconds``);
    ``record_utterances`` says whether its owner turned utterance recording on (analytics).
    """

    hub_id: str
    node_id: str
    static: KeyPair
    skills: tuple[str, ...]
    protocols: tuple[str, ...]
    skill_timeout: float = DEFAULT_SKILL_TIMEOUT
    record_utterances: bool = False


class ClientDirectory(Protocol):
    """Store-backed lookups used by the carriers, once per connection."""

    async def find_client(self, hub_id: str, access_key: str) -> ClientCredentials | None:
        """The active client of ``hub_id`` with this access key, or ``None``."""
        ...

    async def find_client_by_id(self, hub_id: str, client_id: str) -> ClientCredentials | None:
        """The active client ``client_id`` of ``hub_id``, or ``None`` (MQTT: the topic names it)."""
        ...

    async def pin_client_key(self, client_id: str, key: bytes) -> None:
        """Persist the client's static key (TOFU, spec 3.9)."""
        ...

    async def load_hub(self, hub_id: str) -> HubKeys | None:
        """The hub's keys and spec, or ``None`` if there is no such (active) hub."""
        ...


def is_type_allowed(allowed: frozenset[str], msg_type: str) -> bool:
    """Whether a client with ``allowed`` may send bus messages of ``msg_type``."""
    if not allowed:
        return msg_type in DEFAULT_ALLOWED_TYPES
    return msg_type in allowed or ALLOW_ALL in allowed
