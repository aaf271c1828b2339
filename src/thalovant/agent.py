"""The agent runner: a long-lived client with handlers, kept connected until it is stopped.

::

    agent = ThalovantAgent.from_identity_file("identity.json")

    @agent.on_speak
    def show(event):
        print(event.text)

    agent.send_utterance("Tell me a short clean joke.")
    agent.run_forever()          # until agent.stop() (another thread, a handler) or Ctrl-C

:class:`AsyncThalovantAgent` is the implementation; :class:`ThalovantAgent` its synchronous
twin, whose handlers run on the agent's loop thread (a handler may call ``stop()``, but not the
agent's blocking methods). ``run_forever`` checks the link every ``poll_interval`` seconds
(a local check: nothing is sent while the link is up) and dials again when it is down, as the
client's failure policy says; it raises when waiting cannot help (the hub refused the identity,
the client key was rejected, the hub's key changed). Handlers stay subscribed across reconnects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack, overload

from thalovant.client import (
    AsyncConversation,
    AsyncThalovantClient,
    ClientOptions,
    Conversation,
    ThalovantClient,
    _FromIdentity,
)
from thalovant.errors import ThalovantError
from thalovant.events import EVENT_SPEAK, ThalovantEvent
from thalovant.identity import ThalovantIdentity
from thalovant.models import ThalovantReply
from thalovant.runtime.loop import LoopThread
from thalovant.runtime.policy import waiter_gives_up
from thalovant.runtime.subscriptions import Subscription
from thalovant.runtime.twin import SyncTwin, blocking, on_loop

__all__ = ["AsyncThalovantAgent", "ThalovantAgent"]

log = logging.getLogger("thalovant.agent")

H = TypeVar("H", bound=Callable[[ThalovantEvent], Any])

DEFAULT_POLL_INTERVAL = 0.25


class AsyncThalovantAgent(_FromIdentity):
    """A long-lived asyncio client with handlers (see the module docstring)."""

    def __init__(
        self, identity: ThalovantIdentity, protocol: str | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        self.client = AsyncThalovantClient(identity, protocol, **options)
        self._stopped: asyncio.Event | None = None
        self._stop_requested = False

    @classmethod
    def around(cls, client: AsyncThalovantClient) -> AsyncThalovantAgent:
        """An agent driving an existing client."""
        agent = cls.__new__(cls)
        agent.client = client
        agent._stopped = None
        agent._stop_requested = False
        return agent

    # -- handlers

    @overload
    def on(self, event_name: str, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def on(self, event_name: str, handler: H) -> H: ...
    def on(self, event_name: str, handler: H | None = None) -> H | Callable[[H], H]:
        """Call ``handler(event)`` for every ``event_name`` event (``"*"``: all); usable as a
        decorator. Returns the handler; :meth:`subscribe` returns a closable subscription."""
        if handler is None:

            def register(func: H) -> H:
                self.client.on(event_name, func)
                return func

            return register
        self.client.on(event_name, handler)
        return handler

    @overload
    def on_speak(self, handler: None = None) -> Callable[[H], H]: ...
    @overload
    def on_speak(self, handler: H) -> H: ...
    def on_speak(self, handler: H | None = None) -> H | Callable[[H], H]:
        """:meth:`on` for the hub's ``speak`` events."""
        return self.on(EVENT_SPEAK, handler)

    def subscribe(self, event_name: str, handler: Callable[[ThalovantEvent], Any]) -> Subscription:
        """Like :meth:`on`; the returned subscription's ``close()`` stops it."""
        return self.client.on(event_name, handler)

    # -- talking to the hub

    async def ask(
        self,
        text: str,
        *,
        lang: str = "en-us",
        session_id: str | None = None,
        request_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        timeout: float = 12,
    ) -> ThalovantReply:
        """The client's ``ask``."""
        return await self.client.ask(
            text, lang=lang, session_id=session_id, request_id=request_id, context=context, timeout=timeout
        )

    async def send_utterance(
        self,
        text: str,
        *,
        lang: str = "en-us",
        session_id: str | None = None,
        request_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> str:
        """The client's ``send_utterance``: the request id."""
        return await self.client.send_utterance(
            text, lang=lang, session_id=session_id, request_id=request_id, context=context
        )

    def conversation(self, lang: str = "en-us", session_id: str | None = None) -> AsyncConversation:
        """The client's ``conversation``."""
        return self.client.conversation(lang, session_id)

    # -- running

    async def run_forever(self, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        """Keep the link up and the handlers served until :meth:`stop`."""
        self._stopped = asyncio.Event()
        if self._stop_requested:
            self._stop_requested = False
            return
        try:
            while not self._stopped.is_set():
                if not self.client.connected:
                    try:
                        await self.client.connect()
                    except ThalovantError as exc:
                        if waiter_gives_up(exc):
                            raise
                        log.info("The hub is not reachable yet (%s); trying again.", type(exc).__name__)
                try:
                    await asyncio.wait_for(self._stopped.wait(), poll_interval)
                except TimeoutError:
                    continue
        finally:
            self._stopped = None
            self._stop_requested = False

    def stop(self) -> None:
        """Make :meth:`run_forever` return (call it on the agent's loop: a handler, a task)."""
        if self._stopped is not None:
            self._stopped.set()
        else:
            self._stop_requested = True

    async def close(self) -> None:
        """Stop and close the client."""
        self.stop()
        await self.client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class ThalovantAgent(SyncTwin[AsyncThalovantAgent], _FromIdentity, twin_of=AsyncThalovantAgent, own=("around",)):
    """The synchronous agent: an :class:`AsyncThalovantAgent` on the client's loop thread.

    ``run_forever`` blocks the calling thread; ``stop`` may be called from any thread or
    handler; ``client`` is the synchronous :class:`ThalovantClient` it drives."""

    def __init__(
        self, identity: ThalovantIdentity, protocol: str | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        self.client = ThalovantClient(identity, protocol, **options)
        self._agent: AsyncThalovantAgent | None = None

    def _target(self) -> tuple[LoopThread, AsyncThalovantAgent]:
        runner, client = self.client._target()
        if self._agent is None or self._agent.client is not client:
            self._agent = AsyncThalovantAgent.around(client)
        return runner, self._agent

    on = on_loop(AsyncThalovantAgent.on)
    on_speak = on_loop(AsyncThalovantAgent.on_speak)
    subscribe = on_loop(AsyncThalovantAgent.subscribe)
    ask = blocking(AsyncThalovantAgent.ask)
    send_utterance = blocking(AsyncThalovantAgent.send_utterance)
    conversation = on_loop(AsyncThalovantAgent.conversation, Conversation)
    run_forever = blocking(AsyncThalovantAgent.run_forever)

    def stop(self) -> None:
        """Make :meth:`run_forever` return; safe from any thread, a handler included."""
        runner, agent = self._target()
        runner.loop.call_soon_threadsafe(agent.stop)

    def close(self) -> None:
        """Stop, close the connection and the loop thread."""
        if self._agent is not None:
            self.stop()
        self.client.close()
        self._agent = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
