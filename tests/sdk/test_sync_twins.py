"""The sync classes are generated from the async ones and cannot drift."""

from __future__ import annotations

import inspect

import pytest

from thalovant.client import AsyncConversation, AsyncThalovantClient, Conversation, ThalovantClient
from thalovant.control import AsyncThalovantControlPlane, ThalovantControlPlane
from thalovant.runtime.loop import LoopThread
from thalovant.runtime.twin import SyncTwin, blocking


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


@pytest.mark.parametrize(
    ("sync", "async_"),
    [
        (ThalovantClient, AsyncThalovantClient),
        (ThalovantControlPlane, AsyncThalovantControlPlane),
        (Conversation, AsyncConversation),
    ],
)
def test_every_async_member_has_a_twin_with_its_signature(sync: type, async_: type) -> None:
    assert _public(async_) - sync.twin_exempt <= _public(sync)
    for name in _public(async_) - sync.twin_exempt:
        original = getattr(async_, name)
        twin = sync.__dict__.get(name)
        if isinstance(twin, blocking):
            assert twin.__doc__ == original.__doc__
            assert inspect.signature(twin._method) == inspect.signature(original)


def test_the_sync_client_has_on_binary() -> None:
    assert "on_binary" in ThalovantClient.__dict__


def test_a_twin_missing_a_method_fails_at_class_creation() -> None:
    class Target:
        async def ping(self) -> str:
            return "pong"

        async def pong(self) -> str:
            return "ping"

    with pytest.raises(TypeError, match="pong"):

        class Incomplete(SyncTwin[Target], twin_of=Target):
            ping = blocking(Target.ping)

    class Complete(SyncTwin[Target], twin_of=Target):
        ping = blocking(Target.ping)
        pong = blocking(Target.pong)

        def __init__(self) -> None:
            self.runner = LoopThread()
            self.target = Target()

        def _target(self) -> tuple[LoopThread, Target]:
            return self.runner, self.target

    twin = Complete()
    try:
        assert (twin.ping(), twin.pong()) == ("pong", "ping")
    finally:
        twin.runner.stop()
