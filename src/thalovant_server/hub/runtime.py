"""The hub runtime: hubs loaded on demand, their routers, and the registry of live sessions.

Carriers ask the runtime for a hub (:meth:`HubRuntime.host`) and a client's credentials
(:meth:`HubRuntime.credentials`), persist TOFU pins through it (:meth:`HubRuntime.pin`),
and register each authenticated session (:meth:`HubRuntime.register`). The control plane
calls :meth:`HubRuntime.client_revoked` and :meth:`HubRuntime.hub_changed`; services call
:meth:`HubRuntime.push` to send hub-initiated events to connected clients.

Nothing here runs per message except a dictionary lookup: the router is reached through
the session's :class:`HubHost`.

A herd of clients reconnecting at once (a hub restart) is served in order, not all at once:
carriers set each connection up inside :meth:`HubRuntime.admission` (at most
:data:`MAX_SETUPS` at a time), concurrent loads of one hub share one directory lookup, and
concurrent lookups of one credential share one too (kept for :data:`CREDENTIALS_TTL` seconds,
forgotten at once when the client is revoked, its hub changes or the store is reconciled).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from thalovant.protocol.envelope import BusMessage
from thalovant_server.hub.activity import ActivitySink
from thalovant_server.hub.admission import Admission
from thalovant_server.hub.agent import EmbeddedAgent
from thalovant_server.hub.directory import ClientCredentials, ClientDirectory, HubKeys
from thalovant_server.hub.link import HubLink, Outbound
from thalovant_server.hub.memory_book import MemoryBook
from thalovant_server.hub.router import HubRouter
from thalovant_server.hub.session import SessionStore
from thalovant_server.hub.shared import SharedLoads
from thalovant_server.hub.skills.registry import installed_packages, load_skills

__all__ = ["HubHost", "HubObservation", "HubRuntime", "LiveSession"]

log = logging.getLogger(__name__)


class LiveSession(Protocol):
    """A carrier's authenticated session, as the runtime drives it."""

    @property
    def link(self) -> HubLink: ...

    @property
    def carrier(self) -> str:
        """The hub spec's name of the carrier: ``wss``, ``http`` or ``mqtt``."""
        ...

    async def deliver(self, messages: Sequence[Outbound]) -> None:
        """Seal and send hub-initiated messages (bus messages, or whole hive frames); never raises."""
        ...

    async def terminate(self, reason: str) -> None:
        """Close the session from the hub side (revocation, hub removed); never raises."""
        ...


@dataclass(frozen=True, slots=True)
class HubObservation:
    """What a loaded hub runs: skill name to package version, the skills that did not start or
    were quarantined (with why), and the intents of those it runs."""

    hub_id: str
    skills: dict[str, str]
    failures: dict[str, str]
    intents: dict[str, tuple[str, ...]]
    quarantined: frozenset[str] = frozenset()


class HubHost:
    """One loaded hub: its keys, its router, its live sessions, what its skills are."""

    __slots__ = ("_loaded", "_memory", "_sink", "hub_id", "keys", "live", "router")

    def __init__(
        self,
        keys: HubKeys,
        sessions: SessionStore | None = None,
        *,
        sink: ActivitySink | None = None,
        memory: MemoryBook | None = None,
    ) -> None:
        self.hub_id = keys.hub_id
        self.live: set[LiveSession] = set()
        self._sink = sink
        self._memory = memory
        self.load(keys, sessions)

    def load(self, keys: HubKeys, sessions: SessionStore | None = None) -> None:
        """Build the router of ``keys``' skills (conversations in ``sessions`` carry over); answers
        are recorded in the runtime's sink and the memory skill keeps facts in its memory book."""
        loaded = load_skills(keys.skills)
        self.keys = keys
        self._loaded = loaded
        self.router = HubRouter(
            keys.hub_id,
            EmbeddedAgent(keys.hub_id, loaded.skills, self._memory),
            sessions,
            skill_timeout=keys.skill_timeout,
            sink=self._sink,
            record_utterances=keys.record_utterances,
        )

    @property
    def observation(self) -> HubObservation:
        """What the hub runs now (quarantined skills count as failures)."""
        packages = installed_packages()
        quarantine = self.router.health.quarantined
        running = {name: skill for name, skill in self._loaded.by_name.items() if skill.skill_id not in quarantine}
        failures = dict(self._loaded.failures)
        benched = set()
        for name, skill in self._loaded.by_name.items():
            if skill.skill_id in quarantine:
                failures[name] = quarantine[skill.skill_id]
                benched.add(name)
        return HubObservation(
            self.hub_id,
            {name: packages[name].version if name in packages else "" for name in running},
            failures,
            {name: tuple(spec.name for spec in skill.intents) for name, skill in running.items()},
            frozenset(benched),
        )


MEMORY_SKILL = "memory"

MAX_SETUPS = 128
"""Connection setups (lookups, Noise handshake) in progress at once; the rest wait in order.

A setup waits for two round trips of its client, so the slots must cover what the server can
set up while clients answer: with 16, 1,000 clients answering slowly (a loaded machine) kept
the slots waiting and 802 handshakes timed out in the queue (``bench/reliability.py``)."""

