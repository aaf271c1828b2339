"""The MQTT broker side of the server: accounts, topic ACLs, and two broker flavours.

- :mod:`.credentials`: topic layout (``thalovant/<hub-id>/<client-id>/{in,out,status}``), broker
  usernames, random passwords and their Mosquitto-compatible hashes, :class:`BrokerAccount`.
- :mod:`.acl`: :class:`MqttAccessControl`, the one source of truth for who may publish and
  subscribe where.
- :mod:`.embedded`: :class:`EmbeddedBroker` (amqtt, in-process, the default).
- :mod:`.mosquitto`: :class:`MosquittoBroker` (a Mosquitto 2 process fed the same rules).

Typical use by the server::

    broker = create_broker("embedded", cert_file=tls.cert, key_file=tls.key, port=config.mqtt_port)
    hub = issue_hub_credentials()
    await broker.replace_accounts([hub.account, *client_accounts_from_store])
    await broker.start()
    ...
    creds = issue_client_credentials(hub_id, client_id)   # at provisioning
    await broker.add_account(creds.account)                # store creds.password_hash
    ...
    await broker.remove_account(username)                  # identity deleted
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from thalovant_server.limits import Limits
from thalovant_server.mqtt.acl import (
    Access,
    InvalidTopicError,
    MqttAccessControl,
    TopicGrant,
    filter_covers,
    topic_matches,
)
from thalovant_server.mqtt.broker import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    BrokerAddress,
    BrokerReloadError,
    BrokerStartError,
    MqttBroker,
)
from thalovant_server.mqtt.credentials import (
    ALL_CLIENTS_FILTER,
    HUB_USERNAME,
    TOPIC_ROOT,
    BrokerAccount,
    InvalidCredentialsError,
    MqttCredentials,
    MqttTopics,
    client_account,
    client_grants,
    client_topic_prefix,
    client_username,
    hash_password,
    hub_grants,
    hub_topic_root,
    issue_client_credentials,
    issue_hub_credentials,
    new_broker_password,
    verify_password,
)

BrokerKind = Literal["embedded", "mosquitto"]
BROKER_KINDS: tuple[BrokerKind, ...] = ("embedded", "mosquitto")


def create_broker(
    kind: BrokerKind,
    *,
    cert_file: str | Path,
    key_file: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config_dir: str | Path | None = None,
    ca_file: str | Path | None = None,
    limits: Limits | None = None,
) -> MqttBroker:
    """A broker of the given kind, not yet started.

    ``config_dir`` is where Mosquitto's files go (required for ``"mosquitto"``, e.g.
    ``DATA_DIR/mosquitto``). Raises :class:`ValueError` for an unknown kind.
    """
    if kind == "embedded":
        from thalovant_server.mqtt.embedded import EmbeddedBroker

        return EmbeddedBroker(cert_file=cert_file, key_file=key_file, host=host, port=port, limits=limits)
    if kind == "mosquitto":
        from thalovant_server.mqtt.mosquitto import MosquittoBroker

        if config_dir is None:
            raise ValueError("a Mosquitto broker needs a config_dir")
        return MosquittoBroker(
            config_dir=config_dir,
            cert_file=cert_file,
            key_file=key_file,
            ca_file=ca_file,
            host=host,
            port=port,
            limits=limits,
        )
    raise ValueError(f"unknown MQTT broker kind {kind!r}; expected one of {', '.join(BROKER_KINDS)}")


__all__ = [
    "ALL_CLIENTS_FILTER",
    "BROKER_KINDS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HUB_USERNAME",
    "TOPIC_ROOT",
    "Access",
    "BrokerAccount",
    "BrokerAddress",
    "BrokerKind",
    "BrokerReloadError",
    "BrokerStartError",
    "InvalidCredentialsError",
    "InvalidTopicError",
    "MqttAccessControl",
    "MqttBroker",
    "MqttCredentials",
    "MqttTopics",
    "TopicGrant",
    "client_account",
    "client_grants",
    "client_topic_prefix",
    "client_username",
    "create_broker",
    "filter_covers",
    "hash_password",
    "hub_grants",
    "hub_topic_root",
    "issue_client_credentials",
    "issue_hub_credentials",
    "new_broker_password",
    "topic_matches",
    "verify_password",
]
