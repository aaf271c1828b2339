"""The public Thalovant SDK 0.9.7, unchanged, against our hub over WSS.

Each test runs a snippet in the SDK's own virtual environment (``run_public_sdk``) against a
real ``thalovant-server serve --demo`` process, trusting the server's development CA. Results
come back as one JSON line on stdout.
"""

from __future__ import annotations

import json
import secrets
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from tests.fixtures.server import RunningServer

pytestmark = pytest.mark.interop

GUIDE_JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable."
GUIDE_CAPABILITIES = "This hub can answer quick joke and trivia requests."

PRELUDE = """
import json, os, sys, threading, time
from thalovant import (
    EVENT_SPEAK, EVENT_UTTERANCE_HANDLED, ThalovantClient, ThalovantControlPlane, ThalovantIdentity,
)
from thalovant.errors import (
    ThalovantClientKeyRejectedError, ThalovantConnectionError, ThalovantError, ThalovantHubRefusedError,
)

def identity():
    return ThalovantIdentity.from_file(os.environ["IDENTITY_FILE"])

def client(state_dir="keys-a", **kwargs):
    kwargs.setdefault("reply_settle_seconds", 0)
    return ThalovantClient(identity(), protocol=os.environ.get("SDK_PROTOCOL", "wss"), noise_state_dir=state_dir,
                           **kwargs)

def emit_result(value):
    print("RESULT " + json.dumps(value))
"""

SdkRunner = Callable[..., CompletedProcess[str]]


def result_of(completed: CompletedProcess[str]) -> Any:
    """The JSON value the snippet printed on its ``RESULT`` line."""
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"snippet failed (rc={completed.returncode}):\n{completed.stdout}\n{completed.stderr}")


def make_identity(server: RunningServer, directory: Path, hub: str = "joke-garden") -> tuple[Path, str]:
    """A new client identity of ``hub`` written to a file; returns (file, client id)."""
    path = directory / f"identity-{secrets.token_hex(4)}.json"
    out = server.admin("client", "create", "--hub", hub, "--name", f"sdk-{secrets.token_hex(4)}", "--out", str(path))
    created = json.loads(out.stdout.strip().splitlines()[-1])
    return path, str(created["id"])


def snippet_runner(run_public_sdk: SdkRunner, server: RunningServer, protocol: str) -> Callable[..., Any]:
    """Run a snippet (with PRELUDE; its ``client()`` uses ``protocol``) against ``server``; its RESULT."""

    def run(code: str, identity: Path | None = None, **env: str) -> Any:
        extra = {"THALOVANT_API_URL": server.api_url, "SDK_PROTOCOL": protocol, **env}
        if identity is not None:
            extra["IDENTITY_FILE"] = str(identity)
        completed = run_public_sdk(PRELUDE + textwrap.dedent(code), env=extra, ca_file=server.ca_file)
        return result_of(completed)

    return run


@pytest.fixture
def sdk(run_public_sdk: SdkRunner, server: RunningServer) -> Callable[..., Any]:
    return snippet_runner(run_public_sdk, server, "wss")


@pytest.fixture(scope="module")
def approvals_hub(server: RunningServer) -> Iterator[str]:
    """A hub running approvals, clock, capabilities and jokes (created once per module)."""
    slug = f"desk-{secrets.token_hex(3)}"
    server.admin(
        "hub", "create", "--slug", slug, "--title", "Approval desk", "--skill", "approvals", "--skill", "clock",
        "--skill", "capabilities", "--skill", "jokes", "--no-mqtt",
    )  # fmt: skip
    yield slug


def test_guide_quickstart_prints_the_guides_joke(sdk: Callable[..., Any], server: RunningServer) -> None:
    code = f"""
    api = ThalovantControlPlane({server.api_url!r})
    api.login({server.demo_email!r}, {server.demo_password!r})
    hub = api.get_public_hub("joke-garden")
    result = api.create_client_identity(
        hub["id"], name="python-demo-client", preferred_protocols=("wss", "https", "mqtt"),
    )
    with ThalovantClient(result.identity, protocol="wss") as client:
        reply = client.ask("Tell me a short clean joke.")
        print(reply.text)
    emit_result(reply.text)
    """
    assert sdk(code) == GUIDE_JOKE


def test_capabilities_answer_is_the_guides(sdk: Callable[..., Any], server: RunningServer, tmp_path: Path) -> None:
    identity, _ = make_identity(server, tmp_path)
    code = """
    with client() as c:
        reply = c.ask("What can this hub do?")
        emit_result({"text": reply.text, "claimed": reply.claimed,
                     "kinds": [item.kind for item in reply.display_items()]})
    """
    result = sdk(code, identity)
    assert result["text"] == GUIDE_CAPABILITIES
    assert result["claimed"] is True
    assert "table" not in result["kinds"] and "choices" not in result["kinds"]


