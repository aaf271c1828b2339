"""Conversation state per session id (spec 6.6).

The client's session snapshot is authoritative: a request whose ``context.session`` carries
conversation fields (``active_skills``, ``context``) is read from them alone. Requests that
carry none (fire-and-forget sends, SDKs that do not carry state) fall back to the copy the hub
kept from the previous turn of the same (client, session id). The updated session goes back
to the client on ``ovos.utterance.handled``.

Skill state lives under ``session.context.thalovant_skills.<skill_id>``; the skills that
answered recently are ``session.active_skills`` as ``[skill_id, unix_time]`` pairs, newest
first, as OVOS keeps them.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thalovant.protocol.envelope import encode_json
from thalovant.protocol.errors import EnvelopeError

__all__ = [
    "ACTIVE_SKILL_SECONDS",
    "MAX_CLIENT_BYTES",
    "MAX_ENTRY_BYTES",
    "MAX_HUB_BYTES",
    "Conversation",
    "SessionStore",
]

ACTIVE_SKILL_SECONDS = 300.0
"""How long a skill stays active (follow-ups match) after it last answered."""

MAX_ENTRY_BYTES = 64 * 1024
"""Largest conversation (JSON bytes) the hub keeps a copy of."""

MAX_CLIENT_BYTES = 512 * 1024
"""Bytes of conversations the hub keeps for one client identity."""

MAX_HUB_BYTES = 32 * 1024 * 1024
"""Bytes of conversations the hub keeps for all its clients."""

_STATE_KEY = "thalovant_skills"
_MAX_ACTIVE = 8


@dataclass(slots=True)
class Conversation:
    """The mutable conversation state of one session for one request."""

    session_id: str
    lang: str
    active_skills: list[tuple[str, float]] = field(default_factory=list)
    skill_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra_context: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_snapshot(cls, session_id: str, lang: str, snapshot: Mapping[str, Any]) -> Conversation:
        """Read the conversation fields of a session object (malformed parts are ignored)."""
        conv = cls(session_id, lang)
        active = snapshot.get("active_skills")
        if isinstance(active, list):
            for entry in active[:_MAX_ACTIVE]:
                if isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[0], str):
                    stamp = entry[1]
                    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
                        conv.active_skills.append((entry[0], float(stamp)))
        context = snapshot.get("context")
        if isinstance(context, dict):
            states = context.get(_STATE_KEY)
            if isinstance(states, dict):
                conv.skill_state = {k: dict(v) for k, v in states.items() if isinstance(v, dict)}
            conv.extra_context = {k: v for k, v in context.items() if k != _STATE_KEY}
        return conv

    @staticmethod
    def carries_state(snapshot: Mapping[str, Any]) -> bool:
        """Whether a client session object carries conversation fields of its own."""
        return bool(snapshot.get("active_skills")) or bool(snapshot.get("context"))

    def is_active(self, skill_id: str, now: float | None = None) -> bool:
        """Whether ``skill_id`` answered within :data:`ACTIVE_SKILL_SECONDS`."""
        limit = (time.time() if now is None else now) - ACTIVE_SKILL_SECONDS
        return any(name == skill_id and stamp >= limit for name, stamp in self.active_skills)

    def active_rank(self, skill_id: str, now: float | None = None) -> int | None:
        """0 for the most recently active skill, 1 for the next...; ``None`` if not active."""
        limit = (time.time() if now is None else now) - ACTIVE_SKILL_SECONDS
        rank = 0
        for name, stamp in self.active_skills:
            if stamp < limit:
                continue
            if name == skill_id:
                return rank
            rank += 1
        return None

    def active_ranks(self, now: float | None = None) -> dict[str, int]:
        """:meth:`active_rank` of every active skill, at one moment (the others are absent)."""
        limit = (time.time() if now is None else now) - ACTIVE_SKILL_SECONDS
        ranks: dict[str, int] = {}
        rank = 0
        for name, stamp in self.active_skills:
            if stamp < limit:
                continue
            ranks.setdefault(name, rank)
            rank += 1
        return ranks

    def activate(self, skill_id: str, now: float | None = None) -> None:
        """Make ``skill_id`` the most recently active skill."""
        stamp = time.time() if now is None else now
        rest = [(n, s) for n, s in self.active_skills if n != skill_id]
        self.active_skills = [(skill_id, stamp), *rest][:_MAX_ACTIVE]

    def deactivate(self, skill_id: str) -> None:
        self.active_skills = [(n, s) for n, s in self.active_skills if n != skill_id]

    def state_for(self, skill_id: str) -> dict[str, Any]:
        """The skill's own state dict (created empty), shared with the handler."""
        state = self.skill_state.get(skill_id)
        if state is None:
            state = self.skill_state[skill_id] = {}
        return state

    def to_session(self, base: Mapping[str, Any]) -> dict[str, Any]:
        """``base`` (the request's session) with this conversation's fields written in."""
        session = dict(base)
        session["session_id"] = self.session_id
        session["lang"] = self.lang
        session["active_skills"] = [[name, stamp] for name, stamp in self.active_skills]
        context = dict(self.extra_context)
        states = {k: v for k, v in self.skill_state.items() if v}
        if states:
            context[_STATE_KEY] = states
        session["context"] = context
        return session