SETUP_HOLD = 1.0
"""Seconds a setup may hold its admission slot (a slower one goes on without it)."""

CREDENTIALS_TTL = 10.0
"""Seconds a looked-up credential is reused by later connections of the same access key."""


def _is_found(creds: ClientCredentials | None) -> bool:
    return creds is not None


class HubRuntime:
    """Registry of hubs and live sessions of one server process.

    ``sink`` receives an activity for every request a hub answers (the request log); ``memory``
    is the memory book the hubs' memory skill keeps facts in (a client's facts are loaded when
    it connects to a hub that runs that skill).
    """

    def __init__(
        self, directory: ClientDirectory, *, sink: ActivitySink | None = None, memory: MemoryBook | None = None
    ) -> None:
        self.directory = directory
        self.sink = sink
        self.memory = memory
        self._hosts: dict[str, HubHost] = {}
        self._by_client: dict[str, set[LiveSession]] = {}
        self._revoked: set[str] = set()
        self._pins: dict[str, bytes] = {}
        self.counters: Counter[str] = Counter()
        """Operational counts: ``sessions``, ``pattern:<name>``, ``refused:<reason>``."""
        self._admission = Admission(MAX_SETUPS, SETUP_HOLD)
        self._hub_loads: SharedLoads[str, HubKeys | None] = SharedLoads()
        self._lookups: SharedLoads[tuple[str, str], ClientCredentials | None] = SharedLoads(ttl=CREDENTIALS_TTL)

    def admission(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Enter while setting a connection up (lookups, Noise handshake):
        at most :data:`MAX_SETUPS` at a time, the others wait their turn (first come, first
        served), each for at most :data:`SETUP_HOLD` seconds. Leave it before the session's
        transport phase."""
        return self._admission.slot()

    # -- hubs ------------------------------------------------------------------------------

    async def host(self, hub_id: str) -> HubHost | None:
        """The loaded hub ``hub_id`` (loaded from the directory on first use), or ``None``.

        Hubs are kept under the id the directory answers with (its canonical spelling) only: a
        reference spelled any other way, or naming no hub, costs a directory lookup and keeps
        nothing, so no client can grow this table by inventing spellings.
        """
        found = self._hosts.get(hub_id)
        if found is not None:
            return found
        keys = await self._hub_loads.get(hub_id, lambda: self.directory.load_hub(hub_id))
        if keys is None:
            return None
        found = self._hosts.get(keys.hub_id)
        if found is None:  # no await since the lookup above: concurrent loads keep the first host
            found = self._hosts[keys.hub_id] = HubHost(keys, sink=self.sink, memory=self.memory)
        return found

    def loaded_hubs(self) -> list[str]:
        """The ids of the hubs held in memory (each in its canonical spelling)."""
        return list(self._hosts)

    async def hub_changed(self, hub_id: str) -> None:
        """Reload a hub's spec: a hub that is gone, or changed keys, has all its sessions closed;
        sessions over a carrier the spec no longer enables are closed too, and so are those of
        identities the hub no longer admits (another workspace's, once the hub is private)."""
        self._lookups.forget(lambda key, _creds: key[0] == hub_id)
        current = self._hosts.get(hub_id)
        if current is None:
            return
        keys = await self.directory.load_hub(hub_id)
        if keys is None or keys.static.public != current.keys.static.public or keys.node_id != current.keys.node_id:
            self._hosts.pop(hub_id, None)
            for live in list(current.live):
                await live.terminate("hub removed")
            return
        current.load(keys, current.router.sessions)
        for live in list(current.live):
            if not keys.serves(live.carrier):
                await live.terminate(f"{live.carrier} switched off for this hub")
            elif not keys.admits(live.link.origin.workspace_id):
                await live.terminate("client revoked: the hub is private")

    # -- clients ---------------------------------------------------------------------------

    async def credentials(self, hub_id: str, access_key: str) -> ClientCredentials | None:
        """The credentials of an active, unrevoked client of ``hub_id``, else ``None``.

        When the hub runs the memory skill, the client's remembered facts are loaded here,
        once per connection, so the skill never waits for the database."""
        found = await self._lookups.get(
            (hub_id, access_key), lambda: self.directory.find_client(hub_id, access_key), keep=_is_found
        )
        return await self._recalled(hub_id, self._current(hub_id, found))

    async def credentials_by_id(self, hub_id: str, client_id: str) -> ClientCredentials | None:
        """Like :meth:`credentials`, for a client named by its id (an MQTT topic prefix)."""
        return await self._recalled(
            hub_id, self._current(hub_id, await self.directory.find_client_by_id(hub_id, client_id))
        )

    async def _recalled(self, hub_id: str, creds: ClientCredentials | None) -> ClientCredentials | None:
        """``creds``, after loading the client's facts when the hub runs the memory skill."""
        host = self._hosts.get(hub_id)
        if creds is not None and self.memory is not None and host is not None and MEMORY_SKILL in host.keys.skills:
            await self.memory.ensure_loaded(creds.client_id)
        return creds

    def _current(self, hub_id: str, creds: ClientCredentials | None) -> ClientCredentials | None:
        """``creds`` with this process's revocations and newer pins applied."""
        if creds is None or creds.hub_id != hub_id or creds.client_id in self._revoked:
            return None
        pinned = self._pins.get(creds.client_id)
        if pinned is not None and creds.pinned_key != pinned:
            creds = dataclasses.replace(creds, pinned_key=pinned)
        return creds

    async def pin(self, creds: ClientCredentials, key: bytes) -> bool:
        """Pin ``key`` for the client (TOFU); ``False`` if another key won the race."""
        existing = self._pins.get(creds.client_id) or creds.pinned_key
        if existing is not None:
            return existing == key
        self._pins[creds.client_id] = key
        await self.directory.pin_client_key(creds.client_id, key)
        return True

    async def client_revoked(self, client_id: str) -> None:
        """Refuse the client from now on and close its live sessions at once."""
        self._revoked.add(client_id)
        self._pins.pop(client_id, None)
        self._lookups.forget(lambda _key, creds: creds is not None and creds.client_id == client_id)
        for host in self._hosts.values():
            host.router.sessions.forget_client(client_id)
        for live in list(self._by_client.pop(client_id, ())):
            await live.terminate("client revoked")

    async def reconcile(self) -> None:
        """After a change made outside this process (``admin``): reload every cached hub and
        revoke the live clients the store no longer holds."""
        self._lookups.forget(lambda _key, _creds: True)
        for hub_id in list(self._hosts):
            await self.hub_changed(hub_id)
        for client_id in list(self._by_client):
            sessions = self._by_client.get(client_id) or set()
            hub_ids = {live.link.host.hub_id for live in sessions}
            if not any([await self.directory.find_client_by_id(h, client_id) for h in hub_ids]):
                await self.client_revoked(client_id)

    def is_revoked(self, client_id: str) -> bool:
        return client_id in self._revoked

    # -- live sessions -----------------------------------------------------------------------

    def register(self, live: LiveSession) -> bool:
        """Add an authenticated session; ``False`` if its client or hub is gone meanwhile."""
        link = live.link
        host = self._hosts.get(link.host.hub_id)
        if link.client_id in self._revoked or host is not link.host:
            return False
        host.live.add(live)
        link.attach(live.deliver)
        self._by_client.setdefault(link.client_id, set()).add(live)
        self.counters["sessions"] += 1
        self.counters[f"pattern:{link.pattern}"] += 1
        return True

    def count_refusal(self, reason: str) -> None:
        """Count a refused connection (``unknown``, ``malformed``, ``aborted``, ...)."""
        self.counters[f"refused:{reason}"] += 1

    def unregister(self, live: LiveSession) -> None:
        """Forget a session that ended (idempotent)."""
        link = live.link
        link.close()
        link.host.live.discard(live)
        sessions = self._by_client.get(link.client_id)
        if sessions is not None:
            sessions.discard(live)
            if not sessions:
                del self._by_client[link.client_id]

    def observe(self, hub_id: str) -> HubObservation | None:
        """What the hub runs now, if it is loaded in this process."""
        host = self._hosts.get(hub_id)
        return host.observation if host is not None else None

    async def load(self, hub_id: str) -> HubObservation | None:
        """What the hub runs, loading it first if needed; ``None`` for no (active) such hub."""
        host = await self.host(hub_id)
        return host.observation if host is not None else None

    def live_sessions(self, hub_id: str | None = None) -> list[LiveSession]:
        """The live sessions of one hub, or of every hub."""
        if hub_id is not None:
            host = self._hosts.get(hub_id)
            return list(host.live) if host is not None else []
        return [live for host in self._hosts.values() for live in host.live]

    async def push(self, hub_id: str, bus_message: BusMessage, session_id: str | None = None) -> int:
        """Send a hub-initiated bus message to the hub's connected clients.

        With ``session_id``, only to sessions whose connection session id matches it, and the
        message's ``context.session.session_id`` is set to it. Returns how many sessions got it.
        """
        host = self._hosts.get(hub_id)
        if host is None:
            return 0
        targets = [live for live in host.live if session_id is None or live.link.session_id == session_id]
        if not targets:
            return 0
        message = bus_message
        if session_id is not None:
            context: dict[str, Any] = dict(bus_message.context)
            raw = context.get("session")
            session = dict(raw) if isinstance(raw, Mapping) else {}
            session["session_id"] = session_id
            context["session"] = session
            message = BusMessage(bus_message.type, bus_message.data, context)
        await asyncio.gather(*(live.deliver([message]) for live in targets))
        return len(targets)

    async def close(self) -> None:
        """Close every live session (server shutdown)."""
        for live in self.live_sessions():
            with contextlib.suppress(Exception):
                await live.terminate("hub shutting down")
