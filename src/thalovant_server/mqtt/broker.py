"""What every MQTT broker flavour offers the server: start, stop, and live account changes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from thalovant_server.mqtt.acl import MqttAccessControl
from thalovant_server.mqtt.credentials import BrokerAccount

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8883


class BrokerStartError(RuntimeError):
    """The broker could not start (bad certificate files, port in use, missing binary, ...)."""


class BrokerReloadError(RuntimeError):
    """The broker did not take the new accounts (it died, or never confirmed the reload)."""


@dataclass(frozen=True)
class BrokerAddress:
    """Where a started broker listens."""

    host: str
    port: int

    @property
    def endpoint(self) -> str:
        """The ``mqtts://host:port`` URL clients use."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtts://{host}:{self.port}"


class MqttBroker(Protocol):
    """A broker with a TLS listener that enforces :attr:`access` (accounts and topic grants).

    Account changes take effect for every CONNECT after the awaited call returns; removing an
    account also drops that user's live connections.
    """

    access: MqttAccessControl

    @property
    def address(self) -> BrokerAddress: ...

    async def start(self) -> BrokerAddress: ...

    async def stop(self) -> None: ...

    async def add_account(self, account: BrokerAccount) -> None: ...

    async def remove_account(self, username: str) -> bool: ...

    async def replace_accounts(self, accounts: Iterable[BrokerAccount]) -> None: ...
