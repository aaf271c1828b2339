"""Mosquitto 2 as the external broker: its config, password and ACL files, and its process.

:class:`MosquittoBroker` renders the accounts of an
:class:`~thalovant_server.mqtt.acl.MqttAccessControl` into a config directory and runs
``mosquitto -c`` on it:

- ``mosquitto.conf``: one TLS listener (``listener PORT HOST`` with ``certfile``/``keyfile``),
  ``allow_anonymous false``, ``password_file``, ``acl_file``, ``set_tcp_nodelay true``,
  ``persistence false``, logs on stdout;
- ``passwd``: ``user:$7$...`` lines, Mosquitto 2's PBKDF2-SHA512 format, the very hashes the
  accounts store (accounts whose hash Mosquitto cannot read are left out, with a warning);
- ``acl``: one ``user`` block per account with ``topic write`` / ``topic read`` lines, rendered
  from the same grants the embedded broker enforces.

Account changes rewrite both files and send SIGHUP: Mosquitto 2 re-reads them and disconnects the
clients whose credentials no longer hold. The awaited call returns once Mosquitto logged the
reload, so any CONNECT after that sees the new files.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from thalovant.files import write_private
from thalovant_server.files import ensure_private_dir
from thalovant_server.limits import Limits
from thalovant_server.mqtt.acl import MqttAccessControl
from thalovant_server.mqtt.broker import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    BrokerAddress,
    BrokerReloadError,
    BrokerStartError,
)
from thalovant_server.mqtt.credentials import BrokerAccount, is_mosquitto_hash

CONFIG_FILE = "mosquitto.conf"
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
READY_MARKER = " running"
RELOAD_MARKER = "Reloading config"
START_TIMEOUT = 30.0
RELOAD_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
MAX_LOG_LINES = 2000
PR_SET_PDEATHSIG = 1
#: QoS 1/2 messages queued for one client beyond its in-flight window
MAX_QUEUED_MESSAGES = 100

log = logging.getLogger(__name__)


def find_mosquitto() -> str | None:
    """The ``mosquitto`` executable: on PATH, else Debian's ``/usr/sbin/mosquitto``."""
    found = shutil.which("mosquitto")
    if found:
        return found
    debian = Path("/usr/sbin/mosquitto")
    return str(debian) if debian.is_file() and os.access(debian, os.X_OK) else None


# -- rendering (pure functions) -----------------------------------------------------------------


def render_password_file(access: MqttAccessControl) -> str:
    """``username:hash`` lines for every account whose hash Mosquitto can verify."""
    lines = []
    for account in sorted(access, key=lambda a: a.username):
        if not is_mosquitto_hash(account.password_hash):
            log.warning("MQTT account %r has no Mosquitto-compatible password hash; left out", account.username)
            continue
        lines.append(f"{account.username}:{account.password_hash}")
    return "".join(line + "\n" for line in lines)


def render_acl_file(access: MqttAccessControl) -> str:
    """Mosquitto ``acl_file`` text: a ``user`` block with ``topic`` lines per account."""
    blocks = ["# Written by thalovant-server; every change is overwritten.\n"]
    for account in sorted(access, key=lambda a: a.username):
        lines = [f"user {account.username}"]
        lines += [f"topic {grant.access.value} {grant.topic_filter}" for grant in account.grants]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def render_config(
    *,
    host: str,
    port: int,
    cert_file: Path,
    key_file: Path,
    password_file: Path,
    acl_file: Path,
    ca_file: Path | None = None,
    run_as: str | None = None,
    limits: Limits | None = None,
) -> str:
    """``mosquitto.conf`` text for one TLS listener with password and ACL files, and the
    server's MQTT limits."""
    limits = limits or Limits()
    lines = [
        "# Written by thalovant-server; every change is overwritten.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {password_file}",
        f"acl_file {acl_file}",
        "persistence false",
        "log_dest stdout",
        "log_timestamp false",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "set_tcp_nodelay true",
        f"max_packet_size {limits.mqtt_max_packet}",
        f"max_inflight_messages {limits.mqtt_max_inflight}",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
    ]
    if run_as:
        lines.append(f"user {run_as}")
    lines += [
        f"listener {port} {host}",
        f"max_connections {limits.mqtt_max_connections}",
        f"certfile {cert_file}",
        f"keyfile {key_file}",
        "tls_version tlsv1.2",
    ]
    if ca_file is not None:
        lines.append(f"cafile {ca_file}")
    return "\n".join(lines) + "\n"