ASK_COLOR = """
with client() as c:
    emit_result(c.ask("What color did I mention?").text)
"""


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
        joke = c.conversation(lang="en-us")
        jokes = [joke.ask("Tell me a short clean joke.").text, joke.ask("another one").text]
    emit_result({"first": first, "second": second, "third": third, "jokes": jokes})
    """
    result = sdk(code, identity)
    assert "blue" in result["first"]
    assert "blue" in result["second"]
    # the hub keeps what an identity asked it to remember (the owner sees it in /v1/memory):
    # its other conversations recall it, another identity does not
    assert "blue" in result["third"]
    assert "blue" not in sdk(ASK_COLOR, stranger)
    assert result["jokes"][0] == GUIDE_JOKE
    assert result["jokes"][1] and result["jokes"][1] != GUIDE_JOKE


def test_sends_and_emit_reach_their_skills_as_events(
    sdk: Callable[..., Any], server: RunningServer, tmp_path: Path, approvals_hub: str
) -> None:
    identity, _ = make_identity(server, tmp_path, approvals_hub)
    code = """
    got = {}
    done = threading.Event()
    wanted = {"status-session", "approval-session", "scan-session", "status-event"}

    def on_speak(event):
        got.setdefault(event.session_id, event.text)
        if wanted <= set(got):
            done.set()

    def on_status(event):
        got["status-event"] = event.data.get("state")
        if wanted <= set(got):
            done.set()

    with client() as c:
        c.connect()
        c.on(EVENT_SPEAK, on_speak)
        c.on("thalovant.client.status.response", on_status)
        c.send_utterance("Tell me a joke", lang="en-us", session_id="status-session")
        c.send_action("/approve invoice-42", title="Approve invoice", session_id="approval-session")
        c.send_code("INV-2026-001", kind="invoice", session_id="scan-session")
        c.emit("thalovant.client.status", {"state": "ready"}, {"source": "checkout-kiosk"})
        done.wait(30)

        # wait_for_event and listen: a sender thread repeats until the waiter has its events
        stop = threading.Event()
        def keep_sending():
            while not stop.is_set():
                c.send_utterance("What time is it?", session_id="clock-session")
                stop.wait(0.5)
        sender = threading.Thread(target=keep_sending, daemon=True)
        sender.start()
        handled = c.wait_for_event(EVENT_UTTERANCE_HANDLED, timeout=20, session_id="clock-session")
        spoken = [e.text for e in c.listen(EVENT_SPEAK, timeout=20, max_events=2, session_id="clock-session")]
        stop.set()
        sender.join()
    emit_result({"got": got, "handled": handled.session_id, "spoken": spoken})
    """
    result = sdk(code, identity)
    got = result["got"]
    assert got["status-session"] == GUIDE_JOKE
    assert got["approval-session"] == "Approved invoice-42."
    assert "INV-2026-001" in got["scan-session"]
    assert got["status-event"] == "ready"
    assert result["handled"] == "clock-session"
    assert len(result["spoken"]) == 2 and all(text.startswith("It is ") for text in result["spoken"])


def refusal_outcomes(sdk: Callable[..., Any], server: RunningServer, tmp_path: Path) -> dict[str, str]:
    """How ``connect()`` ends with an unknown access key and with a wrong password."""
    identity, _ = make_identity(server, tmp_path)
    original = json.loads(identity.read_text())
    outcomes = {}
    for label, field, value in (("key", "access_key", "unknown-" + secrets.token_hex(8)),
                                ("password", "password", "wrong-" + secrets.token_hex(8))):  # fmt: skip
        assert field in original, f"identity file has no {field}: {sorted(original)}"
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
    return outcomes


def test_unknown_key_and_wrong_password_are_refused(
    sdk: Callable[..., Any], server: RunningServer, tmp_path: Path
) -> None:
    assert refusal_outcomes(sdk, server, tmp_path) == {"key": "refused", "password": "refused"}


def test_second_client_key_is_refused_every_time(
    sdk: Callable[..., Any], server: RunningServer, tmp_path: Path
) -> None:
    """Another key folder for a pinned identity never gets a working session.

    The hub closes without status right after message 3, before any transport frame, so the
    SDK classifies the close as its own key being rejected. Whether ``connect()`` itself
    raises ``ThalovantClientKeyRejectedError`` or the refusal surfaces on the next call
    depends on a race inside the SDK (its ``connect()`` returns as soon as it has sent its
    HELLO); the hub-side close itself is checked byte-exactly in tests/server/test_wss.py.
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
                try:
                    other.ask("Tell me a short clean joke.", timeout=10)
                    outcomes.append("answered")
                except ThalovantClientKeyRejectedError:
                    outcomes.append("client-key-rejected")
                except ThalovantConnectionError:
                    outcomes.append("closed-after-handshake")
        except ThalovantClientKeyRejectedError:
            outcomes.append("client-key-rejected")
        except ThalovantError as exc:
            outcomes.append(type(exc).__name__)
    with client("keys-first") as c:
        again = c.ask("What can this hub do?").text
    emit_result({"first": first, "outcomes": outcomes, "again": again})
    """
    result = sdk(code, identity)
    assert result["first"] == GUIDE_JOKE
    assert len(result["outcomes"]) == 10
    assert set(result["outcomes"]) <= {"client-key-rejected", "closed-after-handshake"}, result["outcomes"]
    assert result["again"] == GUIDE_CAPABILITIES


def test_second_client_key_is_rejected_through_the_sdks_hub_session_every_time(
    sdk: Callable[..., Any], server: RunningServer, tmp_path: Path
) -> None:
    """The SDK's ``AsyncHubSession`` keeps a new link for its 0.75 s settle window before trusting it
    (spec 13), so the hub's close right after message 3 is its verdict in every run, not a race."""
    identity, _ = make_identity(server, tmp_path)
    code = """
    import asyncio
    from thalovant import AsyncHubSession

    with client("keys-first") as c:
        first = c.ask("Tell me a short clean joke.").text

    async def attempts():
        outcomes = []
        for attempt in range(10):
            session = AsyncHubSession.for_identity(
                identity(), protocol="wss", noise_state_dir=f"keys-supervised-{attempt}", auto_reconnect=False
            )
            try:
                await session.connect()
                outcomes.append("connected")
            except ThalovantClientKeyRejectedError:
                outcomes.append("client-key-rejected")
            except ThalovantError as exc:
                outcomes.append(type(exc).__name__)
            finally:
                await session.close()
        return outcomes

    emit_result({"first": first, "outcomes": asyncio.run(attempts())})
    """
    result = sdk(code, identity)
    assert result["first"] == GUIDE_JOKE
    assert result["outcomes"] == ["client-key-rejected"] * 10


