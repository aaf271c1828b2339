"""The public Thalovant SDK 0.9.7, unchanged, against our hub over HTTPS polling.

Each test runs a snippet in the SDK's own virtual environment (``run_public_sdk``) against a
real ``thalovant-server serve --demo`` process, trusting the server's development CA through
SSL_CERT_FILE, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE. Results come back as one JSON line on
stdout. The helpers are the WSS module's; only the carrier differs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.server import RunningServer
from tests.interop.test_public_sdk_wss import (
    ASK_COLOR,
    GUIDE_JOKE,
    SdkRunner,
    make_identity,
    refusal_outcomes,
    snippet_runner,
)

pytestmark = pytest.mark.interop


@pytest.fixture
def sdk(run_public_sdk: SdkRunner, server: RunningServer) -> Callable[..., Any]:
    return snippet_runner(run_public_sdk, server, "https")


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


def test_conversation_memory_belongs_to_the_identity(
    sdk: Callable[..., Any], server: RunningServer, tmp_path: Path
) -> None:
    identity, _ = make_identity(server, tmp_path)
    stranger, _ = make_identity(server, tmp_path)
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
    assert "blue" in result["third"]  # kept for the identity, across its conversations
    assert "blue" not in sdk(ASK_COLOR, stranger)
    assert result["joke"] == GUIDE_JOKE


def test_unknown_key_and_wrong_password_are_refused(
    sdk: Callable[..., Any], server: RunningServer, tmp_path: Path
) -> None:
    assert refusal_outcomes(sdk, server, tmp_path) == {"key": "refused", "password": "refused"}


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
