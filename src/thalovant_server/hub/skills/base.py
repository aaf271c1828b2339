"""The small skill API of the embedded agent.

A skill is a class with a ``skill_id`` and handler methods marked by decorators:

- :func:`intent` -- utterances, matched by example phrases (normalised token overlap) and/or
  regular expressions with named groups (the groups become ``request.slots``);
- :func:`action` -- ``send_action`` payloads starting with a prefix such as ``/approve``;
- :func:`code` -- ``send_code`` inputs of one kind such as ``invoice``;
- :func:`subscribe` -- raw bus events of one type, as sent by ``emit``.

Handlers take a :class:`Request` and return a :class:`SkillReply` (or ``None`` for an event
they ignore). A plain ``def`` handler runs on the event loop, so it must be quick and must not
block. A handler that waits on anything (a web service, a database) is an ``async def``: it
runs as a task of its own, so it never holds up other sessions; the hub bounds it with the
runtime group's skill timeout and answers the client with a failure event when it is late or
raises (:mod:`thalovant_server.hub.skill_guard`).
``request.state`` is this skill's part of the conversation session: changes made to it
(or a replacement in ``SkillReply.state``) travel back to the client in the session.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from thalovant_server.hub.memory_book import MemoryBook

__all__ = [
    "ActionSpec",
    "CodeSpec",
    "DisplayItems",
    "Handler",
    "HubView",
    "IntentSpec",
    "Request",
    "Skill",
    "SkillFile",
    "SkillReply",
    "SubscriptionSpec",
    "action",
    "code",
    "intent",
    "subscribe",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_ATTR = "__thalovant_skill_handler__"


@dataclass(frozen=True, slots=True)
class IntentSpec:
    """An intent: example phrases and/or regex patterns (named groups give slots).

    ``follow_up`` intents match only while the skill is active in the session (it answered
    the previous turn), e.g. "another one" after a joke.
    """

    name: str
    examples: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    follow_up: bool = False
    method: str = ""


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """An action handler for payloads starting with ``prefix`` (e.g. ``/approve``)."""

    prefix: str
    method: str = ""


@dataclass(frozen=True, slots=True)
class CodeSpec:
    """A code handler for ``send_code`` inputs of one ``kind`` (``*`` for any kind)."""

    kind: str
    method: str = ""


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """A raw-event handler for one bus type."""

    bus_type: str
    method: str = ""


def intent(
    name: str, *, examples: tuple[str, ...] = (), patterns: tuple[str, ...] = (), follow_up: bool = False
) -> Callable[[F], F]:
    """Mark a method as the handler of an intent."""
    if not examples and not patterns:
        raise ValueError(f"intent {name!r} needs examples or patterns")
    for pattern in patterns:
        re.compile(pattern)

    def mark(func: F) -> F:
        setattr(func, _ATTR, IntentSpec(name, tuple(examples), tuple(patterns), follow_up, func.__name__))
        return func

    return mark


def action(prefix: str) -> Callable[[F], F]:
    """Mark a method as the handler of actions whose payload starts with ``prefix``."""

    def mark(func: F) -> F:
        setattr(func, _ATTR, ActionSpec(prefix, func.__name__))
        return func

    return mark


def code(kind: str) -> Callable[[F], F]:
    """Mark a method as the handler of scanned or typed codes of ``kind``."""

    def mark(func: F) -> F:
        setattr(func, _ATTR, CodeSpec(kind.lower(), func.__name__))
        return func

    return mark


def subscribe(bus_type: str) -> Callable[[F], F]:
    """Mark a method as the handler of raw bus events of ``bus_type``."""

    def mark(func: F) -> F:
        setattr(func, _ATTR, SubscriptionSpec(bus_type, func.__name__))
        return func

    return mark


DisplayItems = dict[str, Any]
"""Rich media for ``data.display``: ``table``, ``buttons``/``quick_replies``, ``images``, ..."""


@dataclass(frozen=True, slots=True)
class HubView:
    """What a skill may know about the hub it runs in; ``memory`` is the hub's long-term
    memory when the server keeps one (``None`` in a bare agent)."""

    hub_id: str
    skills: tuple[Skill, ...]
    memory: MemoryBook | None = None


@dataclass(slots=True)
class Request:
    """One input for a skill handler.

    ``kind`` is ``utterance``, ``action``, ``code`` or ``event``. ``utterance`` is the text
    (the action payload or the code value for those kinds), ``input`` the structured input
    (``{kind, title, payload}`` or ``{kind, label, value}``), ``data`` the raw bus data,
    ``client_id`` the identity that asked ("" when unknown).
    """

    kind: str
    utterance: str
    lang: str
    session_id: str
    state: dict[str, Any]
    context: Mapping[str, Any]
    hub: HubView
    slots: dict[str, str] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    bus_type: str = "recognizer_loop:utterance"
    intent: str = ""
    client_id: str = ""

    def next_in_rotation(self, items: Sequence[T]) -> T:
        """This session's next item of ``items`` (not empty), in order and round again.

        The position is kept in ``state["next"]``; a value there that is not a non-negative
        integer starts the rotation over.
        """
        index = self.state.get("next", 0)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            index = 0
        self.state["next"] = (index + 1) % len(items)
        return items[index % len(items)]


FILE_KINDS = ("file", "tts_audio")
MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SkillFile:
    """Bytes a skill sends with its answer, as a binary frame: ``kind`` is ``file`` or
    ``tts_audio`` (at most :data:`MAX_FILE_BYTES`; larger files are dropped and logged)."""

    data: bytes
    kind: str = "file"
    file_name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FILE_KINDS:
            raise ValueError(f"a skill file is one of {FILE_KINDS}, not {self.kind!r}")


@dataclass(slots=True)
class SkillReply:
    """What a handler answers.

    ``speech``: sentences, each sent as one ``speak``; ``display``: rich media attached to
    the first ``speak``; ``state``: a replacement for the skill's session state (``None``
    keeps ``request.state`` with whatever changes the handler made); ``events``: extra bus
    messages ``(type, data)`` sent with the request's context; ``stay_active``: whether
    follow-up intents of this skill match on the next turn; ``files``: binary frames sent
    after the speech (the client's ``on_binary`` gets them).
    """

    speech: list[str] = field(default_factory=list)
    display: DisplayItems = field(default_factory=dict)
    state: dict[str, Any] | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stay_active: bool = True
    files: list[SkillFile] = field(default_factory=list)

    @classmethod
    def say(cls, *sentences: str, display: DisplayItems | None = None, stay_active: bool = True) -> SkillReply:
        return cls(list(sentences), dict(display or {}), stay_active=stay_active)


Handler = Callable[["Request"], "SkillReply | Awaitable[SkillReply | None] | None"]
"""A skill handler: plain (answers at once) or ``async`` (awaited under the skill timeout)."""


class Skill:
    """Base class of hub skills; subclasses set ``skill_id`` and decorate handlers.

    ``capability`` is the short phrase the capabilities skill lists for this skill (``joke``
    gives "quick joke ... requests"); ``None`` keeps the skill out of that sentence.
    ``title`` and ``description`` are what the marketplace shows.
    """

    skill_id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    capability: ClassVar[str | None] = None
    description: ClassVar[str] = ""

    intents: ClassVar[tuple[IntentSpec, ...]] = ()
    actions: ClassVar[tuple[ActionSpec, ...]] = ()
    codes: ClassVar[tuple[CodeSpec, ...]] = ()
    subscriptions: ClassVar[tuple[SubscriptionSpec, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        intents: list[IntentSpec] = []
        actions: list[ActionSpec] = []
        codes: list[CodeSpec] = []
        subscriptions: list[SubscriptionSpec] = []
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                spec = getattr(value, _ATTR, None)
                if isinstance(spec, IntentSpec):
                    intents.append(spec)
                elif isinstance(spec, ActionSpec):
                    actions.append(spec)
                elif isinstance(spec, CodeSpec):
                    codes.append(spec)
                elif isinstance(spec, SubscriptionSpec):
                    subscriptions.append(spec)
        cls.intents = tuple(intents)
        cls.actions = tuple(actions)
        cls.codes = tuple(codes)
        cls.subscriptions = tuple(subscriptions)

    def handler(self, method: str) -> Handler:
        """The bound handler method named ``method``."""
        func: Handler = getattr(self, method)
        return func
