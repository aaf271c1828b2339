"""What every bench script shares: our server as a child process, the peers, the statistics.

- :class:`OurServer` / :func:`our_server`: ``thalovant-server serve --demo`` on a free 127.0.0.1
  port in a temporary data directory (extra ``serve`` arguments allowed), with identities made
  by the admin CLI;
- :func:`public_sdk_ask`: ``peers/sdk_ask.py --json`` (the public SDK 0.9.7 in its own
  venv) over wss, https or mqtt; :func:`our_sdk_ask`: the same measurement with our SDK;
  :func:`public_sdk_split`: ``bench/mqtt_split.py`` (the public SDK's MQTT asks, wire vs client);
- :func:`hm5_running`: hivemind-core 5.3.10a1 with its three carriers (``peers.hm5``);
- :func:`percentile`: nearest rank, as ``peers/sdk_ask.py`` computes it;
- :class:`Placement`: the server on one CPU, the clients on the others.

The peers' venvs and state live in ``$THALOVANT_PEERS`` or ``thalovant-peers`` in the system
temporary folder (``python -m peers setup`` builds them).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from peers import peers_dir, sdk097_python, venvs  # noqa: E402
from peers.hm5 import HM5Stack  # noqa: E402
from peers.processes import free_port  # noqa: E402

READY = "Thalovant API: "
TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def setup_peers() -> None:
    """Build the peers' venvs (idempotent; about a second once built)."""
    venvs.ensure(quiet=True)


@dataclass(frozen=True)
class Placement:
    """The server on one CPU, this process (and every process it starts later) on the others.

    Left to the scheduler on a small machine, a client woken by the server's reply often runs
    on the server's CPU and preempts the server inside its write, so a measured ask depends on
    where the processes happened to land. Every SDK of one run gets the same placement.
    """

    server: frozenset[int]
    clients: frozenset[int]

    @classmethod
    def split(cls) -> Placement | None:
        """The first allowed CPU for the server, the rest for clients; ``None`` below two CPUs."""
        cpus = sorted(os.sched_getaffinity(0))
        return cls(frozenset(cpus[:1]), frozenset(cpus[1:])) if len(cpus) >= 2 else None

    def pin_server(self, pid: int) -> None:
        """Every thread of ``pid`` on the server's CPU (threads it starts later inherit it)."""
        _pin_threads(pid, self.server)

    def pin_client(self, pid: int | None = None) -> None:
        """Every thread of ``pid`` (default: this process) on the clients' CPUs."""
        _pin_threads(os.getpid() if pid is None else pid, self.clients)

    def __str__(self) -> str:
        return f"server on CPU {sorted(self.server)}, clients on CPUs {sorted(self.clients)}"


def _pin_threads(pid: int, cpus: frozenset[int]) -> None:
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), cpus)


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, every thread) process ``pid`` used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_command() -> list[str]:
    exe = Path(sys.executable).parent / "thalovant-server"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "thalovant_server.cli"]


def clean_env() -> dict[str, str]:
    """This process's environment without THALOVANT_* and PYTHON* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("THALOVANT_", "PYTHON"))}


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 4) if ours and theirs else None


def fmt(value: Any) -> str:
    return "-" if value is None else f"{value}"


def latency_columns(row: dict[str, Any], width: int = 12) -> str:
    """A timed-asks result as aligned columns: median, p99, errors, Noise pattern."""
    return (f"{fmt(row.get('median_ms')):>{width}}{fmt(row.get('p99_ms')):>{width}}"
            f"{fmt(row.get('errors')):>8}{fmt(row.get('noise_pattern')):>10}")  # fmt: skip


@dataclass
class OurServer:
    """``thalovant-server serve --demo`` as a child process in its own process group."""

    data_dir: Path
    port: int
    extra_args: list[str] = field(default_factory=list)
    demo_password: str = field(default_factory=lambda: "bench-" + secrets.token_urlsafe(12))
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "ca.pem"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        env = clean_env()
        env["THALOVANT_DEMO_PASSWORD"] = self.demo_password
        cmd = [*server_command(), "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
               "--port", str(self.port), "--demo", *self.extra_args]  # fmt: skip
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                        start_new_session=True)  # fmt: skip
        stream = self.process.stdout
        assert stream is not None
        for line in stream:
            self.output.append(line)
            if line.startswith(READY):
                break
        else:
            sys.exit("our server exited before ready:\n" + "".join(self.output))
        # keep draining the pipe so the server never blocks on a full stdout
        threading.Thread(target=lambda: self.output.extend(stream), daemon=True).start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def admin(self, *args: str) -> str:
        """Run ``thalovant-server admin ARGS --data-dir DIR``; its standard output."""
        done = subprocess.run([*server_command(), "admin", *args, "--data-dir", str(self.data_dir)],
                              check=True, capture_output=True, text=True, env=clean_env())  # fmt: skip
        return done.stdout

    def identity(self, name: str, hub: str = "joke-garden") -> Path:
        """A new client identity of ``hub`` written (0600) into the data directory."""
        path = self.data_dir / f"{name}.json"
        self.admin("client", "create", "--hub", hub, "--name", name, "--out", str(path))
        return path


@contextlib.contextmanager
def our_server(extra_args: Sequence[str] = ()) -> Iterator[OurServer]:
    with tempfile.TemporaryDirectory(prefix="thalovant-bench-") as tmp:
        server = OurServer(Path(tmp), free_port(), list(extra_args))
        server.start()
        try:
            yield server
        finally:
            server.stop()


def public_sdk_ask(
    identity: Path,
    n: int,
    *,
    protocol: str = "wss",
    ca: Path | None = None,
    text: str | None = None,
    expect: str | None = None,
    warmup: int = 20,
    self_signed: bool = False,
    nodelay: bool = False,
) -> dict[str, Any]:
    """The public SDK's timed asks; on failure ``{"errors": n, "first_error": ...}``.

    ``nodelay`` runs the peers' client-side TCP_NODELAY experiment in the SDK's process.
    """
    cmd = [str(sdk097_python()), str(REPO / "peers" / "sdk_ask.py"),
           "--identity", str(identity), "--protocol", protocol, "--n", str(n), "--settle", "0", "--json",
           "--warmup", str(warmup)]  # fmt: skip
    if ca is not None:
        cmd += ["--ca", str(ca)]
    if text is not None:
        cmd += ["--text", text]
    if expect is not None:
        cmd += ["--expect", expect]
    if self_signed:
        cmd.append("--self-signed")
    if nodelay:
        cmd.append("--nodelay")
    return _json_from(cmd, n)


def public_sdk_split(identity: Path, n: int, *, ca: Path | None = None, text: str | None = None,
                     warmup: int = 20) -> dict[str, Any]:  # fmt: skip
    """``bench/mqtt_split.py`` in the public SDK's venv: its asks split into wire and client time."""
    cmd = [str(sdk097_python()), str(REPO / "bench" / "mqtt_split.py"), "--identity", str(identity),
           "--n", str(n), "--warmup", str(warmup), "--json"]  # fmt: skip
    if ca is not None:
        cmd += ["--ca", str(ca)]
    if text is not None:
        cmd += ["--text", text]
    return _json_from(cmd, n)


