"""Provisioning and the MQTT broker of a running server, on both brokers (embedded and Mosquitto).

The server is the real ``thalovant-server serve`` process; identities come from the ``/v1`` API;
the MQTT clients are paho-mqtt 2 over TLS, trusting the server's development CA ``DATA_DIR/ca.pem``.

The hub service user's password never leaves the server process, so in the server-process tests
no hub can write a client's ``/out`` as a delivery marker. Refused publishes are then shown by
delivery with a barrier: identity A's forged publish is acknowledged (QoS 1) before the observer B
makes a SUBSCRIBE round trip; a message the broker had routed to B would arrive before that SUBACK
(both brokers route a publish before acknowledging it, and B's connection is one ordered stream).
The in-process tests at the end hold the hub login (``app.state.mqtt_hub_login``) and use it as
the observer with a positive marker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from paho.mqtt.reasoncodes import ReasonCode
from peers.processes import free_port
from tests.fixtures.mosquitto import require_mosquitto
from tests.fixtures.server import RunningServer, new_server, server_command
from tests.server.test_mqtt_broker import WAIT, Probe

from thalovant_server.app import create_app
from thalovant_server.config import ServerConfig

BROKERS = ["embedded", "mosquitto"]
SUBACK_REFUSED = 0x80
HUB_SPEC = {"version": "1", "skills": ["jokes"], "protocols": {"wss": True, "http": True, "mqtt": True}}


def _needs(kind: str) -> None:
    if kind == "mosquitto":
        require_mosquitto()


# -- the control plane over HTTPS ---------------------------------------------------------------


class ControlPlane:
    """The demo user of a running server, talking to ``/v1`` over TLS (trusting its CA)."""

    def __init__(self, server: RunningServer) -> None:
        self.http = httpx.Client(base_url=server.api_url, verify=str(server.ca_file), timeout=60)
        response = self.http.post("/v1/auth/token", json={"email": server.demo_email, "password": server.demo_password})
        assert response.status_code == 200, response.text
        self.http.headers["authorization"] = f"Bearer {response.json()['access_token']}"

    def create_hub(self, *, mqtt: bool = True) -> dict[str, Any]:
        spec = {**HUB_SPEC, "protocols": {"wss": True, "http": True, "mqtt": mqtt}}
        response = self.http.post("/v1/hubs", json={"name": f"mqtt-{uuid.uuid4().hex[:8]}", "spec": spec})
        assert response.status_code == 201, response.text
        hub: dict[str, Any] = response.json()
        return hub

    def create_client(self, hub_id: str) -> dict[str, Any]:
        body = {"hub_id": hub_id, "name": f"client-{uuid.uuid4().hex[:8]}", "spec": {"version": "1"}}
        response = self.http.post("/v1/clients", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert response.status_code == 201, response.text
        client: dict[str, Any] = response.json()
        return client

    def delete_client(self, client: dict[str, Any]) -> None:
        response = self.http.delete(f"/v1/clients/{client['id']}", headers={"If-Match": client["etag"]})
        assert response.status_code == 204, response.text

    def close(self) -> None:
        self.http.close()


@dataclass
class Identity:
    """The ``mqtt`` block of one provisioned identity."""

    endpoint: str
    username: str
    password: str
    prefix: str

    @classmethod
    def of(cls, client: dict[str, Any]) -> Identity:
        block = client["initial_identify"]["mqtt"]
        assert block["tls"] is True and block["qos"] == 1
        return cls(block["endpoint"], block["username"], block["password"], block["topic_prefix"])

    @property
    def port(self) -> int:
        parts = urlsplit(self.endpoint)
        assert parts.scheme == "mqtts" and parts.hostname == "127.0.0.1" and parts.port is not None
        return parts.port


# -- paho clients ---------------------------------------------------------------------------------


@pytest.fixture
def probes(tmp_path: Path) -> Iterator[Callable[[Path, int], Probe]]:
    made: list[Probe] = []

    def make(ca_file: Path, port: int) -> Probe:
        probe = Probe(ca_file, port)
        made.append(probe)
        return probe

    yield make
    for probe in made:
        probe.close()


def logged_in(make: Callable[[Path, int], Probe], ca_file: Path, who: Identity) -> Probe:
    probe = make(ca_file, who.port)
    assert probe.connect(who.username, who.password), f"CONNACK {probe.connack}"
    return probe


def codes(reasons: list[ReasonCode]) -> list[int]:
    return [int(reason.value) for reason in reasons]


def expected_refusal(kind: str) -> list[int]:
    """What each broker answers to a SUBSCRIBE outside the grants (checked against both).

    amqtt refuses in the SUBACK (0x80). Mosquitto 2 grants the MQTT 3.1.1 SUBACK and then
    delivers nothing (its acl_file is checked per message, on delivery).
    """
    return [SUBACK_REFUSED] if kind == "embedded" else [1]


# -- one server per broker kind for the module ---------------------------------------------------


@dataclass
class Served:
    kind: str
    server: RunningServer
    api: ControlPlane
    hub: dict[str, Any]


@pytest.fixture(scope="module", params=BROKERS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    kind: str = request.param
    _needs(kind)
    server = new_server(tmp_path_factory.mktemp(f"mqtt-{kind}"), mqtt_broker=kind)
    server.start()
    api = ControlPlane(server)
    try:
        yield Served(kind, server, api, api.create_hub())
    finally:
        api.close()
        server.stop()


def test_identity_logs_in_at_its_endpoint_and_uses_its_own_topics(
    served: Served, probes: Callable[[Path, int], Probe]
) -> None:
    client = served.api.create_client(served.hub["id"])
    identify = client["initial_identify"]
    a = Identity.of(client)
    assert a.port == served.server.mqtt_port
    assert identify["data_plane_endpoints"]["mqtt"] == a.endpoint
    assert identify["protocols"]["mqtt"] is True
    assert a.prefix == f"thalovant/{served.hub['id']}/{client['id']}"
    assert a.username == "c_" + client["id"].replace("-", "")
    probe = logged_in(probes, served.server.ca_file, a)
    assert probe.connack is not None and int(probe.connack.value) == 0
    assert codes(probe.subscribe(f"{a.prefix}/out")) == [1]
    probe.publish(f"{a.prefix}/in", b"hello hub")  # QoS 1: the broker acknowledged it
    probe.publish(f"{a.prefix}/status", b"online", retain=True)
    assert not probe.disconnected.is_set()


def test_an_identity_made_by_the_admin_cli_logs_in_without_a_restart(
    served: Served, probes: Callable[[Path, int], Probe], tmp_path: Path
) -> None:
    """``admin client create`` writes the store from another process; the running server reloads on its signal."""
    out = tmp_path / "admin-identity.json"
    served.server.admin("client", "create", "--hub", served.hub["id"], "--name", "admin-made", "--out", str(out))
    block = json.loads(out.read_text())["mqtt"]
    who = Identity(block["endpoint"], block["username"], block["password"], block["topic_prefix"])
    probe = logged_in(probes, served.server.ca_file, who)
    assert codes(probe.subscribe(f"{who.prefix}/out")) == [1]
    served.server.wait_for_output("reloaded from the store on request")


def test_wrong_password_is_refused(served: Served, probes: Callable[[Path, int], Probe]) -> None:
    a = Identity.of(served.api.create_client(served.hub["id"]))
    probe = probes(served.server.ca_file, a.port)
    assert not probe.connect(a.username, a.password + "x")
    assert probe.connack is None or probe.connack.is_failure
    other = Identity.of(served.api.create_client(served.hub["id"]))
    crossed = probes(served.server.ca_file, a.port)
    assert not crossed.connect(a.username, other.password)


def test_identity_cannot_reach_another_identitys_topics(served: Served, probes: Callable[[Path, int], Probe]) -> None:
    a = Identity.of(served.api.create_client(served.hub["id"]))
    b = Identity.of(served.api.create_client(served.hub["id"]))
    ca = served.server.ca_file
    pa, pb = logged_in(probes, ca, a), logged_in(probes, ca, b)
    assert codes(pb.subscribe(f"{b.prefix}/out")) == [1]
    for topic_filter in (f"{b.prefix}/out", f"{b.prefix}/in", f"thalovant/{served.hub['id']}/+/out", "#"):
        assert codes(pa.subscribe(topic_filter)) == expected_refusal(served.kind), topic_filter
    # A forges B's hub traffic and B's own traffic; every publish is acknowledged (QoS 1).
    for topic in (f"{b.prefix}/out", f"{b.prefix}/in", f"{b.prefix}/status"):
        pa.publish(topic, b"forged by a")
    # Barrier: a SUBSCRIBE round trip on B's connection after A's publishes were acknowledged.
    assert codes(pb.subscribe(f"{b.prefix}/out")) == [1]
    assert pb.messages.empty()
    # Nor did A's wider subscriptions let B's or its own forged traffic through to A.
    assert codes(pa.subscribe(f"{a.prefix}/out")) == [1]
    assert pa.messages.empty()
    assert not pa.disconnected.is_set()


def test_deleted_identity_is_dropped_and_refused(served: Served, probes: Callable[[Path, int], Probe]) -> None:
    client = served.api.create_client(served.hub["id"])
    a = Identity.of(client)
    b = Identity.of(served.api.create_client(served.hub["id"]))
    ca = served.server.ca_file
    pa, pb = logged_in(probes, ca, a), logged_in(probes, ca, b)
    served.api.delete_client(client)
    assert pa.disconnected.wait(WAIT), "the live connection of the deleted identity was not dropped"
    again = probes(ca, a.port)
    assert not again.connect(a.username, a.password)
    assert not pb.disconnected.is_set()
    assert codes(pb.subscribe(f"{b.prefix}/out")) == [1]
    # The server logged both account changes at INFO, and never a secret.
    log = "".join(served.server.output)
    assert f"MQTT account {a.username} added" in log and f"MQTT account {a.username} removed" in log
    identify = client["initial_identify"]
    for secret in (a.password, b.password, identify["password"], identify["access_key"]):
        assert secret not in log


# -- restart, broker off, broker that cannot start -------------------------------------------------


@pytest.mark.parametrize("kind", BROKERS)
def test_identities_log_in_after_a_restart(
    kind: str, server_factory: Callable[..., RunningServer], probes: Callable[[Path, int], Probe]
) -> None:
    _needs(kind)
    server = server_factory(mqtt_broker=kind)
    api = ControlPlane(server)
    try:
        hub = api.create_hub()
        kept = Identity.of(api.create_client(hub["id"]))
        gone_client = api.create_client(hub["id"])
        gone = Identity.of(gone_client)
        api.delete_client(gone_client)
    finally:
        api.close()
    server.restart()
    assert kept.port == server.mqtt_port
    probe = logged_in(probes, server.ca_file, kept)
    assert codes(probe.subscribe(f"{kept.prefix}/out")) == [1]
    refused = probes(server.ca_file, gone.port)
    assert not refused.connect(gone.username, gone.password)


def test_serve_without_a_broker(server_factory: Callable[..., RunningServer]) -> None:
    server = server_factory(mqtt_broker="off")
    assert not any(line.startswith("Thalovant MQTT") for line in server.output)
    api = ControlPlane(server)
    try:
        hub = api.create_hub(mqtt=True)
        assert "mqtt" not in hub["data_plane_endpoints"]
        client = api.create_client(hub["id"])
    finally:
        api.close()
    identify = client["initial_identify"]
    assert "mqtt" not in identify and "mqtt" not in identify["data_plane_endpoints"]
    assert identify["protocols"]["mqtt"] is False
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", server.mqtt_port))


@pytest.mark.parametrize("kind", BROKERS)
def test_a_busy_mqtt_port_stops_serve_with_one_clear_error(kind: str, tmp_path: Path) -> None:
    _needs(kind)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {k: v for k, v in os.environ.items() if not k.startswith("THALOVANT_")}
        result = subprocess.run(
            [
                *server_command(),
                "serve",
                "--data-dir",
                str(tmp_path / "data"),
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "--mqtt-broker",
                kind,
                "--mqtt-port",
                str(busy.getsockname()[1]),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"the MQTT broker ({kind}) did not start" in output
    assert "address already in use" in output.lower()
    assert "Traceback" not in output and "Thalovant API" not in output


# -- in process: the hub login of app.state as the observer ---------------------------------------


@dataclass
class InProcess:
    kind: str
    app: Any
    http: httpx.AsyncClient
    ca_file: Path


@pytest.fixture(params=BROKERS)
async def in_process(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[InProcess]:
    kind: str = request.param
    _needs(kind)
    config = ServerConfig(data_dir=tmp_path / "data", host="127.0.0.1", port=8443, mqtt_broker=kind, mqtt_port=0)
    app = create_app(config)
    async with app.router.lifespan_context(app):
        from tests.server.conftest import PASSWORD, password_hash

        from thalovant_server.store import accounts

        async with app.state.store.session() as session:
            await accounts.create_user(session, email="mqtt@example.com", password_hash=password_hash())
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            token = await http.post("/v1/auth/token", json={"email": "mqtt@example.com", "password": PASSWORD})
            http.headers["authorization"] = f"Bearer {token.json()['access_token']}"
            yield InProcess(kind, app, http, config.data_dir / "ca.pem")


async def _hub(env: InProcess, *, mqtt: bool = True) -> dict[str, Any]:
    spec = {**HUB_SPEC, "protocols": {"mqtt": mqtt}}
    response = await env.http.post("/v1/hubs", json={"name": f"hub-{uuid.uuid4().hex[:8]}", "spec": spec})
    assert response.status_code == 201, response.text
    hub: dict[str, Any] = response.json()
    return hub


async def _client(env: InProcess, hub_id: str, name: str | None = None, **headers: str) -> dict[str, Any]:
    body = {"hub_id": hub_id, "name": name or "c-" + uuid.uuid4().hex[:8], "spec": {"version": "1"}}
    response = await env.http.post("/v1/clients", json=body, headers=headers)
    assert response.status_code == 201, response.text
    client: dict[str, Any] = response.json()
    return client


async def _login(env: InProcess, make: Callable[[Path, int], Probe], username: str, password: str) -> Probe:
    probe = make(env.ca_file, env.app.state.mqtt_address.port)
    assert await asyncio.to_thread(probe.connect, username, password)
    return probe


async def test_hub_login_on_app_state_sees_only_what_identities_may_publish(
    in_process: InProcess, probes: Callable[[Path, int], Probe]
) -> None:
    state = in_process.app.state
    assert state.mqtt_broker is not None and state.mqtt_address.port == state.control.config.mqtt_port != 0
    assert state.config.mqtt_port == 0  # as configured
    hub = await _hub(in_process)
    a = Identity.of(await _client(in_process, hub["id"]))
    b = Identity.of(await _client(in_process, hub["id"]))
    login = state.mqtt_hub_login
    observer = await _login(in_process, probes, login.username, login.password)
    for topic_filter in ("thalovant/+/+/in", "thalovant/+/+/status"):
        assert codes(await asyncio.to_thread(observer.subscribe, topic_filter)) == [1]
    pa = await _login(in_process, probes, a.username, a.password)
    pb = await _login(in_process, probes, b.username, b.password)
    assert codes(await asyncio.to_thread(pb.subscribe, f"{b.prefix}/out")) == [1]
    # A forges B's in, status and out; then a marker on its own in (same connection, in order).
    for topic in (f"{b.prefix}/in", f"{b.prefix}/status", f"{b.prefix}/out"):
        await asyncio.to_thread(pa.publish, topic, b"forged by a")
    await asyncio.to_thread(pa.publish, f"{a.prefix}/in", b"marker")
    assert await asyncio.to_thread(observer.next_message) == (f"{a.prefix}/in", b"marker", False)
    assert observer.messages.empty()
    # The hub writes B's out after A's forged write was acknowledged: B sees the hub's only.
    await asyncio.to_thread(observer.publish, f"{b.prefix}/out", b"from the hub")
    assert await asyncio.to_thread(pb.next_message) == (f"{b.prefix}/out", b"from the hub", False)
    assert pb.messages.empty()


async def test_broker_accounts_follow_the_hub(in_process: InProcess, probes: Callable[[Path, int], Probe]) -> None:
    broker = in_process.app.state.mqtt_broker
    hub = await _hub(in_process)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    client = await _client(in_process, hub["id"], "replayed", **key)
    replay = await _client(in_process, hub["id"], "replayed", **key)
    assert replay == client
    a = Identity.of(client)
    accounts_before = {account.username for account in broker.access}
    assert a.username in accounts_before and len(accounts_before) == 2  # the hub's and A's
    pa = await _login(in_process, probes, a.username, a.password)
    url = f"/v1/hubs/{hub['id']}"
    mqtt_off = {**HUB_SPEC, "protocols": {"mqtt": False}}
    off = await in_process.http.patch(url, json={"spec": mqtt_off}, headers={"If-Match": hub["etag"]})
    assert off.status_code == 200, off.text
    assert await asyncio.to_thread(pa.disconnected.wait, WAIT)
    assert a.username not in broker.access
    on = await in_process.http.patch(url, json={"spec": HUB_SPEC}, headers={"If-Match": off.json()["etag"]})
    assert on.status_code == 200, on.text
    assert a.username in broker.access
    again = await _login(in_process, probes, a.username, a.password)
    inactive = await in_process.http.patch(url, json={"active": False}, headers={"If-Match": on.json()["etag"]})
    assert inactive.status_code == 200, inactive.text
    assert await asyncio.to_thread(again.disconnected.wait, WAIT)
    assert a.username not in broker.access
    active = await in_process.http.patch(url, json={"active": True}, headers={"If-Match": inactive.json()["etag"]})
    last = await _login(in_process, probes, a.username, a.password)
    gone = await in_process.http.delete(url, headers={"If-Match": active.json()["etag"]})
    assert gone.status_code == 204, gone.text
    assert await asyncio.to_thread(last.disconnected.wait, WAIT)
    assert {account.username for account in broker.access} == {in_process.app.state.mqtt_hub_login.username}


@pytest.mark.parametrize("in_process", ["mosquitto"], indirect=True)
async def test_a_dead_broker_does_not_fail_the_api(in_process: InProcess, caplog: pytest.LogCaptureFixture) -> None:
    """The database change stands and the failure is logged (Mosquitto: it can die apart)."""
    broker = in_process.app.state.mqtt_broker
    process = broker._process
    process.kill()
    await asyncio.to_thread(process.wait)
    hub = await _hub(in_process)
    with caplog.at_level("ERROR", logger="thalovant_server.api.broker_accounts"):
        client = await _client(in_process, hub["id"])
    mqtt = client["initial_identify"]["mqtt"]
    assert any("did not take the account change" in r.getMessage() for r in caplog.records)
    assert not any(mqtt["password"] in r.getMessage() for r in caplog.records)
    listed = await in_process.http.get("/v1/clients", params={"hub_id": hub["id"]})
    assert [item["id"] for item in listed.json()["data"]] == [client["id"]]


def test_serve_without_mosquitto_installed_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--mqtt-broker mosquitto`` on a machine without the binary: one line, status 1."""
    from click.testing import CliRunner

    from thalovant_server import cli
    from thalovant_server.mqtt import mosquitto

    logger = logging.getLogger("thalovant_server")  # serve adds a handler on CliRunner's stderr
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "level", logger.level)
    monkeypatch.setattr(mosquitto, "find_mosquitto", lambda: None)
    for name in [k for k in os.environ if k.startswith("THALOVANT_")]:
        monkeypatch.delenv(name)
    args = ["serve", "--data-dir", str(tmp_path / "data"), "--port", str(free_port()), "--mqtt-port", "0"]
    result = CliRunner().invoke(cli.main, [*args, "--mqtt-broker", "mosquitto"])
    assert result.exit_code == 1, result.output
    assert "the MQTT broker (mosquitto) did not start" in result.output
    assert "mosquitto executable was not found" in result.output
    assert "Traceback" not in result.output and "Thalovant API" not in result.output
