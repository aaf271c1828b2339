"""hivemind-core 5.3.10a1 as a peer hub on loopback, with all three of its carriers.

:class:`HM5Stack` runs, in a state folder of its own and on free 127.0.0.1 ports:

==============  =========================================  ===================================
process         listens on                                 for
==============  =========================================  ===================================
mosquitto       ``mqtt_port`` (plain), ``mqtts_port`` (TLS)  the hub's mqtt carrier / clients
ovos-messagebus ``ws://127.0.0.1:<bus_port>/core``          the hub's agent and the responder
responder.py    (bus client)                                answers "You said <utterance>"
hivemind-core   ``ws://…:<ws_port>/``, ``https://…:<https_port>``  clients
==============  =========================================  ===================================

Its clients' identities (Thalovant identity JSON, 0600) name the three endpoints; the https
carrier and the mqtts listener present certificates of the stack's own test CA (``ca_file``). The
state folder keeps the CA, the secrets and the hub's database across restarts of the same stack,
so a client's Noise pins stay valid; hivemind-core pins the first client key it sees for an
access key, so one identity belongs to one client Noise state.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from peers import HERE, hm5_venv
from peers.processes import Child, free_ports


@dataclass(frozen=True)
class Ports:
    """The stack's listeners, all on 127.0.0.1."""

    bus: int
    ws: int
    https: int
    mqtt: int
    mqtts: int

    @classmethod
    def free(cls) -> Ports:
        """Five different ports nothing listens on now."""
        return cls(*free_ports(5))


