"""The public Thalovant SDK 0.9.7, unchanged, against our hub over ``mqtts``, on both brokers.

Each broker kind gets one real ``thalovant-server serve --demo --mqtt-broker KIND`` process for
the module; the SDK runs in its own virtual environment and trusts the server's development CA
(paho's ``tls_set()`` reads ``SSL_CERT_FILE``). The demo hub ``joke-garden`` serves MQTT.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fixtures.mosquitto import require_mosquitto
from tests.fixtures.server import RunningServer, new_server
from tests.interop.test_public_sdk_wss import ASK_COLOR, GUIDE_JOKE, SdkRunner, make_identity, snippet_runner

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module", params=["embedded", "mosquitto"])
def mqtt_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    kind: str = request.param
    if kind == "mosquitto":
        require_mosquitto()
    server = new_server(tmp_path_factory.mktemp(f"sdk-mqtt-{kind}"), mqtt_broker=kind)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sdk(run_public_sdk: SdkRunner, mqtt_server: RunningServer) -> Callable[..., Any]:
    return snippet_runner(run_public_sdk, mqtt_server, "mqtt")


def test_quickstart_over_mqtt_prints_the_guides_joke(sdk: Callable[..., Any], mqtt_server: RunningServer) -> None:
    code = f"""
    api = ThalovantControlPlane({mqtt_server.api_url!r})
    api.login({mqtt_server.demo_email!r}, {mqtt_server.demo_password!r})
    hub = api.get_public_hub("joke-garden")
    result = api.create_client_identity(hub["id"], name="mqtt-demo-client", preferred_protocols=("mqtt",))
    with ThalovantClient(result.identity, protocol="mqtt", noise_state_dir="keys-quick") as client:
        reply = client.ask("Tell me a short clean joke.")
    emit_result({{"text": reply.text, "client_id": result.client["id"]}})
    """
    result = sdk(code)
    assert result["text"] == GUIDE_JOKE
    line = mqtt_server.wait_for_output(f"client={result['client_id']} pattern=XXpsk2")
    assert "MQTT session open" in line


def test_conversation_memory_over_mqtt_belongs_to_the_identity(
    sdk: Callable[..., Any], mqtt_server: RunningServer, tmp_path: Path
) -> None:
    identity, _ = make_identity(mqtt_server, tmp_path)
    stranger, _ = make_identity(mqtt_server, tmp_path)
    code = """
    with client() as c:
        with c.conversation(lang="en-us") as convo:
            first = convo.ask("Remember that my favorite color is blue.").text
            second = convo.ask("What color did I mention?").text
        with c.conversation(lang="en-us") as other:
            third = other.ask("What color did I mention?").text
    emit_result({"first": first, "second": second, "third": third})
    """
    result = sdk(code, identity)
    assert "blue" in result["first"]
    assert "blue" in result["second"]
    assert "blue" in result["third"]  # kept for the identity, across its conversations
    assert "blue" not in sdk(ASK_COLOR, stranger)


def test_a_pinned_client_reconnects_with_kk(
    sdk: Callable[..., Any], mqtt_server: RunningServer, tmp_path: Path
) -> None:
    identity, client_id = make_identity(mqtt_server, tmp_path)
    code = """
    texts = []
    for _ in range(2):
        with client("keys-pinned") as c:
            texts.append(c.ask("What can this hub do?").text)
    emit_result(texts)
    """
    texts = sdk(code, identity)
    assert texts == ["This hub can answer quick joke and trivia requests."] * 2
    assert "MQTT session open" in mqtt_server.wait_for_output(f"client={client_id} pattern=XXpsk2")
    assert "MQTT session open" in mqtt_server.wait_for_output(f"client={client_id} pattern=KKpsk0")


def test_the_broker_refuses_wrong_credentials_and_a_deleted_identity(
    sdk: Callable[..., Any], mqtt_server: RunningServer, tmp_path: Path
) -> None:
    """MQTT has no refusal channel of the hub's: the broker's refusal is a plain connection error."""
    identity, client_id = make_identity(mqtt_server, tmp_path)
    data = json.loads(identity.read_text())
    wrong = tmp_path / "wrong-broker-password.json"
    wrong.write_text(json.dumps({**data, "mqtt": {**data["mqtt"], "password": "not-" + data["mqtt"]["password"]}}))
    wrong.chmod(0o600)
    code = """
    try:
        with client(auto_reconnect=False) as c:
            c.ask("What can this hub do?", timeout=10)
        emit_result("answered")
    except ThalovantHubRefusedError:
        emit_result("refused")
    except ThalovantConnectionError:
        emit_result("connection-error")
    """
    assert sdk(code, wrong) == "connection-error"
    assert sdk(code, identity) == "answered"
    _delete(mqtt_server, client_id)
    assert sdk(code, identity) == "connection-error"


def _delete(server: RunningServer, client_id: str) -> None:
    """Delete a client identity through ``/v1`` as the demo user."""
    with httpx.Client(base_url=server.api_url, verify=str(server.ca_file), timeout=60) as http:
        token = http.post("/v1/auth/token", json={"email": server.demo_email, "password": server.demo_password})
        assert token.status_code == 200, token.text
        headers = {"authorization": f"Bearer {token.json()['access_token']}"}
        current = http.get(f"/v1/clients/{client_id}", headers=headers)
        assert current.status_code == 200, current.text
        gone = http.delete(f"/v1/clients/{client_id}", headers={**headers, "if-match": current.json()["etag"]})
        assert gone.status_code in (200, 204), gone.text