class SessionStore:
    """The hub's copy of recent conversations, keyed by (client id, session id), bounded in bytes.

    Clients invent session ids and fill session contexts freely, so the copy is bounded three
    ways, each measured as the JSON size of what is kept: a conversation larger than
    ``entry_bytes`` is not kept at all (the client's own snapshot still carries it); one client's
    conversations above ``client_bytes`` lose their least recently used ones; all of them above
    ``hub_bytes`` (or ``limit`` entries) lose the least recently used of the hub. One client can
    therefore never hold more than ``client_bytes``, nor push the others out below
    ``hub_bytes - client_bytes``.
    """

    __slots__ = (
        "_by_client",
        "_client_bytes",
        "_entries",
        "_total",
        "client_bytes",
        "entry_bytes",
        "hub_bytes",
        "limit",
    )

    def __init__(
        self,
        limit: int = 10000,
        *,
        entry_bytes: int = MAX_ENTRY_BYTES,
        client_bytes: int = MAX_CLIENT_BYTES,
        hub_bytes: int = MAX_HUB_BYTES,
    ) -> None:
        self.limit = limit
        self.entry_bytes = entry_bytes
        self.client_bytes = client_bytes
        self.hub_bytes = hub_bytes
        self._entries: OrderedDict[tuple[str, str], tuple[dict[str, Any], int]] = OrderedDict()
        self._by_client: dict[str, OrderedDict[str, None]] = {}
        self._client_bytes: dict[str, int] = {}
        self._total = 0

    def load(self, client_id: str, session_id: str, lang: str, snapshot: Mapping[str, Any]) -> Conversation:
        """The conversation for a request: the client's snapshot if it carries state, else ours."""
        if Conversation.carries_state(snapshot):
            return Conversation.from_snapshot(session_id, lang, snapshot)
        kept = self._entries.get((client_id, session_id))
        if kept is None:
            return Conversation(session_id, lang)
        self._touch(client_id, session_id)
        return Conversation.from_snapshot(session_id, lang, kept[0])

    def save(self, client_id: str, conversation: Conversation, session: dict[str, Any]) -> None:
        """Remember the session sent back to the client for this (client, session id)."""
        session_id = conversation.session_id
        key = (client_id, session_id)
        if not conversation.active_skills and not session.get("context"):
            self._drop(key)
            return
        entry = {"active_skills": session.get("active_skills"), "context": session.get("context")}
        size = _json_size(entry)
        if size > self.entry_bytes:
            self._drop(key)
            return
        kept = self._entries.get(key)
        self._entries[key] = (entry, size)
        if kept is None:
            self._by_client.setdefault(client_id, OrderedDict())[session_id] = None
            self._client_bytes[client_id] = self._client_bytes.get(client_id, 0) + size
            self._total += size
        else:  # the same conversation again: its bytes change, it becomes the most recent
            self._touch(client_id, session_id)
            self._client_bytes[client_id] += size - kept[1]
            self._total += size - kept[1]
        mine = self._by_client[client_id]
        while self._client_bytes.get(client_id, 0) > self.client_bytes and mine:
            self._drop((client_id, next(iter(mine))))
        while self._entries and (self._total > self.hub_bytes or len(self._entries) > self.limit):
            self._drop(next(iter(self._entries)))

    def forget_client(self, client_id: str) -> None:
        """Drop every conversation of a client (revocation)."""
        for session_id in list(self._by_client.get(client_id, ())):
            self._drop((client_id, session_id))

    def bytes_of(self, client_id: str | None = None) -> int:
        """The bytes kept for one client, or for the whole hub."""
        return self._total if client_id is None else self._client_bytes.get(client_id, 0)

    def __len__(self) -> int:
        return len(self._entries)

    def _touch(self, client_id: str, session_id: str) -> None:
        self._entries.move_to_end((client_id, session_id))
        self._by_client[client_id].move_to_end(session_id)

    def _drop(self, key: tuple[str, str]) -> None:
        found = self._entries.pop(key, None)
        if found is None:
            return
        client_id, session_id = key
        size = found[1]
        self._total -= size
        mine = self._by_client[client_id]
        del mine[session_id]
        left = self._client_bytes[client_id] - size
        if mine:
            self._client_bytes[client_id] = left
        else:
            del self._by_client[client_id]
            del self._client_bytes[client_id]


def _json_size(value: Any) -> int:
    """Bytes of ``value`` as the envelope's JSON (what the hub would send back for it)."""
    try:
        return len(encode_json(value))
    except EnvelopeError:  # a cycle: never kept
        return sys.maxsize