HOST = "127.0.0.1"
HUB_BROKER_USER = "hm5-hub"


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` atomically with ``mode`` (a new file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(staging, path)


def _find(program: str, *fallbacks: str) -> str:
    found = shutil.which(program) or next((path for path in fallbacks if os.access(path, os.X_OK)), None)
    if found is None:
        raise RuntimeError(f"{program} is not installed (Debian package mosquitto)")
    return found


def make_test_ca(tls: Path) -> None:
    """A test CA and a certificate for localhost, 127.0.0.1 and ::1 that it signed (kept once made)."""
    if (tls / "server.pem").is_file() and (tls / "server.key").is_file() and (tls / "ca.pem").is_file():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    valid_from, valid_to = now - dt.timedelta(hours=1), now + dt.timedelta(days=365)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Thalovant peers test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST)),
             x509.IPAddress(ipaddress.ip_address("::1"))]  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    private = serialization.PrivateFormat.PKCS8
    _write(tls / "server.key", key.private_bytes(pem, private, serialization.NoEncryption()).decode())
    _write(tls / "server.pem", cert.public_bytes(pem).decode(), 0o644)
    _write(tls / "ca.pem", ca.public_bytes(pem).decode(), 0o644)


class HM5Stack:
    """The hivemind-core stack in ``state`` (created 0700), with ``clients`` registered identities."""

    def __init__(self, state: Path, *, ports: Ports | None = None, clients: int = 1, nodelay: bool = False) -> None:
        self.state = state.resolve()
        self.ports = ports or Ports.free()
        self.clients = clients
        self.nodelay = nodelay
        self.children: list[Child] = []

    # ------------------------------------------------------------------ paths

    @property
    def ca_file(self) -> Path:
        """The test CA of the https carrier and of the mqtts listener."""
        return self.state / "tls" / "ca.pem"

    def identity_file(self, index: int = 0) -> Path:
        """The identity of registered client ``index`` (0600)."""
        return self.state / "clients" / f"identity-{index}.json"

    @property
    def identity_files(self) -> list[Path]:
        return [self.identity_file(i) for i in range(self.clients)]

    def _xdg(self, kind: str) -> Path:
        return self.state / "xdg" / kind

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": str(self.state / "home"),
            **{f"XDG_{kind.upper()}_HOME": str(self._xdg(kind)) for kind in ("config", "data", "state", "cache")},
        }
        if self.nodelay:
            env["PYTHONPATH"] = str(HERE / "nodelay")
            env["PEERS_NODELAY"] = "1"
        return env

    # ------------------------------------------------------------------ configuration

    def _secrets(self) -> dict[str, object]:
        path = self.state / "secrets.json"
        if path.is_file():
            known: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
            if len(known.get("clients", [])) >= self.clients:  # type: ignore[arg-type]
                return known
        made: dict[str, object] = {
            "hub_broker_password": secrets.token_hex(16),
            "clients": [
                {
                    "access_key": f"peers{secrets.token_hex(12)}",
                    "password": secrets.token_hex(16),
                    "broker_user": f"peers-client-{i}",
                    "broker_password": secrets.token_hex(16),
                }
                for i in range(self.clients)
            ],
        }
        _write(path, json.dumps(made, indent=2) + "\n")
        # new secrets: a new hub database, nothing registered yet
        (self.state / "registered").unlink(missing_ok=True)
        shutil.rmtree(self._xdg("data") / "hivemind-core", ignore_errors=True)
        return made

    def _configure(self, secret: dict[str, object]) -> list[dict[str, str]]:
        ports = self.ports
        clients: list[dict[str, str]] = secret["clients"]  # type: ignore[assignment]
        tls = self.state / "tls"
        make_test_ca(tls)
        certs = self._xdg("data") / "hivemind"  # the carriers use <cert_dir>/hivemind.{crt,key} when present
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tls / "server.pem", certs / "hivemind.crt")
        shutil.copyfile(tls / "server.key", certs / "hivemind.key")
        os.chmod(certs / "hivemind.key", 0o600)
        _write(
            self._xdg("config") / "mycroft" / "mycroft.conf",
            json.dumps(
                {
                    "websocket": {"host": HOST, "port": ports.bus, "route": "/core", "ssl": False},
                    "log_level": "INFO",
                    "logs": {"path": str(self.state / "logs" / "ovos")},
                }
            ),
        )
        plugins = {
            "hivemind-websocket-plugin": {"host": HOST, "port": ports.ws, "ssl": False},
            "hivemind-http-plugin": {
                "host": HOST,
                "port": ports.https,
                "ssl": True,
                "cert_dir": str(certs),
                "cert_name": "hivemind",
            },
            "hivemind-mqtt-plugin": {
                "broker_host": HOST,
                "broker_port": ports.mqtt,
                "broker_username": HUB_BROKER_USER,
                "broker_password": secret["hub_broker_password"],
                "topic_prefix": "hivemind",
                "qos": 1,
            },
        }
        server = {
            "agent_protocol": {
                "module": "hivemind-ovos-agent-plugin",
                "hivemind-ovos-agent-plugin": {"host": HOST, "port": ports.bus},
            },
            "binary_protocol": {"module": None},
            "presence": {"enabled": False, "zeroconf": False, "upnp": False},
            "upstream": {"enabled": False},
            "network_protocol": plugins,
            "database": {
                "module": "hivemind-sqlite-db-plugin",
                "hivemind-sqlite-db-plugin": {"name": "clients", "subfolder": "hivemind-core"},
            },
        }
        _write(self._xdg("config") / "hivemind-core" / "server.json", json.dumps(server, indent=2))
        self._configure_broker(secret, clients)
        for index, client in enumerate(clients[: self.clients]):
            _write(self.identity_file(index), json.dumps(self._identity(index, client), indent=2) + "\n")
        return clients[: self.clients]

    def _configure_broker(self, secret: dict[str, object], clients: list[dict[str, str]]) -> None:
        broker = self.state / "mosquitto"
        tls = self.state / "tls"
        lines = [
            "per_listener_settings false",
            f"user {pwd.getpwuid(os.getuid()).pw_name}",  # no privilege drop: the files are 0600
            "allow_anonymous false",
            f"password_file {broker / 'passwd'}",
            f"acl_file {broker / 'acl'}",
            "persistence false",
            "log_dest stdout",
            "connection_messages true",
            f"set_tcp_nodelay {'true' if self.nodelay else 'false'}",
            f"listener {self.ports.mqtt} {HOST}",
            f"listener {self.ports.mqtts} {HOST}",
            f"cafile {tls / 'ca.pem'}",
            f"certfile {tls / 'server.pem'}",
            f"keyfile {tls / 'server.key'}",
        ]
        _write(broker / "mosquitto.conf", "\n".join(lines) + "\n")
        acl = [f"user {HUB_BROKER_USER}", "topic readwrite hivemind/#", ""]
        for client in clients:
            acl += [f"user {client['broker_user']}", f"topic readwrite hivemind/{client['access_key']}/#", ""]
        _write(broker / "acl", "\n".join(acl))
        users = [(HUB_BROKER_USER, str(secret["hub_broker_password"]))]
        users += [(client["broker_user"], client["broker_password"]) for client in clients]
        _write(broker / "passwd", "".join(f"{user}:{password}\n" for user, password in users))
        # hashes the file in place: no password on a command line
        passwd = _find("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
        subprocess.run([passwd, "-U", str(broker / "passwd")], check=True, capture_output=True, timeout=60)

    def _identity(self, index: int, client: dict[str, str]) -> dict[str, object]:
        mqtts = f"mqtts://{HOST}:{self.ports.mqtts}"
        return {
            "access_key": client["access_key"],
            "password": client["password"],
            "site_id": f"peers-hm5-{index}",
            "default_master": f"https://{HOST}",
            "default_port": self.ports.https,
            "data_plane_endpoints": {
                "wss": f"ws://{HOST}:{self.ports.ws}/",
                "https": f"https://{HOST}:{self.ports.https}",
                "mqtt": mqtts,
            },
            "protocols": {"wss": True, "http": True, "mqtt": True},
            "mqtt": {
                "endpoint": mqtts,
                "username": client["broker_user"],
                "password": client["broker_password"],
                "topic_prefix": f"hivemind/{client['access_key']}",
                "qos": 1,
                "tls": True,
            },
            "metadata": {"peer": "hivemind-core 5.3.10a1", "tls_ca_file": str(self.ca_file)},
        }

    def _register(self, clients: list[dict[str, str]]) -> None:
        marker = self.state / "registered"
        done = set(marker.read_text(encoding="utf-8").split()) if marker.is_file() else set()
        hub = str(hm5_venv() / "bin" / "hivemind-core")
        for index, client in enumerate(clients):
            if client["access_key"] in done:
                continue
            result = subprocess.run(
                [hub, "add-client", "--name", f"peers-{index}", "--access-key", client["access_key"],
                 "--password", client["password"], "--allow", "recognizer_loop:utterance"],
                capture_output=True, text=True, env=self._env(), cwd=self.state, timeout=180,
            )
            if result.returncode != 0:
                output = (result.stdout + result.stderr).replace(client["password"], "<password>")
                raise RuntimeError(f"hivemind-core add-client failed:\n{output[-3000:]}")
            done.add(client["access_key"])
            marker.write_text("\n".join(sorted(done)) + "\n", encoding="utf-8")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Configure (first time) and start the four processes; returns once every one is ready."""
        venv = hm5_venv()
        if not (venv / "bin" / "hivemind-core").exists():
            raise RuntimeError(f"no hivemind-core venv at {venv}: run `python -m peers setup`")
        self.state.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o700)
        clients = self._configure(self._secrets())
        self._register(clients)
        env, logs = self._env(), self.state / "logs"
        try:
            broker_conf = self.state / "mosquitto" / "mosquitto.conf"
            mosquitto = self._launch("mosquitto", [_find("mosquitto", "/usr/sbin/mosquitto"), "-c", str(broker_conf)],
                                     env, logs)  # fmt: skip
            mosquitto.wait_for_port(self.ports.mqtt)
            mosquitto.wait_for_port(self.ports.mqtts)
            bus = self._launch("bus", [str(venv / "bin" / "ovos-messagebus")], env, logs)
            bus.wait_for_port(self.ports.bus, timeout=90)
            responder = self._launch(
                "responder", [str(venv / "bin" / "python"), str(HERE / "responder.py"), "--port", str(self.ports.bus)],
                env, logs,
            )  # fmt: skip
            responder.wait_for_log("responder ready", timeout=90)
            hub = self._launch("hub", [str(venv / "bin" / "hivemind-core"), "listen"], env, logs)
            hub.wait_for_port(self.ports.ws, timeout=120)
            hub.wait_for_port(self.ports.https, timeout=60)
            hub.wait_for_log("[MQTT] Connected to broker", timeout=60)
        except BaseException:
            self.stop()
            raise

    def _launch(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> Child:
        child = Child(name, argv, log=logs / f"{name}.log", env=env, cwd=self.state)
        self.children.append(child)
        return child

    def stop(self) -> None:
        """Stop every process of the stack (the reverse of the start order); state is kept."""
        while self.children:
            self.children.pop().stop()

    def __enter__(self) -> HM5Stack:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
