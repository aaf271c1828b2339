"""Client provisioning: mint or accept credentials, derive the PSK off-loop, build the identity.

The client password is used once, to derive the PSK (argon2id, 64 MiB) in a worker thread
under a small semaphore, and is never stored; the PSK is stored sealed with the server key.
The access key is stored as its SHA-256. The answer's ``initial_identify`` is the only place
the plaintext credentials ever appear.

MQTT. When the hub enables MQTT and the server runs a broker (``config.mqtt_enabled``), the
client also gets broker credentials from
:func:`thalovant_server.mqtt.credentials.issue_client_credentials`: username ``c_<client id>``,
topic prefix ``thalovant/<hub-id>/<client-id>``, a random password stored as Mosquitto's ``$7$``
PBKDF2 hash. With the broker ``off`` no MQTT credentials are minted and ``initial_identify`` has
no ``mqtt`` block. Adding the account to the running broker is the caller's job, after the commit
(:mod:`thalovant_server.api.broker_accounts`).
"""

from __future__ import annotations

import asyncio
import re
import secrets as _random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from thalovant.protocol.psk import derive_psk
from thalovant_server.api.problems import is_secret_key
from thalovant_server.api.state import ControlPlane
from thalovant_server.api.views import client_view, data_plane_endpoints, hub_protocols, mqtt_endpoint
from thalovant_server.mqtt.credentials import MqttCredentials, issue_client_credentials
from thalovant_server.secrets import CLIENT_PASSWORD_RULE, new_client_secret, password_weakness, sha256_hex
from thalovant_server.store import clients
from thalovant_server.store.models import Client, Hub
from thalovant_server.store.sealed import seal_psk

CONNECTION_TYPES = ("voice_satellite", "web_chat", "developer", "embedded", "home_assistant")
RESERVED_SPEC_KEYS = frozenset({"apiKey", "password", "siteId", "connection_type", "allowed_types"})
MESSAGE_TYPE = re.compile(r"^(?:\*|[A-Za-z0-9_.:-]{1,128})$")


class ProvisioningError(ValueError):
    """The request cannot be provisioned; ``field`` names the offending spec path."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def clean_site_id(raw: str | None) -> str:
    """The SDK's site id rule: trimmed, ``_`` to ``-``, whitespace runs to ``-``; never empty."""
    text = re.sub(r"\s+", "-", (raw or "").strip().replace("_", "-"))
    return text or f"thalovant-client-{_random.token_hex(4)}"


@dataclass(frozen=True)
class ClientRequest:
    """What a new client identity is made of (secrets minted when absent)."""

    name: str
    site_id: str | None = None
    access_key: str | None = None
    password: str | None = None
    connection_type: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    active: bool = True


@dataclass(frozen=True)
class Provisioned:
    client: Client
    body: dict[str, Any]


def _allowed_types(extras: Mapping[str, Any]) -> tuple[str, ...]:
    raw = extras.get("allowed_types")
    if raw is None:
        return ()  # the hub runtime's default set
    if not isinstance(raw, list) or not all(isinstance(t, str) and MESSAGE_TYPE.match(t) for t in raw):
        raise ProvisioningError("spec.allowed_types must be a list of message types", "spec.allowed_types")
    return tuple(dict.fromkeys(raw))


def validate_connection_type(value: str | None) -> None:
    if value is not None and value not in CONNECTION_TYPES:
        raise ProvisioningError(f"{value!r} is not one of {list(CONNECTION_TYPES)}", "spec.connection_type")


def validate_client_password(password: str | None) -> None:
    """A caller-chosen client password must be strong (:data:`~thalovant_server.secrets.CLIENT_PASSWORD_RULE`)."""
    if password is None:
        return
    weakness = password_weakness(password, CLIENT_PASSWORD_RULE)
    if weakness is not None:
        raise ProvisioningError(f"spec.password {weakness}", "spec.password")


def initial_identify(
    plane: ControlPlane,
    hub: Hub,
    client: Client,
    *,
    access_key: str,
    password: str,
    mqtt: MqttCredentials | None,
) -> dict[str, Any]:
    """The one-time identity: same shape as an identity file (``--out``).

    ``mqtt`` are the freshly issued broker credentials (their plaintext password goes into the
    ``mqtt`` block, which appears only when the hub serves MQTT).
    """
    config = plane.config
    flags = hub_protocols(hub, config)
    identity: dict[str, Any] = {
        "access_key": access_key,
        "password": password,
        "site_id": client.site_id,
        "default_master": f"https://{config.host_for_url}",
        "default_port": config.advertised_port,
        "default_path": f"/hubs/{hub.id}",
        "data_plane_endpoints": data_plane_endpoints(hub, config),
        "protocols": {"wss": flags["wss"], "https": flags["http"], "mqtt": flags["mqtt"]},
        "hub_id": hub.id,
        "client_id": client.id,
    }
    if flags["mqtt"] and mqtt is not None:
        identity["mqtt"] = mqtt.identity_block(mqtt_endpoint(config))
    return identity


async def derive_psk_off_loop(plane: ControlPlane, password: str, node_id: str) -> bytes:
    """argon2id in a worker thread, at most ``psk_concurrency`` at a time (64 MiB each)."""
    async with plane.argon2_slots:
        return await asyncio.to_thread(derive_psk, password, node_id)


async def provision_client(
    plane: ControlPlane,
    *,
    hub: Hub,
    owner_id: str,
    workspace_id: str,
    request: ClientRequest,
    on_created: Callable[[AsyncSession, dict[str, Any]], Awaitable[None]] | None = None,
) -> Provisioned:
    """Create the client row and the 201 answer (with ``initial_identify``).

    ``on_created(session, body)`` runs in the same transaction (to store an idempotent replay).

    Raises :class:`ProvisioningError`, ``clients.ClientNameTaken`` or ``clients.AccessKeyTaken``.
    """
    validate_connection_type(request.connection_type)
    validate_client_password(request.password)
    allowed = _allowed_types(request.extras)
    extras = {str(k): v for k, v in request.extras.items() if k not in RESERVED_SPEC_KEYS and not is_secret_key(str(k))}
    access_key = request.access_key or new_client_secret()
    password = request.password or new_client_secret()
    site_id = clean_site_id(request.site_id or request.name)
    client_id = str(uuid.uuid4())
    psk = await derive_psk_off_loop(plane, password, hub.node_id)
    mqtt = issue_client_credentials(hub.id, client_id) if hub_protocols(hub, plane.config)["mqtt"] else None
    async with plane.store.session() as session:
        client = await clients.create_client(
            session,
            hub=hub,
            owner_id=owner_id,
            workspace_id=workspace_id,
            name=request.name,
            site_id=site_id,
            access_key_hash=sha256_hex(access_key),
            psk_sealed=seal_psk(plane.sealing, client_id, psk),
            connection_type=request.connection_type,
            spec_extras=extras,
            allowed_types=allowed,
            active=request.active,
            client_id=client_id,
            mqtt_username=mqtt.username if mqtt else None,
            mqtt_password_hash=mqtt.password_hash if mqtt else None,
            mqtt_topic_prefix=mqtt.topic_prefix if mqtt else None,
        )
        body = client_view(client)
        body["initial_identify"] = initial_identify(
            plane, hub, client, access_key=access_key, password=password, mqtt=mqtt
        )
        if on_created is not None:
            await on_created(session, body)
    return Provisioned(client=client, body=body)
