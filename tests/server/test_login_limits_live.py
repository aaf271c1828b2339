"""The sign-in limiter on a real ``serve``: 40 parallel guesses, several client addresses, no lock-out.

Loopback has the whole 127.0.0.0/8, so each client binds its own source address and the server
sees distinct client addresses. A 401 is an attempt that reached the password check (argon2); a
429 one the limiter refused before it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from tests.fixtures.server import RunningServer


def client(server: RunningServer, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address, verify=str(server.ca_file))
    return httpx.AsyncClient(base_url=server.api_url, transport=transport, timeout=120)


async def sign_in(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/v1/auth/token", json={"email": email, "password": password})


def test_forty_parallel_guesses_reach_the_password_check_a_bounded_number_of_times_and_lock_no_one_out(
    server_factory: Callable[..., RunningServer],
) -> None:
    server = server_factory()
    email, password = server.demo_email, server.demo_password

    async def scenario() -> dict[str, object]:
        async with (
            client(server, "127.0.0.3") as home,
            client(server, "127.0.0.1") as attacker,
            client(server, "127.0.0.2") as second_attacker,
            client(server, "127.0.0.4") as new_device,
        ):
            assert (await sign_in(home, email, password)).status_code == 200  # the holder's usual address
            guesses = await asyncio.gather(*(sign_in(attacker, email, f"guess-{n}") for n in range(40)))
            more = await asyncio.gather(*(sign_in(second_attacker, email, f"other-{n}") for n in range(40)))
            refused_new = await sign_in(new_device, email, password)
            at_home = await sign_in(home, email, password)  # while strangers are backed off
            # the attack goes on; a new address waits out the account's back-off, it is not locked out
            await asyncio.gather(*(sign_in(second_attacker, email, f"again-{n}") for n in range(40)))
            started, waited = time.monotonic(), await sign_in(new_device, email, password)
            while waited.status_code == 429 and time.monotonic() - started < 600:
                await asyncio.sleep(float(waited.headers["retry-after"]))
                waited = await sign_in(new_device, email, password)
            refused = [r for r in (*guesses, *more) if r.status_code != 401]
            return {
                "guesses": [r.status_code for r in guesses],
                "more": [r.status_code for r in more],
                "retry_after": sorted({int(r.headers["retry-after"]) for r in refused}),
                "at_home": at_home.status_code,
                "refused_new": refused_new.status_code,
                "waited": waited.status_code,
            }

    result = asyncio.run(scenario())
    guesses, more = result["guesses"], result["more"]
    assert isinstance(guesses, list) and isinstance(more, list)
    assert guesses.count(401) <= 5 and guesses.count(401) + guesses.count(429) == 40, guesses
    # the account had its free failures already: the second address gets at most one check in
    assert more.count(401) <= 1 and more.count(401) + more.count(429) == 40, more
    assert result["retry_after"] and max(result["retry_after"]) <= 2  # type: ignore[call-overload]
    assert result["refused_new"] == 429
    assert result["at_home"] == 200
    assert result["waited"] == 200