def _json_from(cmd: list[str], n: int) -> dict[str, Any]:
    """The last JSON line ``cmd`` prints (run with the peers' folder); ``{"errors": n, ...}`` if none."""
    env = clean_env()
    env["THALOVANT_PEERS"] = str(peers_dir())
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    return {"errors": n, "first_error": (done.stdout + done.stderr)[-500:]}


_HM5_STATE: list[Path] = []


@contextlib.contextmanager
def hm5_running(*, nodelay: bool = False) -> Iterator[HM5Stack]:
    """hivemind-core for the ``with`` block; every stack of this process shares one state folder
    (one client identity, which the hub keeps pinned across the shipped and nodelay runs)."""
    if not _HM5_STATE:
        peers_dir().mkdir(parents=True, exist_ok=True)
        _HM5_STATE.append(Path(tempfile.mkdtemp(prefix="bench-hm5-", dir=peers_dir())))
    with HM5Stack(_HM5_STATE[0], nodelay=nodelay) as stack:
        yield stack


async def our_sdk_ask(
    identity_file: Path,
    n: int,
    *,
    protocol: str,
    text: str = "Tell me a joke.",
    warmup: int = 20,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Our SDK: connect (timed), then ``warmup + n`` sequential asks (settle 0), ``n`` of them timed.

    With ``server_pid``, also the server's CPU time (user and system, all threads) per timed ask.
    The caller sets the trust variables; ``src`` of this checkout must be importable.
    """
    sys.path.insert(0, str(REPO / "src"))
    from thalovant import ThalovantIdentity
    from thalovant.client import AsyncThalovantClient

    identity = ThalovantIdentity.from_file(identity_file)
    client = AsyncThalovantClient(identity, protocol=protocol, reply_settle_seconds=0)
    started = time.perf_counter()
    await client.connect()
    connect_ms = (time.perf_counter() - started) * 1000
    pattern = client.connection_info().noise_pattern
    times: list[float] = []
    errors = 0
    first_error: str | None = None
    server_cpu: float | None = None
    try:
        for i in range(warmup + n):
            if i == warmup and server_pid is not None:
                server_cpu = cpu_seconds(server_pid)
            t0 = time.perf_counter()
            try:
                await client.ask(text.format(i=i), timeout=10)
            except Exception as exc:
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
                continue
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
        if server_cpu is not None and server_pid is not None:
            server_cpu = cpu_seconds(server_pid) - server_cpu
    finally:
        await client.close()
    per_ask = round(server_cpu / n * 1e6, 1) if server_cpu is not None and n else None
    return {
        "sdk": "ours", "protocol": protocol, "connect_ms": round(connect_ms, 2), "noise_pattern": pattern,
        "server_cpu_us_per_ask": per_ask,
        "ok": len(times), "errors": errors, "first_error": first_error,
        "median_ms": round(statistics.median(times), 3) if times else None,
        "p99_ms": round(p99, 3) if (p99 := percentile(times, 99)) is not None else None,
    }  # fmt: skip
