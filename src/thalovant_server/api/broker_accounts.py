"""The running MQTT broker's accounts follow the store: one place that keeps them in step.

The database is the source of truth for who may log in to the broker
(:func:`thalovant_server.store.clients.mqtt_logins`: active clients with MQTT credentials of
active hubs that enable MQTT). The broker holds a copy in memory: the hub's service user plus one
account per such client. :class:`BrokerAccounts` builds that copy at startup and updates it
whenever the control plane changed something, always **after** the database commit:

- :meth:`BrokerAccounts.refresh_clients`: identities created or deleted;
- :meth:`BrokerAccounts.refresh_hub`: a hub patched (MQTT switched on or off, activated or
  deactivated) or deleted.

Each refresh re-reads the store under one lock, so concurrent changes end in the state the
database holds whatever order they ran in, and replaying a refresh changes nothing (an idempotent
replay of a creation never makes a second account). Removing an account also drops its live
connections (the broker's contract). A broker that does not take a change (Mosquitto died) is
logged as an error; the API answer stands, since the database change is already committed.

Routes reach it through :func:`sync_clients` and :func:`sync_hub`, which do nothing when the
server runs no broker (``--mqtt-broker off``, or the ``admin`` commands).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable

from fastapi import Request

from thalovant_server.mqtt.broker import BrokerReloadError, MqttBroker
from thalovant_server.mqtt.credentials import (
    BrokerAccount,
    InvalidCredentialsError,
    MqttCredentials,
    client_account,
    client_username,
    hub_topic_root,
)
from thalovant_server.store import clients
from thalovant_server.store.engine import Store
from thalovant_server.store.models import Client

log = logging.getLogger(__name__)


def account_of(client: Client) -> BrokerAccount | None:
    """The broker account of a client row, or ``None`` when the row holds no usable credentials."""
    if client.mqtt_username is None or client.mqtt_password_hash is None or client.mqtt_topic_prefix is None:
        return None
    try:
        return client_account(client.mqtt_username, client.mqtt_password_hash, client.mqtt_topic_prefix)
    except InvalidCredentialsError as exc:
        log.warning("client %s has unusable MQTT credentials, left out of the broker: %s", client.id, exc)
        return None


def _accounts_of(rows: Iterable[Client]) -> list[BrokerAccount]:
    return [account for row in rows if (account := account_of(row)) is not None]


class BrokerAccounts:
    """The accounts of one running broker, kept equal to the store's MQTT logins.

    ``hub_login`` is the hub service user's credentials (its password lives only in memory, in
    this object and with the hub-side MQTT carrier); its account is always kept.
    """

    def __init__(self, broker: MqttBroker, store: Store, hub_login: MqttCredentials) -> None:
        self.broker = broker
        self.store = store
        self.hub_login = hub_login
        self._lock = asyncio.Lock()

    async def load(self) -> int:
        """Make the broker's accounts the hub's plus every client login; returns the client count."""
        async with self._lock:
            async with self.store.session() as session:
                rows = await clients.mqtt_logins(session)
            accounts = _accounts_of(rows)
            await self.broker.replace_accounts([self.hub_login.account, *accounts])
        return len(accounts)

    async def refresh_clients(self, client_ids: Collection[str]) -> None:
        """Add, update or remove the accounts of these client identities to match the store."""
        if not client_ids:
            return
        async with self._lock:
            async with self.store.session() as session:
                rows = await clients.mqtt_logins(session, client_ids=client_ids)
            wanted = {row.id: account for row in rows if (account := account_of(row)) is not None}
            for client_id in client_ids:
                account = wanted.get(client_id)
                try:
                    if account is not None:
                        if self.broker.access.get(account.username) != account:
                            await self.broker.add_account(account)
                            log.info("MQTT account %s added for client %s", account.username, client_id)
                        continue
                    username = client_username(client_id)
                    if username in self.broker.access:
                        await self.broker.remove_account(username)
                        log.info("MQTT account %s removed (client %s)", username, client_id)
                except (BrokerReloadError, InvalidCredentialsError, OSError) as exc:
                    log.error("the MQTT broker did not take the account change of client %s: %s", client_id, exc)

    async def refresh_hub(self, hub_id: str) -> None:
        """Make the accounts under ``hub_id``'s topics those the store allows now (maybe none)."""
        try:
            root = hub_topic_root(hub_id) + "/"
        except InvalidCredentialsError:
            return  # no account can live under such a hub id
        async with self._lock:
            async with self.store.session() as session:
                rows = await clients.mqtt_logins(session, hub_id=hub_id)
            current = list(self.broker.access)
            others = [
                account
                for account in current
                if account.username == self.hub_login.username or not (account.topic_prefix or "").startswith(root)
            ]
            fresh = [*others, *_accounts_of(rows)]
            if set(fresh) == set(current):
                return
            try:
                await self.broker.replace_accounts(fresh)
            except (BrokerReloadError, OSError) as exc:
                log.error("the MQTT broker did not take the account changes of hub %s: %s", hub_id, exc)
                return
            log.info("MQTT accounts of hub %s now %d", hub_id, len(fresh) - len(others))


def broker_accounts(request: Request) -> BrokerAccounts | None:
    """The running broker's account keeper (``app.state.mqtt_accounts``), if there is a broker."""
    found = getattr(request.app.state, "mqtt_accounts", None)
    return found if isinstance(found, BrokerAccounts) else None


async def sync_clients(request: Request, client_ids: Collection[str]) -> None:
    """After a commit that created or deleted these identities: update the broker's accounts."""
    accounts = broker_accounts(request)
    if accounts is not None:
        await accounts.refresh_clients(client_ids)


async def sync_hub(request: Request, hub_id: str) -> None:
    """After a commit that changed or deleted this hub: update its clients' broker accounts."""
    accounts = broker_accounts(request)
    if accounts is not None:
        await accounts.refresh_hub(hub_id)
