"""A hub owner controls every client of their hub, through the public SDK 0.9.7 against ``serve``.

Another account provisions an identity on the owner's public hub. The owner lists it, revokes
it (its live session closes at once); when the hub turns private, the other account's remaining
identity is refused on every carrier, its live session included. A hub with every carrier
switched off refuses every carrier.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from tests.fixtures.server import RunningServer
from tests.interop.test_public_sdk_wss import GUIDE_JOKE, SdkRunner, result_of

from thalovant_server.app import open_control_plane
from thalovant_server.config import ServerConfig
from thalovant_server.secrets import hash_password
from thalovant_server.store import accounts

pytestmark = pytest.mark.interop

PRELUDE = """
import json, os
from thalovant import ThalovantClient, ThalovantControlPlane
from thalovant.errors import ThalovantError

URL = os.environ["THALOVANT_API_URL"]

def signed_in(email, password):
    api = ThalovantControlPlane(URL)
    api.login(email, password)
    return api

def ids(page):
    rows = page.get("data", []) if isinstance(page, dict) else page
    return sorted(row["id"] for row in rows)

def outcome(identity, carrier, folder):
    try:
        with ThalovantClient(identity, protocol=carrier, noise_state_dir=folder, reply_settle_seconds=0,
                             auto_reconnect=False) as c:
            return "answered: " + c.ask("Tell me a short clean joke.", timeout=10).text
    except ThalovantError as exc:
        return type(exc).__name__

def emit_result(value):
    print("RESULT " + json.dumps(value))
"""


def add_account(server: RunningServer) -> tuple[str, str]:
    """A second account on the running server (written to its store, as an operator would)."""
    email, password = f"guest-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(16)

    async def create() -> None:
        config = ServerConfig(data_dir=server.data_dir)
        async with open_control_plane(config) as plane, plane.store.session() as session:
            await accounts.create_user(session, email=email, password_hash=hash_password(password))

    asyncio.run(create())
    return email, password


def run(run_public_sdk: SdkRunner, server: RunningServer, code: str, **env: str) -> Any:
    completed = run_public_sdk(PRELUDE + code, env={"THALOVANT_API_URL": server.api_url, **env},
                               ca_file=server.ca_file)  # fmt: skip
    return result_of(completed)


def test_the_owner_lists_and_revokes_other_accounts_clients_and_a_private_hub_refuses_them(
    run_public_sdk: SdkRunner, server: RunningServer
) -> None:
    guest_email, guest_password = add_account(server)
    code = f"""
owner = signed_in({server.demo_email!r}, {server.demo_password!r})
guest = signed_in({guest_email!r}, {guest_password!r})
spec = {{"version": "1", "skills": ["jokes"], "protocols": {{"wss": True, "http": True, "mqtt": True}}}}
hub = owner.create_hub({{"name": "shared-{secrets.token_hex(3)}", "visibility": "public", "spec": spec}})
first = guest.create_client_identity(hub["id"], name="guest-first")
second = guest.create_client_identity(hub["id"], name="guest-second")
mine = owner.create_client_identity(hub["id"], name="owner-own")
made = sorted([first.client["id"], second.client["id"], mine.client["id"]])
result = {{"listed": ids(owner.list_clients(hub_id=hub["id"])) == made}}
result["fetched"] = owner.get_client(first.client["id"])["id"] == first.client["id"]

# the owner revokes a guest identity while its session is live
with ThalovantClient(first.identity, protocol="wss", noise_state_dir="k1", reply_settle_seconds=0) as c:
    result["before"] = c.ask("Tell me a short clean joke.").text
    owner.delete_client(first.client["id"])
    try:
        result["after_revoke"] = "answered: " + c.ask("What can this hub do?", timeout=10).text
    except ThalovantError as exc:
        result["after_revoke"] = type(exc).__name__
result["guest_lists"] = ids(guest.list_clients(hub_id=hub["id"])) == [second.client["id"]]

# the hub turns private while the other guest identity is connected
with ThalovantClient(second.identity, protocol="wss", noise_state_dir="k2", reply_settle_seconds=0) as c:
    result["second_before"] = c.ask("Tell me a short clean joke.").text
    hub = owner.get_hub(hub["id"])
    owner.update_hub(hub["id"], {{"visibility": "workspace"}}, etag=hub["etag"])
    try:
        result["after_private"] = "answered: " + c.ask("What can this hub do?", timeout=10).text
    except ThalovantError as exc:
        result["after_private"] = type(exc).__name__
result["refused"] = {{carrier: outcome(second.identity, carrier, "k2") for carrier in ("wss", "https", "mqtt")}}
result["owner_served"] = {{carrier: outcome(mine.identity, carrier, "k3") for carrier in ("wss", "https", "mqtt")}}

# every carrier switched off: nothing is served, not even the owner's identity
hub = owner.get_hub(hub["id"])
off = {{"version": "1", "skills": ["jokes"], "protocols": {{"wss": False, "http": False, "mqtt": False}}}}
owner.update_hub(hub["id"], {{"spec": off}}, etag=hub["etag"])
result["all_off"] = {{carrier: outcome(mine.identity, carrier, "k3") for carrier in ("wss", "https", "mqtt")}}
emit_result(result)
"""
    result = run(run_public_sdk, server, code)
    assert result["listed"] and result["fetched"] and result["guest_lists"]
    assert result["before"] == GUIDE_JOKE and result["second_before"] == GUIDE_JOKE
    assert not result["after_revoke"].startswith("answered"), result
    assert not result["after_private"].startswith("answered"), result
    assert all(not value.startswith("answered") for value in result["refused"].values()), result
    assert result["owner_served"] == {carrier: f"answered: {GUIDE_JOKE}" for carrier in ("wss", "https", "mqtt")}
    assert all(not value.startswith("answered") for value in result["all_off"].values()), result


def test_guests_cannot_see_or_revoke_the_owners_clients(
    run_public_sdk: SdkRunner, server: RunningServer
) -> None:
    guest_email, guest_password = add_account(server)
    code = f"""
owner = signed_in({server.demo_email!r}, {server.demo_password!r})
guest = signed_in({guest_email!r}, {guest_password!r})
hub = owner.create_hub({{"name": "open-{secrets.token_hex(3)}", "visibility": "public",
                        "spec": {{"version": "1", "skills": ["jokes"]}}}})
mine = owner.create_client_identity(hub["id"], name="owner-only")
result = {{"guest_lists": ids(guest.list_clients(hub_id=hub["id"]))}}
try:
    guest.get_client(mine.client["id"])
    result["guest_get"] = "found"
except ThalovantError as exc:
    result["guest_get"] = type(exc).__name__
guest.delete_client(mine.client["id"])  # a 404 counts as success for the SDK
result["still_there"] = owner.get_client(mine.client["id"])["id"] == mine.client["id"]
emit_result(result)
"""
    result = run(run_public_sdk, server, code)
    assert result["guest_lists"] == []
    assert result["guest_get"] != "found"
    assert result["still_there"] is True
