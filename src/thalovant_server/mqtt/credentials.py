"""Broker accounts: who may log in to the MQTT broker, and on which topics.

Topic layout. Every client identity owns a topic prefix, ``thalovant/<hub-id>/<client-id>``
(:func:`client_topic_prefix`), with three topics under it (spec/dataplane.md §4.3):

- ``<prefix>/in``: client to hub (the client publishes, the hub subscribes);
- ``<prefix>/out``: hub to client (the hub publishes, the client subscribes);
- ``<prefix>/status``: presence, ``online``/``offline``, retained, also the client's last will.

A client's broker user may publish to its own ``in`` and ``status`` and subscribe to its own
``out``, nothing else (:func:`client_grants`). The hub's service user subscribes to every
``in`` and ``status`` and publishes to every ``out`` (:func:`hub_grants`).

Passwords. Broker passwords are random (:func:`new_broker_password`), handed to the client once
(in ``initial_identify``) and stored only as a hash. The hash is Mosquitto 2's own password-file
format, PBKDF2-HMAC-SHA512 written ``$7$<iterations>$<base64 salt>$<base64 digest>``, so one
stored value serves both the embedded broker (which verifies it here) and a Mosquitto password
file. :func:`verify_password` also accepts a bare SHA-256 hex digest (the form other secrets of
the control plane use); the embedded broker can check those, Mosquitto cannot.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from thalovant_server.mqtt.acl import Access, InvalidTopicError, TopicGrant

TOPIC_ROOT = "thalovant"
HUB_USERNAME = "thalovant-hub"
CLIENT_USERNAME_PREFIX = "c_"
# Every client prefix: thalovant/<hub-id>/<client-id>.
ALL_CLIENTS_FILTER = f"{TOPIC_ROOT}/+/+"

MOSQUITTO_PBKDF2_TAG = "7"
DEFAULT_ITERATIONS = 1000  # passwords are 256-bit random: the hash guards the file, not weak secrets
MAX_ITERATIONS = 1_000_000
SALT_BYTES = 12
DIGEST_BYTES = 64

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_PREFIX_LEVEL = re.compile(r"[A-Za-z0-9_.:@=~-]{1,128}")


class InvalidCredentialsError(ValueError):
    """A username, password hash or topic prefix the broker cannot accept."""


# -- names and topics ---------------------------------------------------------------------------


def validate_username(username: str) -> str:
    """Return ``username`` if it is a safe broker user name (letters, digits, ``_.@-``; 128 max).

    The restriction keeps names valid in Mosquitto's password and ACL files (no ``:``, no
    whitespace).
    """
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise InvalidCredentialsError("a broker username is 1-128 letters, digits, '_', '.', '@' or '-'")
    return username


def validate_topic_prefix(prefix: str) -> str:
    """Return the normalised client topic prefix (outer ``/`` and whitespace trimmed).

    The prefix must be one or more ``/``-separated levels of letters, digits and ``_.:@=~-``:
    no wildcard, no ``$``, no whitespace or control character, so that it is safe in an MQTT
    topic and in a Mosquitto ACL line.
    """
    if not isinstance(prefix, str):
        raise InvalidCredentialsError("a topic prefix must be a string")
    cleaned = prefix.strip().strip("/").strip()
    levels = cleaned.split("/")
    if not cleaned or not all(_PREFIX_LEVEL.fullmatch(level) for level in levels):
        raise InvalidCredentialsError(
            "a topic prefix is one or more '/'-separated levels of letters, digits and '_.:@=~-'"
        )
    return cleaned


def _topic_level(part: str, name: str) -> str:
    if not isinstance(part, str) or "/" in part or not _PREFIX_LEVEL.fullmatch(part):
        raise InvalidCredentialsError(f"the {name} is not usable in an MQTT topic")
    return part


def hub_topic_root(hub_id: str) -> str:
    """``thalovant/<hub-id>``: the parent level of every client prefix of that hub."""
    return f"{TOPIC_ROOT}/{_topic_level(hub_id, 'hub id')}"


def client_topic_prefix(hub_id: str, client_id: str) -> str:
    """The topic prefix of a client identity: ``thalovant/<hub-id>/<client-id>``."""
    return f"{hub_topic_root(hub_id)}/{_topic_level(client_id, 'client id')}"


def client_username(client_id: str) -> str:
    """The broker user name of a client identity: ``c_`` and its id without dashes."""
    return validate_username(CLIENT_USERNAME_PREFIX + str(client_id).replace("-", ""))


@dataclass(frozen=True)
class MqttTopics:
    """The three topics under one prefix."""

    prefix: str

    @property
    def inbound(self) -> str:
        """Client to hub: ``<prefix>/in``."""
        return f"{self.prefix}/in"

    @property
    def outbound(self) -> str:
        """Hub to client: ``<prefix>/out``."""
        return f"{self.prefix}/out"

    @property
    def status(self) -> str:
        """Presence and last will: ``<prefix>/status``."""
        return f"{self.prefix}/status"


def client_grants(topic_prefix: str) -> tuple[TopicGrant, ...]:
    """What a client may do: publish to its ``in`` and ``status``, subscribe to its ``out``."""
    topics = MqttTopics(validate_topic_prefix(topic_prefix))
    return (
        TopicGrant(Access.PUBLISH, topics.inbound),
        TopicGrant(Access.PUBLISH, topics.status),
        TopicGrant(Access.SUBSCRIBE, topics.outbound),
    )


def hub_grants(prefix_filter: str = ALL_CLIENTS_FILTER) -> tuple[TopicGrant, ...]:
    """What the hub may do for every prefix ``prefix_filter`` matches (default: all clients).

    Subscribe to ``<filter>/in`` and ``<filter>/status``, publish to ``<filter>/out``. A hub
    service user of one hub only would use ``thalovant/<hub-id>/+``.
    """
    if not isinstance(prefix_filter, str) or "#" in prefix_filter or not prefix_filter.strip("/"):
        raise InvalidCredentialsError("the hub's prefix filter must not be empty or contain '#'")
    base = prefix_filter.strip("/")
    try:
        return (
            TopicGrant(Access.SUBSCRIBE, f"{base}/in"),
            TopicGrant(Access.SUBSCRIBE, f"{base}/status"),
            TopicGrant(Access.PUBLISH, f"{base}/out"),
        )
    except InvalidTopicError as exc:
        raise InvalidCredentialsError(f"the hub's prefix filter is not a valid topic filter: {exc}") from exc


# -- password hashes ----------------------------------------------------------------------------


def new_broker_password() -> str:
    """32 random bytes as URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_password(password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """Hash ``password`` in Mosquitto 2's PBKDF2-SHA512 format (``$7$iter$salt$digest``)."""
    if not isinstance(password, str) or not password:
        raise InvalidCredentialsError("a broker password must be a non-empty string")
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise InvalidCredentialsError("the PBKDF2 iteration count is out of range")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return "${}${}${}${}".format(
        MOSQUITTO_PBKDF2_TAG,
        iterations,
        base64.b64encode(salt).decode("ascii"),
        base64.b64encode(digest).decode("ascii"),
    )


def is_mosquitto_hash(stored: str) -> bool:
    """Whether ``stored`` is a well-formed ``$7$`` hash that Mosquitto 2 can verify."""
    return _parse_pbkdf2(stored) is not None


def _parse_pbkdf2(stored: str) -> tuple[int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != MOSQUITTO_PBKDF2_TAG or not parts[2].isdigit():
        return None
    iterations = int(parts[2])
    if not 1 <= iterations <= MAX_ITERATIONS:
        return None
    try:
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return None
    if not salt or len(digest) != DIGEST_BYTES:
        return None
    return iterations, salt, digest


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a ``$7$`` hash or a SHA-256 hex digest).

    Never raises for a malformed ``stored`` value or password: it just answers ``False``.
    """
    if not isinstance(password, str) or not isinstance(stored, str):
        return False
    encoded = password.encode("utf-8", "surrogatepass")
    parsed = _parse_pbkdf2(stored)
    if parsed is not None:
        iterations, salt, digest = parsed
        return hmac.compare_digest(hashlib.pbkdf2_hmac("sha512", encoded, salt, iterations), digest)
    if _SHA256_HEX.fullmatch(stored):
        return hmac.compare_digest(hashlib.sha256(encoded).hexdigest(), stored)
    return False


# -- accounts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerAccount:
    """A broker user as the broker sees it: name, password hash, and topic grants (no secret)."""

    username: str
    password_hash: str = field(repr=False)
    grants: tuple[TopicGrant, ...]
    topic_prefix: str | None = None

    def __post_init__(self) -> None:
        validate_username(self.username)
        if not isinstance(self.password_hash, str) or not self.password_hash:
            raise InvalidCredentialsError("a broker account needs a password hash")

    def verify_password(self, password: str) -> bool:
        return verify_password(password, self.password_hash)


def client_account(username: str, password_hash: str, topic_prefix: str) -> BrokerAccount:
    """The broker account of a client identity, from what the store keeps about it."""
    prefix = validate_topic_prefix(topic_prefix)
    return BrokerAccount(username, password_hash, client_grants(prefix), prefix)


@dataclass(frozen=True)
class MqttCredentials:
    """Freshly issued broker credentials: the plaintext password exists only here.

    Hand ``password`` to its owner once (the client's ``initial_identify``, or the hub's own MQTT
    connection), store ``account`` (or ``password_hash``), and drop this object.
    """

    username: str
    password: str = field(repr=False)
    password_hash: str = field(repr=False)
    topic_prefix: str
    grants: tuple[TopicGrant, ...]

    @property
    def account(self) -> BrokerAccount:
        return BrokerAccount(self.username, self.password_hash, self.grants, self.topic_prefix)

    @property
    def topics(self) -> MqttTopics:
        return MqttTopics(self.topic_prefix)

    def identity_block(self, endpoint: str, *, qos: int = 1) -> dict[str, Any]:
        """The ``mqtt`` block of an identity (spec/dataplane.md §1.4) for these credentials."""
        return {
            "endpoint": endpoint,
            "username": self.username,
            "password": self.password,
            "topic_prefix": self.topic_prefix,
            "qos": 1 if qos not in (0, 1) else qos,
            "tls": True,
        }


def issue_client_credentials(hub_id: str, client_id: str, *, iterations: int = DEFAULT_ITERATIONS) -> MqttCredentials:
    """New broker credentials for the client identity ``client_id`` of hub ``hub_id``."""
    prefix = client_topic_prefix(hub_id, client_id)
    password = new_broker_password()
    return MqttCredentials(
        username=client_username(client_id),
        password=password,
        password_hash=hash_password(password, iterations=iterations),
        topic_prefix=prefix,
        grants=client_grants(prefix),
    )


def issue_hub_credentials(
    username: str = HUB_USERNAME, *, prefix_filter: str = ALL_CLIENTS_FILTER, iterations: int = DEFAULT_ITERATIONS
) -> MqttCredentials:
    """New credentials for the hub's service user (``topic_prefix`` is then a filter)."""
    password = new_broker_password()
    return MqttCredentials(
        username=validate_username(username),
        password=password,
        password_hash=hash_password(password, iterations=iterations),
        topic_prefix=prefix_filter.strip("/"),
        grants=hub_grants(prefix_filter),
    )
