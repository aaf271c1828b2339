"""Topic access control for the MQTT broker: one set of rules, two enforcers.

Every broker user is a :class:`~thalovant_server.mqtt.credentials.BrokerAccount` that carries its
own grants (:class:`TopicGrant`). :class:`MqttAccessControl` holds the accounts and answers the
three questions a broker asks:

- may this user **publish** to this topic (the last will included)?
- may this user **subscribe** to this topic filter?
- may this user **receive** a message published on this topic?

The embedded broker asks these questions directly (``embedded.py``); for Mosquitto the same rules
are rendered into its ``acl_file`` (``mosquitto.py``), so the two brokers can never disagree
about who may do what. Anything not granted is refused.

Topic-filter semantics follow MQTT 3.1.1 §4.7: ``+`` is one whole level, ``#`` is the last
level and matches the parent too, and wildcards at the first level never match topics that begin
with ``$``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thalovant_server.mqtt.credentials import BrokerAccount

MAX_TOPIC_BYTES = 65535


class Access(enum.Enum):
    """What a grant allows: publishing to matching topics, or subscribing to (and receiving) them."""

    PUBLISH = "write"
    SUBSCRIBE = "read"


class InvalidTopicError(ValueError):
    """A topic name or topic filter that MQTT does not allow (empty, misplaced wildcard, NUL, ...)."""


@dataclass(frozen=True)
class TopicGrant:
    """One permission: ``access`` on every topic that ``topic_filter`` matches."""

    access: Access
    topic_filter: str

    def __post_init__(self) -> None:
        validate_topic_filter(self.topic_filter)


def _check_common(text: str, what: str) -> None:
    if not isinstance(text, str) or not text:
        raise InvalidTopicError(f"an MQTT {what} must be a non-empty string")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise InvalidTopicError(f"an MQTT {what} is at most {MAX_TOPIC_BYTES} bytes")
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise InvalidTopicError(f"an MQTT {what} must not contain control characters")


def validate_topic_name(topic: str) -> None:
    """Raise :class:`InvalidTopicError` unless ``topic`` is a publishable topic name (no wildcards)."""
    _check_common(topic, "topic name")
    if "+" in topic or "#" in topic:
        raise InvalidTopicError("an MQTT topic name must not contain wildcards")


def validate_topic_filter(topic_filter: str) -> None:
    """Raise :class:`InvalidTopicError` unless ``topic_filter`` is a valid subscription filter."""
    _check_common(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise InvalidTopicError("'#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise InvalidTopicError("'+' must be a whole level")


def _is_valid_filter(topic_filter: str) -> bool:
    try:
        validate_topic_filter(topic_filter)
    except InvalidTopicError:
        return False
    return True


def _is_valid_name(topic: str) -> bool:
    try:
        validate_topic_name(topic)
    except InvalidTopicError:
        return False
    return True


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether the topic name ``topic`` matches ``topic_filter`` (both assumed valid)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def filter_covers(grant_filter: str, requested: str) -> bool:
    """Whether every topic that ``requested`` can match is also matched by ``grant_filter``.

    This is the subscription check: a user granted ``a/+/in`` may subscribe to ``a/+/in`` or
    ``a/x/in``, but not to ``a/#`` or ``+/x/in``.
    """
    if grant_filter[:1] in ("+", "#") and requested.startswith("$"):
        return False
    grant_levels = grant_filter.split("/")
    requested_levels = requested.split("/")
    for index, level in enumerate(grant_levels):
        if level == "#":
            return True
        if index >= len(requested_levels):
            return False
        wanted = requested_levels[index]
        if wanted == "#":
            return False
        if level == "+":
            continue
        if wanted != level:  # also refuses a '+' where the grant names a level
            return False
    return len(grant_levels) == len(requested_levels)


class MqttAccessControl:
    """The broker accounts and their grants: the single source of truth for broker access.

    Not thread-safe: use it from one event loop (the embedded broker's), or guard it.
    """

    def __init__(self, accounts: Iterable[BrokerAccount] = ()) -> None:
        self._accounts: dict[str, BrokerAccount] = {}
        for account in accounts:
            self.add(account)

    # -- the registry -------------------------------------------------------------------------

    def add(self, account: BrokerAccount) -> None:
        """Add ``account``, or replace the account of the same username."""
        self._accounts[account.username] = account

    def remove(self, username: str) -> BrokerAccount | None:
        """Remove and return the account of ``username`` (``None`` when there was none)."""
        return self._accounts.pop(username, None)

    def replace_all(self, accounts: Iterable[BrokerAccount]) -> None:
        """Make ``accounts`` the complete set of accounts."""
        fresh: dict[str, BrokerAccount] = {}
        for account in accounts:
            fresh[account.username] = account
        self._accounts = fresh

    def get(self, username: str) -> BrokerAccount | None:
        return self._accounts.get(username)

    def __contains__(self, username: object) -> bool:
        return username in self._accounts

    def __iter__(self) -> Iterator[BrokerAccount]:
        return iter(list(self._accounts.values()))

    def __len__(self) -> int:
        return len(self._accounts)

    # -- the decisions ------------------------------------------------------------------------

    def authenticate(self, username: str | None, password: str | None) -> bool:
        """Whether ``username`` exists and ``password`` matches its stored hash."""
        if not username or password is None:
            return False
        account = self._accounts.get(username)
        if account is None:
            return False
        return account.verify_password(password)

    def _grants(self, username: str | None, access: Access) -> Iterator[str]:
        account = self._accounts.get(username) if username else None
        if account is None:
            return
        for grant in account.grants:
            if grant.access is access:
                yield grant.topic_filter

    def allows_publish(self, username: str | None, topic: str) -> bool:
        """Whether ``username`` may publish to the topic name ``topic`` (also used for the will)."""
        if not _is_valid_name(topic):
            return False
        return any(topic_matches(granted, topic) for granted in self._grants(username, Access.PUBLISH))

    def allows_subscribe(self, username: str | None, topic_filter: str) -> bool:
        """Whether ``username`` may subscribe to ``topic_filter`` (every topic it matches is granted)."""
        if not _is_valid_filter(topic_filter):
            return False
        return any(filter_covers(granted, topic_filter) for granted in self._grants(username, Access.SUBSCRIBE))

    def allows_receive(self, username: str | None, topic: str) -> bool:
        """Whether a message on ``topic`` may be delivered to ``username``."""
        if not _is_valid_name(topic):
            return False
        return any(topic_matches(granted, topic) for granted in self._grants(username, Access.SUBSCRIBE))