def die_with_parent() -> None:
    """In a child before ``exec``: ask Linux for SIGTERM when the spawning thread ends
    (``PR_SET_PDEATHSIG``), so that ``kill -9`` of the server takes its broker along."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def stale_brokers(config_file: Path) -> list[int]:
    """Pids of running Mosquitto processes started on ``config_file`` (Linux ``/proc``)."""
    wanted = str(config_file.resolve()).encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"mosquitto") for arg in argv) and wanted in argv and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM ``pid``, then SIGKILL if it is still there after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# -- the process --------------------------------------------------------------------------------


class _LogTail:
    """Collects the broker's output lines in a thread, and lets callers wait for a line."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()

    def follow(self, stream: Iterable[str]) -> None:
        try:
            for raw in stream:
                with self._cond:
                    self._lines.append(raw.rstrip("\n"))
                    del self._lines[:-MAX_LOG_LINES]
                    self._count += 1
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    @property
    def count(self) -> int:
        with self._cond:
            return self._count

    def tail(self, n: int = 20) -> str:
        with self._cond:
            return "\n".join(self._lines[-n:])

    def wait_for(self, predicate: Callable[[str], bool], *, after: int, timeout: float) -> bool:
        """Wait until a line numbered ``after`` or later satisfies ``predicate``."""

        def found() -> bool:
            first = self._count - len(self._lines)
            start = max(after - first, 0)
            return any(predicate(line) for line in self._lines[start:])

        with self._cond:
            return self._cond.wait_for(lambda: found() or self._closed, timeout) and found()


