"""The hub runtime's view of the store (``thalovant_server.hub.directory.ClientDirectory``).

Lookups run once per connection, never per message. Access keys are matched by SHA-256;
the PSK comes from the row (derived at provisioning), so nothing CPU-heavy happens here.
MQTT broker passwords are checked with :func:`thalovant_server.mqtt.credentials.verify_password`:
the Mosquitto ``$7$`` PBKDF2 hashes provisioning stores, and the bare SHA-256 digests of rows
written before migration ``0002`` (still accepted here and by the embedded broker).
"""

from __future__ import annotations

from dataclasses import dataclass

from thalovant.protocol.noise import KeyPair
from thalovant_server.hub.activity import records_utterances
from thalovant_server.hub.directory import ClientCredentials, HubKeys
from thalovant_server.hub.skill_guard import clamp_timeout
from thalovant_server.mqtt.credentials import verify_password
from thalovant_server.secrets import sha256_hex
from thalovant_server.store import clients, hubs, runtime_groups
from thalovant_server.store.engine import Store
from thalovant_server.store.hub_spec import enabled_protocols
from thalovant_server.store.models import Client


@dataclass(frozen=True, slots=True)
class MqttAccount:
    """An MQTT broker login of one client identity: it may use ``topic_prefix``/# only."""

    client_id: str
    hub_id: str
    username: str
    topic_prefix: str


def credentials_of(client: Client) -> ClientCredentials:
    """The data plane's view of a client row (the PSK, never a password)."""
    return ClientCredentials(
        client_id=client.id,
        hub_id=client.hub_id,
        name=client.name,
        site_id=client.site_id,
        psk=bytes(client.psk),
        pinned_key=bytes(client.pinned_client_key) if client.pinned_client_key is not None else None,
        allowed_types=frozenset(client.allowed_types),
    )


class StoreDirectory:
    """``ClientDirectory`` and ``load_hub`` over the database, plus the MQTT login check."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def find_client(self, hub_id: str, access_key: str) -> ClientCredentials | None:
        """The active client of ``hub_id`` with this access key, or None."""
        if not access_key:
            return None
        async with self._store.session() as session:
            client = await clients.client_by_access_key_hash(session, sha256_hex(access_key))
        if client is None or not client.active or client.hub_id != hub_id:
            return None
        return credentials_of(client)

    async def find_client_by_id(self, hub_id: str, client_id: str) -> ClientCredentials | None:
        """The active client ``client_id`` of ``hub_id``, or None (an MQTT topic prefix names it)."""
        if not client_id:
            return None
        async with self._store.session() as session:
            client = await clients.client_by_id(session, client_id)
        if client is None or not client.active or client.hub_id != hub_id:
            return None
        return credentials_of(client)

    async def pin_client_key(self, client_id: str, key: bytes) -> None:
        async with self._store.session() as session:
            await clients.pin_client_key(session, client_id, key)

    async def load_hub(self, hub_id: str) -> HubKeys | None:
        """The active hub's keys; ``protocols`` names the enabled ones among wss, http, mqtt.

        Its skills are its spec's own, then its runtime group's live ones; the group's config
        gives the skill timeout (``skills.timeout_seconds``).
        """
        async with self._store.session() as session:
            hub = await hubs.hub_by_id(session, hub_id)
            if hub is None or not hub.active:
                return None
            skills = [str(s) for s in hub.spec.get("skills") or []]
            timeout = clamp_timeout(None)
            group = await runtime_groups.group_of_hub(session, hub)
            if group is not None:
                skills.extend(await runtime_groups.runtime_skill_names(session, group.id))
                settings = group.config.get("skills")
                if isinstance(settings, dict):
                    timeout = clamp_timeout(settings.get("timeout_seconds"))
        flags = enabled_protocols(hub.spec)
        return HubKeys(
            hub_id=hub.id,
            node_id=hub.node_id,
            static=KeyPair.from_private(bytes(hub.noise_private_key)),
            skills=tuple(dict.fromkeys(skills)),
            protocols=tuple(name for name, enabled in flags.items() if enabled),
            skill_timeout=timeout,
            record_utterances=records_utterances(hub.spec),
        )

    async def find_mqtt_client(self, username: str, password: str) -> MqttAccount | None:
        """The client whose broker credentials these are (active client of an active hub)."""
        if not username or not password:
            return None
        async with self._store.session() as session:
            client = await clients.client_by_mqtt_username(session, username)
            if client is None or not client.active or client.mqtt_password_hash is None:
                return None
            if not verify_password(password, client.mqtt_password_hash):
                return None
            hub = await hubs.hub_by_id(session, client.hub_id)
            if hub is None or not hub.active or client.mqtt_topic_prefix is None:
                return None
            return MqttAccount(
                client_id=client.id,
                hub_id=client.hub_id,
                username=username,
                topic_prefix=client.mqtt_topic_prefix,
            )
