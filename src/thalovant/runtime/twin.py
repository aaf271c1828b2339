"""Synchronous twins generated from the async classes (the httpx model: one implementation).

A sync class subclasses :class:`SyncTwin` with ``twin_of=<the async class>`` and declares each
member as a one-line reference to the async one:

- ``ask = blocking(AsyncThalovantClient.ask)``: a coroutine method, run to completion on the
  twin's loop thread; same parameters, same docstring, the awaited result;
- ``on = on_loop(AsyncThalovantClient.on)``: a plain method that must run on the loop thread
  (it touches loop-owned state); ``wrap=`` turns an async result (a stream, a conversation) into
  its own sync twin;
- ``connected = attribute[bool]()``: an attribute read (and, with ``writable=True``, written)
  on the async object.

Class creation fails when the async class has a public method or property the twin lacks, so
the two cannot drift: a new async method needs its one-line twin (or a place in ``own=``, for a
member the twin implements by hand or deliberately leaves out).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from thalovant.runtime.loop import LoopThread

A = TypeVar("A")
P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")


class SyncTwin(Generic[A]):
    """Base of a synchronous facade over one async object living on a :class:`LoopThread`.

    ``twin_exempt`` names the async members the twin implements by hand or leaves out (``own=``).
    """

    twin_exempt: frozenset[str] = frozenset()

    def __init_subclass__(cls, *, twin_of: type | None = None, own: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if twin_of is None:
            return
        cls.twin_exempt = frozenset(own)
        missing = sorted(
            name
            for name in dir(twin_of)
            if not name.startswith("_") and name not in cls.twin_exempt and not hasattr(cls, name)
        )
        if missing:
            raise TypeError(f"{cls.__name__} lacks the sync twin of {twin_of.__name__}." + ", .".join(missing))

    def _target(self) -> tuple[LoopThread, A]:
        """The loop thread and the async object calls go to (started on demand)."""
        raise NotImplementedError


class _Member:
    name = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name


class blocking(_Member, Generic[A, P, R]):
    """The sync twin of a coroutine method."""

    def __init__(self, method: Callable[Concatenate[A, P], Awaitable[R]]) -> None:
        self._method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type) -> blocking[A, P, R]: ...
    @overload
    def __get__(self, obj: SyncTwin[A], owner: type) -> Callable[P, R]: ...
    def __get__(self, obj: SyncTwin[A] | None, owner: type) -> blocking[A, P, R] | Callable[P, R]:
        if obj is None:
            return self
        method = self._method

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            runner, target = obj._target()

            async def run() -> R:
                return await method(target, *args, **kwargs)

            return runner.run(run())

        return call


class on_loop(_Member, Generic[A, P, R, S]):
    """The sync twin of a plain method that must run on the loop thread; ``wrap(runner,
    result)`` converts its result (default: returned as is)."""

    @overload
    def __init__(self: on_loop[A, P, R, R], method: Callable[Concatenate[A, P], R]) -> None: ...
    @overload
    def __init__(self, method: Callable[Concatenate[A, P], R], wrap: Callable[[LoopThread, R], S]) -> None: ...
    def __init__(
        self,
        method: Callable[Concatenate[A, P], R],
        wrap: Callable[[LoopThread, R], S] | None = None,
    ) -> None:
        self._method = method
        self._wrap = wrap
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type) -> on_loop[A, P, R, S]: ...
    @overload
    def __get__(self, obj: SyncTwin[A], owner: type) -> Callable[P, S]: ...
    def __get__(self, obj: SyncTwin[A] | None, owner: type) -> on_loop[A, P, R, S] | Callable[P, S]:
        if obj is None:
            return self
        method, wrap = self._method, self._wrap

        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> S:
            runner, target = obj._target()

            async def run() -> R:
                return method(target, *args, **kwargs)

            result = runner.run(run())
            return wrap(runner, result) if wrap is not None else result  # type: ignore[return-value]

        return call


class attribute(_Member, Generic[T]):
    """An attribute of the async object, read (and written, when ``writable``) through the twin."""

    def __init__(self, *, writable: bool = False) -> None:
        self._writable = writable

    @overload
    def __get__(self, obj: None, owner: type) -> attribute[T]: ...
    @overload
    def __get__(self, obj: SyncTwin[Any], owner: type) -> T: ...
    def __get__(self, obj: SyncTwin[Any] | None, owner: type) -> attribute[T] | T:
        if obj is None:
            return self
        value: T = getattr(obj._target()[1], self.name)
        return value

    def __set__(self, obj: SyncTwin[Any], value: T) -> None:
        if not self._writable:
            raise AttributeError(f"{self.name} is read-only")
        setattr(obj._target()[1], self.name, value)
