"""Device and native sign-in end to end: each SDK in its own process, a real server, and a
person approving or denying on the server's pages in Debian's headless Chromium.

The SDKs open the browser the way they do for a user (``webbrowser.open``); ``BROWSER`` points
at tests/fixtures/browser.py, which drives Chromium over DevTools: it signs in on the page and
presses Approve or Deny. Both SDKs run the same snippets: the public SDK 0.9.7 from its own
venv, unchanged, and ours (sync and async).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from tests.fixtures.browser import chromium_path
from tests.fixtures.peers import OUR_PYTHON, run_python, trust_env
from tests.fixtures.server import RunningServer, new_server

pytestmark = pytest.mark.interop

BROWSER_SCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "browser.py"

RunSnippet = Callable[..., CompletedProcess[str]]


@pytest.fixture(scope="module")
def signin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server asking devices to poll every second (the default five would only slow the tests)."""
    if chromium_path() is None:
        pytest.fail("Debian's chromium is needed for these tests: apt-get install chromium (scripts/test does)")
    server = new_server(
        tmp_path_factory.mktemp("signin"), mqtt_broker="off", extra_env={"THALOVANT_DEVICE_INTERVAL": "1"}
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sdk097", "ours"])
def run_sdk(request: pytest.FixtureRequest, signin_server: RunningServer, tmp_path: Path) -> RunSnippet:
    """Run a snippet with one SDK; ``decision`` is what the person in the browser presses."""
    python = request.getfixturevalue("public_sdk_python") if request.param == "sdk097" else OUR_PYTHON

    def run(code: str, *, decision: str = "approve") -> CompletedProcess[str]:
        env = {
            "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
            "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
            "HOME": str(tmp_path / "home"),
            "BROWSER": f"{sys.executable} {BROWSER_SCRIPT} %s",
            "THALOVANT_TEST_EMAIL": signin_server.demo_email,
            "THALOVANT_TEST_PASSWORD": signin_server.demo_password,
            "THALOVANT_TEST_DECISION": decision,
            "THALOVANT_TEST_TRUSTED_CERTS": str(signin_server.data_dir / "server.pem"),
            **trust_env(signin_server.ca_file),
        }
        return run_python(python, code, env=env, cwd=tmp_path, timeout=240)

    return run


def last_json(done: CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-4000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


LOGIN_WITH_BROWSER = """
import json
from thalovant import ThalovantControlPlane
api = ThalovantControlPlane({api_url!r})
token = api.login_with_browser(client_name="interop laptop", timeout=120)
out = {{"keys": sorted(token), "scopes": token["scopes"], "token_id_kept": api.token_id == token["token_id"]}}
out["email"] = api.get_profile()["email"]
saved = token["access_token"]
api.revoke_api_token()
out["forgotten"] = api.access_token is None
again = ThalovantControlPlane({api_url!r}, access_token=saved)
try:
    again.get_profile()
    out["after_revoke"] = "still works"
except Exception as exc:
    out["after_revoke"] = [type(exc).__name__, getattr(exc, "status_code", None)]
print(json.dumps(out))
"""


def test_login_with_browser_approved_in_chromium(signin_server: RunningServer, run_sdk: RunSnippet) -> None:
    out = last_json(run_sdk(LOGIN_WITH_BROWSER.format(api_url=signin_server.api_url)))
    assert {"access_token", "token_id", "scopes", "expires_at", "token_type"} <= set(out["keys"])
    assert out["scopes"] == ["hubs:read", "clients:write"]
    assert out["token_id_kept"] is True and out["email"] == signin_server.demo_email
    assert out["forgotten"] is True
    assert out["after_revoke"] == ["ThalovantAuthError", 401]


DEVICE_DENIED = """
import json, webbrowser
import thalovant
from thalovant import ThalovantControlPlane
device = ThalovantControlPlane({api_url!r})
grant = device.begin_device_login(client_id="thalovant-home-assistant", client_name="HA kitchen")
out = {{"user_code": grant.user_code, "uri": grant.verification_uri, "interval": grant.interval}}
try:
    device.poll_device_login(grant)
except thalovant.ThalovantDeviceLoginPending as exc:
    out["pending"] = exc.interval
person = ThalovantControlPlane({api_url!r})
person.login({email!r}, {password!r})
seen = person.describe_device_login(grant.user_code)
out["described"] = [list(seen.scopes), seen.client_name, seen.client_id, seen.client_verified, seen.device_name]
webbrowser.open(grant.verification_uri_complete)  # the person presses Deny in Chromium
try:
    device.poll_device_login(grant)
    out["outcome"] = "token"
except thalovant.ThalovantDeviceLoginDenied as exc:
    out["outcome"] = ["denied", exc.status_code]
try:
    person.describe_device_login(grant.user_code)
except thalovant.ThalovantAPIError as exc:
    out["describe_after"] = [exc.status_code, exc.detail]
try:
    device.poll_device_login("never-issued-device-code")
except thalovant.ThalovantAPIError as exc:
    out["unknown"] = [type(exc).__name__, exc.status_code, (exc.problem or {{}}).get("error")]
print(json.dumps(out))
"""


def test_device_login_denied_in_chromium(signin_server: RunningServer, run_sdk: RunSnippet) -> None:
    code = DEVICE_DENIED.format(
        api_url=signin_server.api_url, email=signin_server.demo_email, password=signin_server.demo_password
    )
    out = last_json(run_sdk(code, decision="deny"))
    assert out["uri"] == f"{signin_server.api_url}/activate" and out["interval"] == 1
    assert out["pending"] == 1
    assert out["described"] == [
        ["hubs:read", "clients:read", "clients:write"],
        "Home Assistant",
        "thalovant-home-assistant",
        True,
        "HA kitchen",
    ]
    assert out["outcome"] == ["denied", 400]
    assert out["describe_after"] == [404, "Device code not found"]
    assert out["unknown"] == ["ThalovantAPIError", 400, "invalid_grant"]


DEVICE_EXPIRED = """
import json, sqlite3
import thalovant
from thalovant import ThalovantControlPlane
device = ThalovantControlPlane({api_url!r})
grant = device.begin_device_login(client_name="slow device")
# time passes: the code's lifetime is over
with sqlite3.connect({database!r}, timeout=30) as db:
    db.execute("UPDATE device_grants SET expires_at = '2000-01-01 00:00:00.000000'")
try:
    device.poll_device_login(grant)
    out = {{"outcome": "token"}}
except thalovant.ThalovantDeviceLoginExpired as exc:
    out = {{"outcome": ["expired", exc.status_code], "leaks_code": grant.device_code in str(exc)}}
print(json.dumps(out))
"""


def test_device_login_expired(signin_server: RunningServer, run_sdk: RunSnippet) -> None:
    code = DEVICE_EXPIRED.format(api_url=signin_server.api_url, database=str(signin_server.data_dir / "thalovant.db"))
    out = last_json(run_sdk(code))
    assert out == {"outcome": ["expired", 400], "leaks_code": False}


NATIVE_SIGN_IN = """
import json, threading, webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from thalovant import ThalovantControlPlane, begin_native_sign_in
received = []
class Callback(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/callback"):  # not the browser's /favicon.ico
            received.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"signed in; you can close this window")
    def log_message(self, *args):
        pass
app = HTTPServer(("127.0.0.1", 0), Callback)
threading.Thread(target=app.serve_forever, daemon=True).start()
redirect_uri = f"http://127.0.0.1:{{app.server_port}}/callback"
attempt = begin_native_sign_in(client_id="thalovant-cli", redirect_uri=redirect_uri, dashboard_url={api_url!r})
webbrowser.open(attempt.authorization_url)  # the person signs in and approves in Chromium
app.shutdown()
out = {{"received": len(received)}}
code = attempt.code_from(redirect_uri + received[0][len("/callback"):])
api = ThalovantControlPlane({api_url!r})
try:
    api.complete_native_sign_in(code, "x" * 64, "thalovant-cli", redirect_uri)
except Exception as exc:
    out["wrong_verifier"] = [exc.status_code, (exc.problem or {{}}).get("error")]
token = api.complete_native_sign_in(code, attempt.verifier, "thalovant-cli", redirect_uri)
out["scopes"] = token["scopes"]
out["email"] = api.get_profile()["email"]
try:
    ThalovantControlPlane({api_url!r}).complete_native_sign_in(code, attempt.verifier, "thalovant-cli", redirect_uri)
except Exception as exc:
    out["replay"] = [exc.status_code, (exc.problem or {{}}).get("error")]
try:
    api.get_profile()
    out["after_replay"] = "still works"
except Exception as exc:
    out["after_replay"] = exc.status_code
print(json.dumps(out))
"""


def test_native_sign_in_approved_in_chromium(signin_server: RunningServer, run_sdk: RunSnippet) -> None:
    out = last_json(run_sdk(NATIVE_SIGN_IN.format(api_url=signin_server.api_url)))
    assert out["received"] == 1
    assert out["wrong_verifier"] == [400, "invalid_grant"]
    assert out["scopes"] == ["hubs:read", "clients:read", "clients:write"]
    assert out["email"] == signin_server.demo_email
    assert out["replay"] == [400, "invalid_grant"]
    assert out["after_replay"] == 401


OURS_ASYNC = """
import asyncio, json
import thalovant
from thalovant import AsyncThalovantControlPlane
async def main():
    async with AsyncThalovantControlPlane({api_url!r}) as api:
        token = await api.login_with_browser(client_name="async laptop", timeout=120)
        profile = await api.get_profile()
        grant = await api.begin_device_login(scopes=["hubs:read"])
        seen = await api.describe_device_login(grant.user_code)
        try:
            await api.poll_device_login(grant)
        except thalovant.ThalovantDeviceLoginPending as exc:
            pending = exc.interval
        await api.aclose()
        return {{"email": profile["email"], "token_id": token["token_id"] == api.token_id,
                 "described": list(seen.scopes), "pending": pending}}
print(json.dumps(asyncio.run(main())))
"""


def test_our_async_client_signs_in_with_the_browser(signin_server: RunningServer, tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "BROWSER": f"{sys.executable} {BROWSER_SCRIPT} %s",
        "THALOVANT_TEST_EMAIL": signin_server.demo_email,
        "THALOVANT_TEST_PASSWORD": signin_server.demo_password,
        "THALOVANT_TEST_TRUSTED_CERTS": str(signin_server.data_dir / "server.pem"),
        **trust_env(signin_server.ca_file),
    }
    done = run_python(OUR_PYTHON, OURS_ASYNC.format(api_url=signin_server.api_url), env=env, cwd=tmp_path, timeout=240)
    out = last_json(done)
    assert out == {"email": signin_server.demo_email, "token_id": True, "described": ["hubs:read"], "pending": 1}