class MosquittoBroker:
    """A Mosquitto 2 process with a TLS listener and the accounts of :attr:`access`.

    ``config_dir`` receives the config, password and ACL files (0600). ``port=0`` picks a free
    port when starting. ``max_lifetime`` (seconds) runs Mosquitto under ``timeout`` so that a
    forgotten test broker cannot outlive its run; the server leaves it ``None``.
    """

    def __init__(
        self,
        *,
        config_dir: str | Path,
        cert_file: str | Path,
        key_file: str | Path,
        ca_file: str | Path | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        accounts: Iterable[BrokerAccount] = (),
        executable: str | None = None,
        max_lifetime: float | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.config_dir = Path(config_dir)
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.ca_file = Path(ca_file) if ca_file is not None else None
        self.host = host
        self.port = port
        self.executable = executable
        self.max_lifetime = max_lifetime
        self.limits = limits or Limits()
        self.access = MqttAccessControl(accounts)
        self._process: subprocess.Popen[str] | None = None
        self._log = _LogTail()
        self._address: BrokerAddress | None = None
        self._lock = threading.Lock()

    # -- files --------------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.config_dir / CONFIG_FILE

    @property
    def password_file(self) -> Path:
        return self.config_dir / PASSWORD_FILE

    @property
    def acl_file(self) -> Path:
        return self.config_dir / ACL_FILE

    def write_account_files(self) -> None:
        """Write the password and ACL files from :attr:`access` (atomically, mode 0600)."""
        ensure_private_dir(self.config_dir)
        write_private(self.password_file, render_password_file(self.access))
        write_private(self.acl_file, render_acl_file(self.access))

    def write_config(self, port: int) -> None:
        run_as = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
        ensure_private_dir(self.config_dir)
        text = render_config(
            host=self.host,
            port=port,
            cert_file=self.cert_file.resolve(),
            key_file=self.key_file.resolve(),
            password_file=self.password_file.resolve(),
            acl_file=self.acl_file.resolve(),
            ca_file=self.ca_file.resolve() if self.ca_file is not None else None,
            run_as=run_as,
            limits=self.limits,
        )
        write_private(self.config_file, text)

    # -- life cycle (blocking core) -----------------------------------------------------------

    def start_sync(self) -> BrokerAddress:
        """Write the files, start Mosquitto and wait until it listens.

        Raises :class:`BrokerStartError` (with Mosquitto's last log lines) when it does not.
        """
        with self._lock:
            process, port = self._launch()
            return self._await_ready(process, port)

    def _launch(self) -> tuple[subprocess.Popen[str], int]:
        """Replace a stale Mosquitto of this config directory, write the files, spawn Mosquitto.

        The child gets SIGTERM when the thread that spawned it ends (``PR_SET_PDEATHSIG``): spawn
        it from a thread that lives as long as the server (:meth:`start` uses the event loop's).
        """
        if self._process is not None:
            raise BrokerStartError("this Mosquitto broker is already running")
        for stale in stale_brokers(self.config_file):
            log.warning("stopping a Mosquitto (pid %d) left running on %s", stale, self.config_dir)
            stop_pid(stale, STOP_TIMEOUT)
        executable = self.executable or find_mosquitto()
        if executable is None:
            raise BrokerStartError("the mosquitto executable was not found (apt-get install mosquitto)")
        for path in (self.cert_file, self.key_file):
            if not path.is_file():
                raise BrokerStartError(f"TLS file not found: {path}")
        port = self.port or _free_port(self.host)
        self.write_account_files()
        self.write_config(port)
        # Mosquitto block-buffers stdout into a pipe; stdbuf makes its log lines arrive at once.
        stdbuf = shutil.which("stdbuf")
        if stdbuf is None:
            raise BrokerStartError("stdbuf (coreutils) was not found; it is needed to follow Mosquitto's log")
        command = [stdbuf, "-oL", executable, "-c", str(self.config_file.resolve())]
        if self.max_lifetime is not None:
            # --foreground: timeout then forwards every SIGHUP to Mosquitto, not just the first.
            command = ["timeout", "--foreground", "--signal=TERM", f"{self.max_lifetime:g}", *command]
        self._log = _LogTail()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                preexec_fn=die_with_parent,
            )
        except OSError as exc:
            raise BrokerStartError(f"cannot run mosquitto: {exc}") from exc
        assert process.stdout is not None
        threading.Thread(target=self._log.follow, args=(process.stdout,), name="mosquitto-log", daemon=True).start()
        return process, port

    def _await_ready(self, process: subprocess.Popen[str], port: int) -> BrokerAddress:
        if not self._log.wait_for(lambda line: READY_MARKER in line, after=0, timeout=START_TIMEOUT):
            self._kill(process)
            raise BrokerStartError("mosquitto did not start:\n" + self._log.tail())
        self._process = process
        self._address = BrokerAddress(self.host, port)
        log.info("Mosquitto listening on %s", self._address.endpoint)
        return self._address

    def reload_sync(self) -> None:
        """Rewrite the account files and make the running Mosquitto re-read them (SIGHUP)."""
        with self._lock:
            self.write_account_files()
            process = self._process
            if process is None:
                return
            if process.poll() is not None:
                raise BrokerReloadError("mosquitto is no longer running:\n" + self._log.tail())
            mark = self._log.count
            process.send_signal(signal.SIGHUP)
            if not self._log.wait_for(lambda line: RELOAD_MARKER in line, after=mark, timeout=RELOAD_TIMEOUT):
                raise BrokerReloadError("mosquitto did not confirm the reload:\n" + self._log.tail())

    def stop_sync(self) -> None:
        """Stop Mosquitto (SIGTERM, then SIGKILL). Safe to call twice."""
        with self._lock:
            process, self._process = self._process, None
            self._address = None
            if process is not None:
                self._kill(process)

    @staticmethod
    def _kill(process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            with contextlib.suppress(OSError):
                process.stdout.close()

    @property
    def running(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None

    @property
    def address(self) -> BrokerAddress:
        if self._address is None:
            raise RuntimeError("the Mosquitto broker is not running")
        return self._address

    def log_tail(self, lines: int = 20) -> str:
        """Mosquitto's last output lines (for diagnostics; they never contain passwords)."""
        return self._log.tail(lines)

    # -- the async API (MqttBroker) -----------------------------------------------------------

    async def start(self) -> BrokerAddress:
        # spawned from the event loop's thread, which lives as long as the server (see _launch)
        with self._lock:
            process, port = self._launch()
            return await asyncio.to_thread(self._await_ready, process, port)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    async def __aenter__(self) -> MosquittoBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def add_account(self, account: BrokerAccount) -> None:
        """Add or replace an account and reload Mosquitto."""
        self.access.add(account)
        await asyncio.to_thread(self.reload_sync)

    async def remove_account(self, username: str) -> bool:
        """Remove an account and reload; Mosquitto drops that user's connections."""
        existed = self.access.remove(username) is not None
        await asyncio.to_thread(self.reload_sync)
        return existed

    async def replace_accounts(self, accounts: Iterable[BrokerAccount]) -> None:
        self.access.replace_all(accounts)
        await asyncio.to_thread(self.reload_sync)
