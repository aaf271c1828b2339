"""Run a command against a live platform: ``thalovant-server serve --demo`` and, optionally, hivemind-core.

``python -m peers testbed [--hm5] -- CMD [ARG...]`` is how the Node.js, Go and Rust test suites
(and anyone by hand) get real hubs to talk to. It starts

- our server, ``serve --demo`` on a fresh data directory, on free 127.0.0.1 ports (the API and
  every hub's WSS/HTTPS endpoints on one TLS port, the embedded MQTT broker on another);
- with ``--hm5``, the hivemind-core stack of :mod:`peers.hm5` with one registered client;

writes ``testbed.json`` describing both, runs CMD with these variables, stops everything and exits
with CMD's status:

- ``THALOVANT_TESTBED``: the path of ``testbed.json``;
- ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``: one CA
  bundle trusting what the environment trusted before plus the server's development CA and the
  hm5 test CA;
- ``THALOVANT_API_URL``: the server's API.

``testbed.json``::

    {"python": ..., "server_command": [...], "ca_bundle": ...,
     "demo": {"api_url", "ca_file", "data_dir", "email", "password", "hub_slug", "mqtt_port"},
     "hm5": {"identity_file", "ca_file"} | null}
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from peers import REPO, venvs
from peers.hm5 import HM5Stack
from peers.processes import free_ports

READY = "Thalovant API: "
DEMO_EMAIL = "demo@example.com"
DEMO_HUB = "joke-garden"
TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")


def server_command() -> list[str]:
    """How to run ``thalovant-server`` from the interpreter running this module."""
    exe = Path(sys.executable).parent / "thalovant-server"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "thalovant_server.cli"]


def base_trust() -> str:
    """The PEM text the environment trusts now (its bundle variable, else OpenSSL's default file)."""
    for variable in TRUST_VARIABLES:
        path = os.environ.get(variable)
        if path and os.path.isfile(path):
            return Path(path).read_text(encoding="utf-8", errors="replace")
    default = ssl.get_default_verify_paths().cafile
    return Path(default).read_text(encoding="utf-8", errors="replace") if default and os.path.isfile(default) else ""


SERVER_LOG_TAIL = 120
"""Lines of the demo server's output printed when the command fails."""


class DemoServer:
    """``thalovant-server serve --demo`` on a data directory of its own, until :meth:`stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port, self.mqtt_port = free_ports(2)
        self.password = "demo-" + secrets.token_urlsafe(12)
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("THALOVANT_")}
        env["THALOVANT_DEMO_PASSWORD"] = self.password
        argv = [*server_command(), "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
                "--port", str(self.port), "--mqtt-port", str(self.mqtt_port), "--demo"]  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
        )
        ready = threading.Event()
        stream = self.process.stdout
        assert stream is not None

        def pump() -> None:  # keeps reading so the server never blocks on a full pipe
            for line in stream:
                self.output.append(line)
                if line.startswith(READY):
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError("thalovant-server did not start:\n" + "".join(self.output[-60:]))

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=30)
        self.process = None


class Testbed:
    """Our demo server (and hivemind-core with ``hm5``) in a temporary folder, described by ``testbed.json``."""

    def __init__(self, *, hm5: bool, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="thalovant-testbed-"))
        self.server = DemoServer(self.root / "server")
        self.hm5 = HM5Stack(self.root / "hm5") if hm5 else None

    @property
    def description_file(self) -> Path:
        return self.root / "testbed.json"

    @property
    def ca_bundle(self) -> Path:
        return self.root / "ca-bundle.pem"

    def start(self) -> None:
        try:
            if self.hm5 is not None:
                venvs.ensure(quiet=True)
                self.hm5.start()
            self.server.start()
            self._describe()
        except BaseException:
            self.stop()
            raise

    def _describe(self) -> None:
        server_ca = self.server.data_dir / "ca.pem"
        pems = [base_trust(), server_ca.read_text(encoding="utf-8")]
        if self.hm5 is not None:
            pems.append(self.hm5.ca_file.read_text(encoding="utf-8"))
        self.ca_bundle.write_text("\n".join(pem.strip() for pem in pems if pem.strip()) + "\n", encoding="utf-8")
        description = {
            "python": sys.executable,
            "server_command": server_command(),
            "ca_bundle": str(self.ca_bundle),
            "demo": {
                "api_url": self.server.api_url,
                "ca_file": str(server_ca),
                "data_dir": str(self.server.data_dir),
                "email": DEMO_EMAIL,
                "password": self.server.password,
                "hub_slug": DEMO_HUB,
                "mqtt_port": self.server.mqtt_port,
            },
            "hm5": None
            if self.hm5 is None
            else {"identity_file": str(self.hm5.identity_file()), "ca_file": str(self.hm5.ca_file)},
        }
        fd = os.open(self.description_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(description, handle, indent=2)

    def environment(self) -> dict[str, str]:
        """The caller's environment plus the testbed's variables."""
        env = dict(os.environ)
        env["THALOVANT_TESTBED"] = str(self.description_file)
        env["THALOVANT_API_URL"] = self.server.api_url
        for variable in TRUST_VARIABLES:
            env[variable] = str(self.ca_bundle)
        return env

    def stop(self) -> None:
        self.server.stop()
        if self.hm5 is not None:
            self.hm5.stop()

    def __enter__(self) -> Testbed:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def run(command: list[str], *, hm5: bool) -> int:
    """Run ``command`` inside a :class:`Testbed`; its exit status."""
    with Testbed(hm5=hm5) as bed:
        print(f"[testbed] {bed.server.api_url}{' + hivemind-core' if hm5 else ''}; running: {' '.join(command)}",
              file=sys.stderr, flush=True)  # fmt: skip
        try:
            code = subprocess.run(command, env=bed.environment(), cwd=REPO).returncode
        except KeyboardInterrupt:
            return 130
        if code != 0:  # what the server logged is the other half of a failure's evidence
            tail = "".join(bed.server.output[-SERVER_LOG_TAIL:])
            print(f"[testbed] {command[0]} failed ({code}); the server's last lines:\n{tail}",
                  file=sys.stderr, flush=True)  # fmt: skip
        return code
