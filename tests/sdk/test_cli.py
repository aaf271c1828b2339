"""The ``thalovant`` command line: control-plane commands against a scripted HTTP server,
argument and identity errors, exit codes (0, 1, 130)."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.sdk.test_control import HUB, Answer, Seen, Stub, client_answer, running_stub

from thalovant.cli import format_table, main

IDENTITY = {
    "access_key": "cli-key-SECRET",
    "password": "cli-pw-SECRET",
    "site_id": "cli-site",
    "default_master": "https://127.0.0.1",
    "default_port": 9,
}


@pytest.fixture
def stub() -> Iterator[Stub]:
    with running_stub() as running:
        yield running


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("THALOVANT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_format_table() -> None:
    text = format_table([("a", None, "long value")], ("id", "slug", "title"))
    assert text.splitlines() == ["ID  SLUG  TITLE", "a   -     long value"]


def test_hubs_public_table_and_json(stub: Stub) -> None:
    hub = {**HUB, "public_ref": "jg-123", "title": "Joke Garden", "visibility": "public"}
    stub.on("GET", "/v1/public/hubs", 200, {"data": [hub], "meta": {"count": 1, "next": "cur-2"}, "links": {}})
    code, out, err = run("hubs", "--public", "--api-url", stub.url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "SLUG", "PUBLIC_REF", "TITLE", "VISIBILITY"]
    assert lines[1].split() == ["hub-1", "joke-garden", "jg-123", "Joke", "Garden", "public"]
    assert lines[2] == "more: --cursor cur-2"
    assert stub.seen[0].path == "/v1/public/hubs?limit=24"
    code, out, _ = run("hubs", "--public", "--api-url", stub.url, "--json", "--limit", "3")
    assert code == 0
    assert json.loads(out)["data"][0]["public_ref"] == "jg-123"
    assert stub.seen[1].path == "/v1/public/hubs?limit=3"


def test_hubs_needs_a_token(stub: Stub) -> None:
    code, out, err = run("hubs", "--api-url", stub.url)
    assert code == 1 and out == ""
    assert err.startswith("thalovant: an API token is required")
    assert stub.seen == []


def test_hubs_with_email_login(stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.on("POST", "/v1/auth/token", 200, {"access_token": "session-token"})
    stub.on("GET", "/v1/hubs", 200, {"data": [], "meta": {"count": 0, "next": None}, "links": {}})
    monkeypatch.setenv("THALOVANT_EMAIL", "a@example.com")
    monkeypatch.setenv("THALOVANT_PASSWORD", "pw")
    monkeypatch.setenv("THALOVANT_API_URL", stub.url)
    code, out, _ = run("hubs")
    assert (code, out) == (0, "no hubs\n")
    assert stub.seen[0].body == {"email": "a@example.com", "password": "pw"}
    assert stub.seen[1].headers["authorization"] == "Bearer session-token"
    assert stub.seen[1].path == "/v1/hubs?limit=100"


def test_api_errors_are_reported(stub: Stub) -> None:
    stub.on("GET", "/v1/hubs", 401, {"detail": "Could not validate credentials"})
    code, _, err = run("hubs", "--api-url", stub.url, "--token", "bad")
    assert code == 1
    assert err.startswith("thalovant: Thalovant API request failed with HTTP 401: Could not validate credentials")
    assert "Bearer" not in err


def test_identity_create_writes_private_file(stub: Stub, tmp_path: Path) -> None:
    stub.on("GET", "/v1/hubs/hub-1", 200, HUB)
    stub.routes[("POST", "/v1/clients")] = client_answer
    target = tmp_path / "ids" / "kiosk.json"
    args = ("identity", "create", "--hub", "hub-1", "--name", "kiosk one", "--out", str(target))
    code, out, err = run(*args, "--api-url", stub.url, "--token", "tok")
    assert (code, err) == (0, "")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    saved = json.loads(target.read_text(encoding="utf-8"))
    sent = stub.seen[1].body["spec"]
    assert saved["access_key"] == sent["apiKey"] and saved["site_id"] == "kiosk-one"
    assert sent["apiKey"] not in out and sent["password"] not in out
    assert "client-1" in out and "wss" in out
    code, _, err = run(*args, "--api-url", stub.url, "--token", "tok")
    assert code == 1 and "exists" in err
    code, _, _ = run(*args, "--api-url", stub.url, "--token", "tok", "--force")
    assert code == 0


def test_identity_show_redacts(tmp_path: Path) -> None:
    path = tmp_path / "identity.json"
    path.write_text(json.dumps(IDENTITY), encoding="utf-8")
    path.chmod(0o600)
    code, out, _ = run("identity", "show", "-i", str(path))
    assert code == 0
    assert "SECRET" not in out
    shown = json.loads(out)
    assert shown["site_id"] == "cli-site"
    assert shown["endpoints"]["https"] == "https://127.0.0.1:9"
    path.chmod(0o644)
    code, _, err = run("identity", "show", "-i", str(path))
    assert code == 1 and "chmod 600" in err


def test_data_plane_input_errors(tmp_path: Path) -> None:
    code, _, err = run("health")
    assert code == 1 and err.startswith("thalovant: No identity in the environment")
    code, _, err = run("emit", "x.y", "--data", "[1, 2]")
    assert code == 1 and "--data must be a JSON object" in err
    code, _, err = run("emit", "x.y", "--context", "{bad")
    assert code == 1 and "--context must be a JSON object" in err
    code, _, err = run("listen", "speak", "--max-events", "0")
    assert code == 2 and "positive" in err
    code, _, _ = run("ask")
    assert code == 2


def test_ctrl_c_exits_130(stub: Stub) -> None:
    arrived = threading.Event()
    release = threading.Event()

    def slow(seen: Seen) -> Answer:
        arrived.set()
        release.wait(60)
        return 200, {"content-type": "application/json"}, json.dumps({"data": []})

    stub.routes[("GET", "/v1/public/hubs")] = slow
    env = {k: v for k, v in os.environ.items() if not k.startswith("THALOVANT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "thalovant.cli", "hubs", "--public", "--api-url", stub.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # a shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT:
        # give the CLI the disposition a terminal would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert arrived.wait(60), "the CLI never sent its request"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err


def test_ask_against_real_server(server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_file))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(server.ca_file))
    monkeypatch.setenv("THALOVANT_API_URL", server.api_url)
    monkeypatch.setenv("THALOVANT_EMAIL", server.demo_email)
    monkeypatch.setenv("THALOVANT_PASSWORD", server.demo_password)
    code, out, err = run("hubs", "--json")
    assert code == 0, err
    hub_id = next(h["id"] for h in json.loads(out)["data"] if h.get("slug") == "joke-garden")
    target = tmp_path / "identity.json"
    code, _, err = run("identity", "create", "--hub", hub_id, "--name", "cli test", "--out", str(target))
    assert code == 0, err
    monkeypatch.delenv("THALOVANT_PASSWORD")
    code, out, err = run("ask", "Tell me a short clean joke.", "-i", str(target))
    assert code == 0, err
    assert out.strip()
    code, out, err = run("health", "-i", str(target))
    assert code == 0, err
    assert "health: ok" in out
