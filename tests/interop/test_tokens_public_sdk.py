"""Tokens as the public SDK 0.9.7 meets them on ``serve``: revoking needs the scopes, a password
change ends the SDK's other sessions, and API tokens carry an expiry."""

from __future__ import annotations

import secrets

import httpx
import pytest
from tests.fixtures.server import RunningServer
from tests.interop.test_public_sdk_owner_control import add_account, run
from tests.interop.test_public_sdk_wss import SdkRunner

pytestmark = pytest.mark.interop


def test_a_narrow_token_cannot_revoke_a_broad_one_and_a_password_change_ends_the_other_sessions(
    run_public_sdk: SdkRunner, server: RunningServer
) -> None:
    email, password = add_account(server)
    with httpx.Client(base_url=server.api_url, verify=str(server.ca_file), timeout=60) as http:
        session = http.post("/v1/auth/token", json={"email": email, "password": password}).json()["access_token"]
        auth = {"authorization": f"Bearer {session}"}
        broad = http.post("/v1/auth/api-tokens", json={"name": "broad"}, headers=auth).json()
        narrow = http.post("/v1/auth/api-tokens", json={"name": "narrow", "scopes": ["hubs:read"]}, headers=auth).json()
    assert broad["expires_at"] and narrow["expires_at"]
    new_password = "another-long-passphrase-" + secrets.token_hex(6)
    code = f"""
from thalovant.errors import ThalovantAuthError
result = {{}}
narrow = ThalovantControlPlane(URL, access_token={narrow["access_token"]!r})
try:
    narrow.revoke_api_token({broad["id"]!r})
    result["narrow_revokes_broad"] = "revoked"
except ThalovantAuthError as exc:
    result["narrow_revokes_broad"] = "refused"
broad = ThalovantControlPlane(URL, access_token={broad["access_token"]!r})
result["broad_alive"] = broad.get_profile()["email"]
broad.revoke_api_token({narrow["id"]!r})
try:
    narrow.get_profile()
    result["narrow_after"] = "alive"
except ThalovantAuthError:
    result["narrow_after"] = "revoked"

other = signed_in({email!r}, {password!r})
mine = signed_in({email!r}, {password!r})
import urllib.request, ssl
request = urllib.request.Request(URL + "/v1/users/password", method="POST",
    data=json.dumps({{"current_password": {password!r}, "new_password": {new_password!r}}}).encode(),
    headers={{"authorization": "Bearer " + mine.access_token, "content-type": "application/json"}})
trust = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
result["change"] = urllib.request.urlopen(request, context=trust).status
result["mine_after"] = mine.get_profile()["email"]
try:
    other.get_profile()
    result["other_after"] = "alive"
except ThalovantAuthError:
    result["other_after"] = "revoked"
try:
    signed_in({email!r}, {password!r})
    result["old_password"] = "accepted"
except ThalovantAuthError:
    result["old_password"] = "refused"
result["new_password"] = signed_in({email!r}, {new_password!r}).get_profile()["email"]
emit_result(result)
"""
    result = run(run_public_sdk, server, code)
    assert result == {
        "narrow_revokes_broad": "refused",
        "broad_alive": email,
        "narrow_after": "revoked",
        "change": 204,
        "mine_after": email,
        "other_after": "revoked",
        "old_password": "refused",
        "new_password": email,
    }