def test_deleted_identity_is_refused_and_its_session_closed(sdk: Callable[..., Any], server: RunningServer) -> None:
    code = f"""
    api = ThalovantControlPlane({server.api_url!r})
    api.login({server.demo_email!r}, {server.demo_password!r})
    hub = api.get_public_hub("joke-garden")
    result = api.create_client_identity(hub["id"], name="doomed-" + os.urandom(4).hex())
    ident = result.identity
    client_id = ident.client_id if hasattr(ident, "client_id") else None
    client_id = client_id or getattr(result, "client_id", None) or result.client["id"]
    with ThalovantClient(ident, protocol="wss", noise_state_dir="keys", reply_settle_seconds=0) as c:
        before = c.ask("Tell me a short clean joke.").text
        api.delete_client(client_id)
        try:
            after = c.ask("What can this hub do?", timeout=10).text
            outcome = "answered: " + after
        except ThalovantHubRefusedError:
            outcome = "refused"
        except ThalovantError as exc:
            outcome = type(exc).__name__
    try:
        with ThalovantClient(ident, protocol="wss", noise_state_dir="keys", auto_reconnect=False) as fresh:
            fresh.connect()
        reconnect = "connected"
    except ThalovantHubRefusedError:
        reconnect = "refused"
    emit_result({{"before": before, "outcome": outcome, "reconnect": reconnect}})
    """
    result = sdk(code)
    assert result["before"] == GUIDE_JOKE
    assert not result["outcome"].startswith("answered"), result
    assert result["reconnect"] == "refused"


def test_pinned_client_reconnects_after_a_restart(
    run_public_sdk: SdkRunner, server_factory: Callable[..., RunningServer], tmp_path: Path
) -> None:
    own = server_factory()
    identity, client_id = make_identity(own, tmp_path)
    code = PRELUDE + textwrap.dedent("""
    with client("keys-pinned") as c:
        emit_result(c.ask("Tell me a short clean joke.").text)
    """)
    env = {"IDENTITY_FILE": str(identity)}
    assert result_of(run_public_sdk(code, env=env, ca_file=own.ca_file)) == GUIDE_JOKE
    # the hub logs each session's pattern: first contact is XX, and the hub pins the client key
    own.wait_for_output(f"client={client_id} pattern=XXpsk2")
    own.restart()
    assert result_of(run_public_sdk(code, env=env, ca_file=own.ca_file)) == GUIDE_JOKE
    own.wait_for_output(f"client={client_id} pattern=KKpsk0")
