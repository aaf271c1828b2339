"""The public Thalovant SDK 0.9.7, unchanged, against our hub over HTTPS polling.

Each test runs a snippet in the SDK's own virtual environment (``run_public_sdk``) against a
real ``thalovant-server serve --demo`` process, trusting the server's development CA through
SSL_CERT_FILE, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE. Results come back as one JSON line on
stdout. The helpers are the WSS module's; only the carrier differs.
"""

from __future__ import annotations

import json
import secrets
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.server import RunningServer
from tests.interop.test_public_sdk_wss import GUIDE_JOKE, SdkRunner, make_identity, result_of

pytestmark = pytest.mark.interop

PRELUDE = """
import json, os, sys, time
from thalovant import ThalovantClient, ThalovantControlPlane, ThalovantIdentity
from thalovant.errors import (
    ThalovantClientKeyRejectedError, ThalovantConnectionError, ThalovantError, ThalovantHubRefusedError,
)

def identity():
    return ThalovantIdentity.from_file(os.environ["IDENTITY_FILE"])

def client(state_dir="keys-a", **kwargs):
    kwargs.setdefault("reply_settle_seconds", 0)
    return ThalovantClient(identity(), protocol="https", noise_state_dir=state_dir, **kwargs)

def emit_result(value):
    print("RESULT " + json.dumps(value))
"""


@pytest.fixture
def sdk(run_public_sdk: SdkRunner, server: RunningServer) -> Callable[..., Any]:
    """Run a snippet (with PRELUDE) against ``server``; returns its RESULT value."""

    def run(code: str, identity: Path | None = None, **env: str) -> Any:
        extra = {"THALOVANT_API_URL": server.api_url, **env}
        if identity is not None:
            extra["IDENTITY_FILE"] = str(identity)
        completed = run_public_sdk(PRELUDE + textwrap.dedent(code), env=extra, ca_file=server.ca_file)
        return result_of(completed)

    return run


def test_guide_quickstart_over_https_prints_the_guides_joke(sdk: Callable[..., Any], server: RunningServer) -> None:
    code = f"""
    api = ThalovantControlPlane({server.api_url!r})
    api.login({server.demo_email!r}, {server.demo_password!r})
    hub = api.get_public_hub("joke-garden")
    result = api.create_client_identity(
        hub["id"], name="python-demo-client-https", preferred_protocols=("wss", "https", "mqtt"),
    )
    with ThalovantClient(result.identity, protocol="https") as client:
        reply = client.ask("Tell me a short clean joke.")
        print(reply.text)
    emit_result(reply.text)
    """
    assert sdk(code) == GUIDE_JOKE


def test_conversation_remembers_within_its_session_only(
    sdk: Callable[..., Any], server: RunningServer, tmp_path: Path
) -> None:
    identity, _ = make_identity(server, tmp_path)
    code = """
    with client() as c:
        with c.conversation(lang="en-us") as convo:
            first = convo.ask("Remember that my favorite color is blue.").text
            second = convo.ask("What color did I mention?").text
        with c.conversation(lang="en-us") as other:
            third = other.ask("What color did I mention?").text
    # a reconnect with the pinned key (KK) is served too
    with client() as c:
        joke = c.ask("Tell me a short clean joke.").text
    emit_result({"first": first, "second": second, "third": third, "joke": joke})
    """
    result = sdk(code, identity)
    assert "blue" in result["first"]
    assert "blue" in result["second"]
    assert "blue" not in result["third"]
    assert result["joke"] == GUIDE_JOKE


def test_unknown_key_and_wrong_password_are_refused(
    sdk: Callable[..., Any], server: RunningServer, tmp_path: Path
) -> None:
    identity, _ = make_identity(server, tmp_path)
    original = json.loads(identity.read_text())
    outcomes = {}
    for label, field, value in (("key", "access_key", "unknown-" + secrets.token_hex(8)),
                                ("password", "password", "wrong-" + secrets.token_hex(8))):  # fmt: skip
        broken = tmp_path / f"broken-{label}.json"
        broken.write_text(json.dumps({**original, field: value}))
        broken.chmod(0o600)
        code = """
        try:
            with client(auto_reconnect=False) as c:
                c.connect()
            emit_result("connected")
        except ThalovantClientKeyRejectedError:
            emit_result("client-key-rejected")
        except ThalovantHubRefusedError:
            emit_result("refused")
        except ThalovantError as exc:
            emit_result(type(exc).__name__)
        """
        outcomes[label] = sdk(code, broken)
    assert outcomes == {"key": "refused", "password": "refused"}


def test_second_client_key_is_rejected_every_time(
    sdk: Callable[..., Any], server: RunningServer, tmp_path: Path
) -> None:
    """On HTTPS the rejection is deterministic: the hub answers message 3 with 401.

    The SDK reads a 401 while it sends its final XX frames as its own key being rejected, so
    ``connect()`` itself raises ``ThalovantClientKeyRejectedError`` in every attempt.
    """
    identity, _ = make_identity(server, tmp_path)
    code = """
    with client("keys-first") as c:
        first = c.ask("Tell me a short clean joke.").text
    outcomes = []
    for attempt in range(10):
        try:
            with client(f"keys-other-{attempt}", auto_reconnect=False) as other:
                other.connect()
                outcomes.append("connected")
        except ThalovantClientKeyRejectedError:
            outcomes.append("client-key-rejected")
        except ThalovantError as exc:
            outcomes.append(type(exc).__name__)
    with client("keys-first") as c:
        again = c.ask("Tell me a short clean joke.").text
    emit_result({"first": first, "outcomes": outcomes, "again": again})
    """
    result = sdk(code, identity)
    assert result["first"] == GUIDE_JOKE
    assert result["outcomes"] == ["client-key-rejected"] * 10
    assert result["again"] == GUIDE_JOKE
