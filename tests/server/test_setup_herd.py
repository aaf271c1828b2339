"""A herd of connections set up at once: shared loads, admission slots, and the runtime's use of
them (one hub load and one credential lookup for many concurrent connections)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from tests.server.test_runtime import MemoryDirectory, credentials, hub_keys

from thalovant_server.hub.admission import Admission
from thalovant_server.hub.directory import ClientCredentials, HubKeys
from thalovant_server.hub.memory_book import Fact, MemoryBook
from thalovant_server.hub.runtime import HubRuntime
from thalovant_server.hub.shared import SharedLoads


class GatedDirectory(MemoryDirectory):
    """Counts lookups; each waits for ``gate`` so that callers pile up behind the first."""

    def __init__(self) -> None:
        super().__init__(hubs={"hub-1": hub_keys()}, clients={"key-1": credentials()})
        self.gate = asyncio.Event()
        self.calls: dict[str, int] = {"hub": 0, "client": 0}

    async def load_hub(self, hub_id: str) -> HubKeys | None:
        self.calls["hub"] += 1
        await self.gate.wait()
        return await super().load_hub(hub_id)

    async def find_client(self, hub_id: str, access_key: str) -> ClientCredentials | None:
        self.calls["client"] += 1
        await self.gate.wait()
        return await super().find_client(hub_id, access_key)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_loads_of_a_key_share_one_and_errors_are_shared_not_kept() -> None:
    loads = SharedLoads[str, int]()
    gate, calls = asyncio.Event(), []

    async def load() -> int:
        calls.append(1)
        await gate.wait()
        return 7

    waiters = [asyncio.create_task(loads.get("a", load)) for _ in range(20)]
    await settle()
    gate.set()
    assert await asyncio.gather(*waiters) == [7] * 20
    assert len(calls) == 1 and len(loads) == 0  # no ttl: nothing kept
    await loads.get("a", load)
    assert len(calls) == 2

    async def broken() -> int:
        await gate.wait()
        raise LookupError("down")

    failing = [asyncio.create_task(loads.get("b", broken)) for _ in range(3)]
    results = await asyncio.gather(*failing, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    assert await loads.get("b", load) == 7


async def test_kept_results_expire_are_filtered_and_forgotten() -> None:
    now = [0.0]
    loads = SharedLoads[str, int | None](ttl=10, clock=lambda: now[0])
    answers = iter([1, 2, None, 3, 4])

    async def load() -> int | None:
        return next(answers)

    assert await loads.get("a", load, keep=lambda v: v is not None) == 1
    assert await loads.get("a", load) == 1  # kept
    now[0] = 10.5
    assert await loads.get("a", load) == 2  # expired
    assert await loads.get("b", load, keep=lambda v: v is not None) is None  # refused by keep
    assert await loads.get("b", load) == 3
    loads.forget(lambda key, _v: key == "a")
    assert await loads.get("a", load) == 4
    assert await loads.get("b", load) == 3


async def test_a_load_running_when_forget_is_called_is_shared_but_not_kept() -> None:
    loads = SharedLoads[str, int](ttl=60)
    gate, calls = asyncio.Event(), []

    async def load() -> int:
        calls.append(1)
        await gate.wait()
        return len(calls)

    first = asyncio.create_task(loads.get("a", load))
    await settle()
    loads.forget(lambda _k, _v: True)
    second = asyncio.create_task(loads.get("a", load))
    await settle()
    gate.set()
    assert (await first, await second) == (1, 1)
    assert await loads.get("a", load) == 2


async def test_admission_lets_limit_setups_in_at_a_time_in_order() -> None:
    admission = Admission(2, hold=60)
    entered: list[int] = []
    leave = {n: asyncio.Event() for n in range(5)}

    async def setup(n: int) -> None:
        async with admission.slot():
            entered.append(n)
            await leave[n].wait()

    tasks = [asyncio.create_task(setup(n)) for n in range(5)]
    await settle()
    assert entered == [0, 1] and admission.waiting
    leave[1].set()
    await settle()
    assert entered == [0, 1, 2]
    for event in leave.values():
        event.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2, 3, 4] and not admission.waiting


async def test_a_setup_that_holds_its_slot_too_long_gives_it_up() -> None:
    admission = Admission(1, hold=0)  # every slot given up at the next loop turn
    stalled, second_in = asyncio.Event(), asyncio.Event()

    async def stalling() -> None:
        async with admission.slot():
            await stalled.wait()

    async def second() -> None:
        async with admission.slot():
            second_in.set()

    first = asyncio.create_task(stalling())
    await settle()
    await asyncio.wait_for(asyncio.create_task(second()), 30)  # not behind the stalled one
    assert second_in.is_set() and not first.done()
    stalled.set()
    await first
    assert not admission.waiting  # released once, not twice
    async with admission.slot():
        assert admission.waiting


async def test_a_herd_of_connections_costs_one_hub_load_and_one_lookup_per_key() -> None:
    directory = GatedDirectory()
    runtime = HubRuntime(directory)

    async def connect() -> ClientCredentials | None:
        host = await runtime.host("hub-1")
        assert host is not None
        return await runtime.credentials(host.hub_id, "key-1")

    herd = [asyncio.create_task(connect()) for _ in range(50)]
    await settle()
    directory.gate.set()
    found = await asyncio.gather(*herd)
    assert all(creds is not None and creds.client_id == "client-1" for creds in found)
    assert directory.calls == {"hub": 1, "client": 1}
    await runtime.credentials("hub-1", "key-1")  # kept for later connections too
    assert directory.calls["client"] == 1


async def test_a_herd_of_one_clients_connections_loads_its_remembered_facts_once() -> None:
    directory = GatedDirectory()
    directory.gate.set()
    loads: list[str] = []
    stored = asyncio.Event()

    async def load(client_id: str) -> list[Fact]:
        loads.append(client_id)
        await stored.wait()
        return [Fact("favourite colour", "green")]

    memory = MemoryBook(load, lambda _entry: True)
    runtime = HubRuntime(directory, memory=memory)
    assert await runtime.host("hub-1") is not None
    herd = [asyncio.create_task(runtime.credentials("hub-1", "key-1")) for _ in range(50)]
    await settle()
    memory.put("client-1", "name", "Ada", force=True)  # told while the load runs: kept too
    stored.set()
    assert all(creds is not None for creds in await asyncio.gather(*herd))
    assert loads == ["client-1"]
    assert memory.facts("client-1") == {"favourite colour": "green", "name": "Ada"}
    await runtime.credentials("hub-1", "key-1")  # cached now: no query
    assert loads == ["client-1"]


async def test_revocation_and_hub_changes_forget_kept_credentials() -> None:
    directory = GatedDirectory()
    directory.gate.set()
    runtime = HubRuntime(directory)
    assert await runtime.host("hub-1") is not None
    assert await runtime.credentials("hub-1", "key-1") is not None
    await runtime.client_revoked("client-1")
    assert await runtime.credentials("hub-1", "key-1") is None
    assert directory.calls["client"] == 2

    # another client: a hub change makes the next connection read the directory again
    directory.clients["key-2"] = credentials("client-2")
    assert await runtime.credentials("hub-1", "key-2") is not None
    directory.clients["key-2"] = dataclasses.replace(directory.clients["key-2"], site_id="moved")
    await runtime.hub_changed("hub-1")
    creds = await runtime.credentials("hub-1", "key-2")
    assert creds is not None and creds.site_id == "moved"
    del directory.clients["key-2"]
    await runtime.reconcile()
    assert await runtime.credentials("hub-1", "key-2") is None


@pytest.mark.parametrize("missing", ["nope", ""])
async def test_unknown_keys_are_never_kept(missing: str) -> None:
    directory = GatedDirectory()
    directory.gate.set()
    runtime = HubRuntime(directory)
    assert await runtime.credentials("hub-1", missing) is None
    directory.clients[missing] = credentials("late")
    creds = await runtime.credentials("hub-1", missing)
    assert creds is not None and creds.client_id == "late"
