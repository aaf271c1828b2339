"""The reliability suite: how the platform holds under restarts, idle connections and abuse.

    .venv/bin/python bench/reliability.py                 # everything, the goals' sizes
    .venv/bin/python bench/reliability.py --quick         # smaller numbers, for a smoke run
    .venv/bin/python bench/reliability.py --only restart,silent

Scenarios (each starts its own ``serve`` on a fresh data directory, 127.0.0.1, free ports):

- ``restart``: N WSS sessions (default 1,000, over 50 identities) ask in a loop; the server is
  stopped (SIGTERM) and started again. Printed: clients back (goal N/N), how long after the
  server was ready each came back (goal: all within 3 s), and the asks made after the restart
  began that failed (goal 0). The sessions run in ``--client-processes`` processes (identities
  split between them) so one process's CPU does not cap the clients; printed too is the CPU the
  server and the clients used from ready until all were back, which says which side was busy;
- ``paced``: the same, but each session pauses between its asks (uniformly 0-2 s, so one ask a
  second on average: 1,000 asks a second in all, about half of what this machine serves), so
  the herd of reconnects is not competing with a saturating load;
- ``race``: 200 clients send as fast as they can while the server restarts (the calls race the
  drop); printed: clients back (goal 200/200);
- ``herd``: what one reconnect costs: N sessions (default 1,000, each identity's Noise keys
  already pinned, so every one is a KK handshake as after a restart) connect at once from this
  process to an idle server; printed: the server's and this process's CPU per session, and
  the CPU the whole herd needs against the cores there are (the floor under ``restart``);
- ``silent``: 1,000 TLS connections that never send a request; printed: how many the server
  closed and how fast (goal: all within 10 s), and an honest client's ask p99 without and with
  them (goal: unchanged), both timed on the same warmed-up connection in the same process;
- ``mqtt64``: a 64 MB MQTT publish to the embedded broker; printed: refused or not, the
  server's RSS before, at the peak and after (goal: refused, RSS back);
- ``crash``: ``kill -9`` of the server while identities are being created, 5 times, on SQLite
  and on PostgreSQL (when installed); printed: the database's integrity check, and how many of
  the identities answered 201 work after the restart (goal: all).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import sqlite3
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

import psutil  # noqa: E402
from tests.fixtures.identities import new_identity, trusting  # noqa: E402
from tests.fixtures.server import RunningServer, new_server  # noqa: E402

from harness import Placement, cpu_seconds  # noqa: E402
from thalovant.client import AsyncThalovantClient  # noqa: E402
from thalovant.identity import ThalovantIdentity  # noqa: E402

JOKE = "Tell me a short clean joke."


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f} ms"


@contextlib.contextmanager
def running(folder: Path, **options: Any) -> Iterator[RunningServer]:
    server = new_server(folder, **options)
    server.start()
    try:
        with trusting(server):
            yield server
    finally:
        server.stop()


def identities(server: RunningServer, count: int, prefix: str, protocol: str = "wss") -> list[ThalovantIdentity]:
    return [new_identity(server, f"{prefix}-{n}", protocol) for n in range(count)]


# ---------------------------------------------------------------------------------- restart


@dataclass
class Session:
    client: AsyncThalovantClient
    back_at: float | None = None
    asks: list[tuple[float, float, str | None]] = field(default_factory=list)  # (started, ended, error)


async def _connect_all(sessions: list[Session], width: int = 50) -> None:
    gate = asyncio.Semaphore(width)

    async def one(session: Session) -> None:
        async with gate:
            await session.client.connect()

    await asyncio.gather(*(one(s) for s in sessions))


PACED_MEAN_PAUSE = 1.0
"""Mean pause (seconds) between one session's asks in the ``paced`` scenario."""


async def _ask_loop(session: Session, stop: asyncio.Event, mean_pause: float = 0.0) -> None:
    while not stop.is_set():
        started = time.monotonic()
        error: str | None = None
        try:
            await session.client.ask(JOKE, timeout=60)
        except Exception as exc:  # recorded, the loop goes on
            error = f"{type(exc).__name__}: {exc}"[:160]
        session.asks.append((started, time.monotonic(), error))
        if mean_pause > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), random.uniform(0, 2 * mean_pause))


async def _paced_loop(session: Session, stop: asyncio.Event) -> None:
    await _ask_loop(session, stop, PACED_MEAN_PAUSE)


RESTART_MODES = {
    "ask": ("restart", "WSS sessions asking back to back"),
    "paced": ("paced", f"WSS sessions asking with a pause of 0-{2 * PACED_MEAN_PAUSE:g} s between asks"),
    "race": ("race", "clients sending as fast as they can"),
}
"""The workloads of the restart scenarios: mode -> (scenario name, what its sessions do)."""


async def _send_loop(session: Session, stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            await session.client.send_utterance(JOKE)
            session.asks.append((started, time.monotonic(), None))
        except Exception as exc:
            session.asks.append((started, time.monotonic(), f"{type(exc).__name__}: {exc}"[:160]))


WATCH_INTERVAL = 0.1


async def _watch_back(sessions: list[Session], stop: asyncio.Event) -> None:
    """Stamp each session's ``back_at`` once it is connected again after a reconnect: the time
    its link came up (``connection_info().connected_at``, on this process's monotonic clock),
    not the time this loop, which takes its turn with every session's asks, saw it. It looks
    every :data:`WATCH_INTERVAL` seconds: the stamps do not depend on it, and looking costs
    the client process the CPU its sessions reconnect with."""
    waiting = list(sessions)
    while waiting and not stop.is_set():
        await asyncio.sleep(WATCH_INTERVAL)
        for session in [s for s in waiting if s.client.connected]:
            info = session.client.connection_info()
            if info.reconnects and info.connected_at is not None:
                session.back_at = _monotonic_of(info.connected_at)
                waiting.remove(session)


def _monotonic_of(utc_iso: str) -> float:
    """``time.monotonic()`` at the moment ``utc_iso`` (``...T..:..:..ffffffZ``) of the wall clock."""
    wall = datetime.strptime(utc_iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    return time.monotonic() - (time.time() - wall)


async def _line(reader: asyncio.StreamReader) -> str:
    return (await reader.readline()).decode().strip()


async def restart_worker(idents: list[ThalovantIdentity], numbers: list[int], noise: Path, mode: str) -> None:
    """One client process of the restart scenario, driven over stdin/stdout by the parent:
    connect sessions ``numbers`` (session n uses identity n % len(idents)), print ``connected``;
    on ``go`` run the loops, print ``back`` once every session reconnected; on ``finish
    <restart began>`` let asks in flight settle 3 s, stop, and print the results as JSON
    (times are ``time.monotonic()``, the same clock in every process of the machine)."""
    failures: dict[str, int] = {}

    class CountFailures(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("Reconnect failed"):
                reason = message.partition("(")[2][:70]
                failures[reason] = failures.get(reason, 0) + 1

    client_log = logging.getLogger("thalovant.client")
    client_log.setLevel(logging.INFO)
    client_log.addHandler(CountFailures())
    client_log.propagate = False
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sessions = [
        Session(
            AsyncThalovantClient(
                idents[n % len(idents)],
                protocol="wss",
                noise_state_dir=noise / f"id-{n % len(idents)}",
                reply_settle_seconds=0,
                send_timeout=60,
            )
        )
        for n in numbers
    ]
    # first contact per identity (XX) one at a time, then everyone (KK)
    firsts = {n % len(idents): s for n, s in zip(numbers, sessions, strict=True)}
    await _connect_all(list(firsts.values()), width=4)
    await _connect_all([s for s in sessions if not s.client.connected])
    print("connected", flush=True)
    assert await _line(reader) == "go"
    stop, watcher_stop = asyncio.Event(), asyncio.Event()
    loop_of = {"race": _send_loop, "ask": _ask_loop, "paced": _paced_loop}[mode]
    loops = [asyncio.create_task(loop_of(s, stop)) for s in sessions]

    async def watch() -> None:
        await _watch_back(sessions, watcher_stop)
        print("back", flush=True)

    watcher = asyncio.create_task(watch())
    command, _, began = (await _line(reader)).partition(" ")
    assert command == "finish"
    restart_began = float(began)
    watcher_stop.set()
    await watcher
    await asyncio.sleep(3)  # asks in flight at the end settle
    stop.set()
    await asyncio.gather(*loops, return_exceptions=True)
    await asyncio.gather(*(s.client.close() for s in sessions), return_exceptions=True)
    after = [a for s in sessions for a in s.asks if a[0] >= restart_began]
    result = {
        "back_at": [s.back_at for s in sessions if s.back_at is not None],
        "calls_after_restart": len(after),
        "lost": [error for _s, _e, error in after if error is not None],
        "reconnect_failures": failures,
    }
    print(json.dumps(result), flush=True)


def _merged(counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, n in count.items():
            total[key] = total.get(key, 0) + n
    return total


def _cpu_seconds(pids: list[int]) -> float:
    """CPU time the processes ``pids`` used so far (one that is gone counts nothing)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


async def _py_spy(pid: int, out: Path) -> asyncio.subprocess.Process:
    """py-spy of ``pid`` for 8 s from now, collapsed stacks to ``out``."""
    return await asyncio.create_subprocess_exec(
        shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy",
        "record", "--pid", str(pid), "--duration", "8", "--rate", "200", "--format", "raw", "--nonblocking",
        "-o", str(out), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def restart_scenario(
    server: RunningServer,
    idents: list[ThalovantIdentity],
    sessions_count: int,
    folder: Path,
    *,
    mode: str,
    processes: int,
    profile: Path | None,
    placement: Placement | None,
    profile_clients: Path | None = None,
) -> dict[str, Any]:
    """Run the sessions in ``processes`` client processes (identities split between them), restart
    the server, and gather what the workers saw; also the CPU each side used while they came back."""
    folder.mkdir(parents=True, exist_ok=True)
    idents_file = folder / "identities.json"
    idents_file.write_text(json.dumps([i.as_dict(include_secrets=True) for i in idents]))
    workers = []
    for w in range(processes):
        numbers = [n for n in range(sessions_count) if (n % len(idents)) % processes == w]
        workers.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--worker",
                str(idents_file),
                ",".join(map(str, numbers)),
                str(folder / "noise"),
                mode,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 24,
            )
        )

    if placement is not None:
        assert server.process is not None
        placement.pin_server(server.process.pid)
        for worker in workers:
            placement.pin_client(worker.pid)

    async def said(process: asyncio.subprocess.Process, expected: str | None) -> str:
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode().strip()
        if expected is not None and line != expected:
            raise RuntimeError(f"a client process said {line[:200]!r}, expected {expected!r}")
        return line

    def tell(text: str) -> None:
        for process in workers:
            assert process.stdin is not None
            process.stdin.write(text.encode() + b"\n")

    await asyncio.gather(*(said(p, "connected") for p in workers))
    tell("go")
    await asyncio.sleep(2)  # every session busy
    restart_began = time.monotonic()
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.start)
    ready_at = time.monotonic()
    assert server.process is not None
    if placement is not None:
        placement.pin_server(server.process.pid)
    pids = [server.process.pid], [p.pid for p in workers]
    cpu_at_ready = _cpu_seconds(pids[0]), _cpu_seconds(pids[1])
    spies = []
    if profile is not None:
        spies.append(await _py_spy(server.process.pid, profile))
    if profile_clients is not None:
        spies.append(await _py_spy(workers[0].pid, profile_clients))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(said(p, "back") for p in workers)), 120)
    all_back_at = time.monotonic()
    cpu_back = _cpu_seconds(pids[0]) - cpu_at_ready[0], _cpu_seconds(pids[1]) - cpu_at_ready[1]
    tell(f"finish {restart_began}")
    results = []
    for process in workers:
        line = await said(process, None)
        if line == "back":
            line = await said(process, None)
        results.append(json.loads(line))
        await process.wait()
    for spy in spies:
        await spy.wait()

    delays = [at - ready_at for r in results for at in r["back_at"]]
    lost = [error for r in results for error in r["lost"]]
    reasons: dict[str, int] = {}
    for error in lost:
        key = error.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "sessions": sessions_count,
        "back": len(delays),
        "within_3s": sum(1 for d in delays if d <= 3.0),
        "delay_p50": percentile(delays, 50),
        "delay_p99": percentile(delays, 99),
        "delay_max": max(delays) if delays else None,
        "down_s": ready_at - restart_began,
        "calls_after_restart": sum(r["calls_after_restart"] for r in results),
        "lost": len(lost),
        "lost_reasons": reasons,
        "reconnect_failures": _merged([r["reconnect_failures"] for r in results]),
        "window_s": all_back_at - ready_at,
        "cpu_server_s": cpu_back[0],
        "cpu_clients_s": cpu_back[1],
    }


def run_restart(folder: Path, sessions: int, idents_count: int, *, mode: str, processes: int,
                profile: Path | None, placement: Placement | None,
                profile_clients: Path | None = None) -> None:  # fmt: skip
    """``mode``: a key of :data:`RESTART_MODES`."""
    name, what = RESTART_MODES[mode]
    with running(folder / name) as server:
        idents = identities(server, idents_count, name)
        result = asyncio.run(
            restart_scenario(
                server,
                idents,
                sessions,
                folder / f"{name}-clients",
                mode=mode,
                processes=processes,
                profile=profile,
                placement=placement,
                profile_clients=profile_clients,
            )
        )
    print(f"\n== {name}: {sessions} {what} in {processes} client processes, server restarted "
          f"(down {result['down_s']:.1f} s)")  # fmt: skip
    print(f"placement: {placement or 'left to the scheduler'}")
    print(f"clients back: {result['back']}/{sessions}   (goal {sessions}/{sessions})")
    print(
        f"back after the server was ready: p50 {fmt_s(result['delay_p50'])}, p99 {fmt_s(result['delay_p99'])}, "
        f"max {fmt_s(result['delay_max'])}; within 3 s: {result['within_3s']}/{sessions}"
    )
    calls = "sends" if mode == "race" else "asks"
    print(f"{calls} made after the restart began: {result['calls_after_restart']}, lost: {result['lost']}  (goal 0)")
    if result["lost_reasons"]:
        print(f"  lost because: {result['lost_reasons']}")
    failures = sorted(result["reconnect_failures"].items(), key=lambda item: -item[1])
    print(f"failed reconnect attempts: {sum(n for _r, n in failures)}")
    for reason, n in failures[:6]:
        print(f"  {n:6d}  {reason}")
    window = result["window_s"]
    print(
        f"CPU from ready until all back ({window:.1f} s): server {result['cpu_server_s']:.1f} s "
        f"({result['cpu_server_s'] / window:.0%} of a core), clients {result['cpu_clients_s']:.1f} s "
        f"({result['cpu_clients_s'] / window:.0%}); load average {os.getloadavg()[0]:.2f}"
    )


async def _herd(server: RunningServer, idents: list[ThalovantIdentity], count: int, noise: Path) -> dict[str, float]:
    """Pin every identity (one XX each), then open ``count`` KK sessions at once; CPU per session."""

    def client(n: int) -> AsyncThalovantClient:
        return AsyncThalovantClient(
            idents[n % len(idents)], protocol="wss", noise_state_dir=noise / f"id-{n % len(idents)}"
        )

    first = [client(n) for n in range(len(idents))]
    await _connect_all([Session(c) for c in first], width=4)
    await asyncio.gather(*(c.close() for c in first))
    herd = [client(n) for n in range(count)]
    assert server.process is not None
    server_before, own_before, started = cpu_seconds(server.process.pid), time.process_time(), time.monotonic()
    await asyncio.gather(*(c.connect() for c in herd))
    server_cpu, own_cpu = cpu_seconds(server.process.pid) - server_before, time.process_time() - own_before
    elapsed = time.monotonic() - started
    kk = sum(1 for c in herd if c.connection_info().noise_pattern == "KKpsk0")
    await asyncio.gather(*(c.close() for c in herd))
    return {"elapsed": elapsed, "server": server_cpu / count, "client": own_cpu / count, "kk": kk}


def run_herd(folder: Path, count: int, idents_count: int) -> None:
    with running(folder / "herd") as server:
        idents = identities(server, idents_count, "herd")
        result = asyncio.run(_herd(server, idents, count, folder / "herd-noise"))
    per_session = result["server"] + result["client"]
    cores = os.cpu_count() or 1
    print(f"\n== herd: {count} WSS sessions connecting at once ({result['kk']:.0f} of them KK)")
    print(
        f"all connected in {result['elapsed']:.2f} s; CPU per session: server {result['server'] * 1000:.2f} ms, "
        f"client (our Python SDK) {result['client'] * 1000:.2f} ms"
    )
    print(
        f"the herd needs {per_session * count:.1f} s of CPU: at least {per_session * count / cores:.1f} s "
        f"on {cores} cores with nothing else running; load average {os.getloadavg()[0]:.2f}"
    )


# ---------------------------------------------------------------------------------- silent


SILENT_OPENER = """
import asyncio, json, ssl, sys, time
port, count, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
async def main():
    context = ssl.create_default_context(cafile=ca)
    gate = asyncio.Semaphore(100)
    opened = 0
    async def one():
        nonlocal opened
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        start = time.monotonic()
        opened += 1
        if opened == count:
            print("opened", flush=True)
        try:
            async with asyncio.timeout(60):
                while await reader.read(1024):
                    pass
        except TimeoutError:
            return None
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()
        return time.monotonic() - start
    print(json.dumps(await asyncio.gather(*(one() for _ in range(count)))), flush=True)
asyncio.run(main())
"""


async def _silent_connections(server: RunningServer, count: int, opened: asyncio.Event) -> list[float | None]:
    """In a process of its own: open ``count`` TLS connections that send nothing; how long each
    lived (None: still open at 60 s). ``opened`` is set once they are all open."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SILENT_OPENER, str(server.port), str(count), str(server.ca_file),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    lives: list[float | None] = []
    async for line in process.stdout:
        if line.strip() == b"opened":
            opened.set()
        else:
            lives = json.loads(line)
    await process.wait()
    opened.set()
    return lives


async def _timed_asks(client: AsyncThalovantClient, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await client.ask(JOKE, timeout=30)
        times.append(time.perf_counter() - started)
    return times


async def _silent_scenario(server: RunningServer, identity: ThalovantIdentity, noise: Path, count: int,
                           asks: int) -> tuple[list[float | None], list[float], list[float]]:  # fmt: skip
    """One honest client, connected and warmed up, times ``asks`` asks alone, then as many with
    ``count`` silent connections open; both runs in the same process, on the same connection."""
    client = AsyncThalovantClient(identity, protocol="wss", noise_state_dir=noise, reply_settle_seconds=0)
    await client.connect()
    try:
        await _timed_asks(client, asks // 4)  # warm-up: first asks load the hub's skills, caches
        alone = await _timed_asks(client, asks)
        opened = asyncio.Event()
        silent = asyncio.create_task(_silent_connections(server, count, opened))
        await opened.wait()  # all open (and idle) now: the honest client asks beside them
        during = await _timed_asks(client, asks)
        return await silent, alone, during
    finally:
        await client.close()


def run_silent(folder: Path, count: int) -> None:
    with running(folder / "silent") as server:
        [identity] = identities(server, 1, "honest")
        lives, baseline, during = asyncio.run(_silent_scenario(server, identity, folder / "silent-noise", count, 200))
    closed = [life for life in lives if life is not None]
    print(f"\n== silent: {count} TLS connections that never send a request")
    print(
        f"closed by the server: {len(closed)}/{count}, within 10 s: {sum(1 for c in closed if c <= 10)}/{count}  "
        f"(goal {count}/{count}); lifetime p50 {fmt_s(percentile(closed, 50))}, max {fmt_s(max(closed, default=None))}"
    )
    b99, d99 = percentile(baseline, 99), percentile(during, 99)
    ratio = f"{d99 / b99:.2f}x" if b99 and d99 else "-"
    print(
        f"an honest client's ask p99 (same connection, warmed up): alone {fmt_ms(b99)}, with them {fmt_ms(d99)} "
        f"({ratio}; goal about 1x); load average {os.getloadavg()[0]:.2f}"
    )


# ---------------------------------------------------------------------------------- mqtt64


def _rss(pid: int) -> int:
    process = psutil.Process(pid)
    return int(process.memory_info().rss) + sum(int(c.memory_info().rss) for c in process.children(recursive=True))


def run_mqtt64(folder: Path) -> None:
    from tests.fixtures.mqtt_packets import remaining_length, utf8
    from tests.server.test_mqtt_limits import logged_in

    with running(folder / "mqtt64") as server:
        [identity] = identities(server, 1, "mqtt64", "mqtt")
        assert server.process is not None and identity.mqtt is not None
        pid = server.process.pid
        before = _rss(pid)
        peak = before
        sampling = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not sampling.is_set():
                peak = max(peak, _rss(pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        async def publish() -> tuple[int, bool]:
            _reader, writer = await logged_in(server, identity)
            assert identity.mqtt is not None
            topic = utf8(f"{identity.mqtt.topic_prefix}/in")
            size = 64 * 1024 * 1024
            writer.write(bytes([0x30]) + remaining_length(len(topic) + size) + topic)
            chunk, sent = b"\0" * (1 << 20), 0
            with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(60):
                    while sent < size:
                        if writer.transport.is_closing():
                            break
                        writer.write(chunk)
                        await writer.drain()
                        await asyncio.sleep(0)  # let the loop see a closed connection
                        sent += len(chunk)
            writer.transport.abort()
            return sent, sent < size

        sent, refused = asyncio.run(publish())
        time.sleep(3)
        sampling.set()
        sampler.join()
        after = _rss(pid)
    mb = 1024 * 1024
    print("\n== mqtt64: one 64 MB MQTT publish to the embedded broker")
    print(f"refused: {'yes' if refused else 'NO'} (the client got {sent / mb:.0f} MB out before the broker closed)")
    print(f"server RSS: before {before / mb:.0f} MB, peak {peak / mb:.0f} MB, 3 s after {after / mb:.0f} MB")


# ---------------------------------------------------------------------------------- crash


def _create_identities_until_killed(server: RunningServer, rounds: int) -> list[ThalovantIdentity]:
    """Create identities in a thread while ``server`` is killed with SIGKILL; the ones answered 201."""
    created: list[ThalovantIdentity] = []
    stop = threading.Event()

    def keep_creating() -> None:
        n = 0
        while not stop.is_set():
            with contextlib.suppress(Exception):
                created.append(new_identity(server, f"crash-{rounds}-{n}"))
            n += 1

    worker = threading.Thread(target=keep_creating, daemon=True)
    worker.start()
    time.sleep(3)
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    stop.set()
    worker.join(timeout=60)
    return created


async def _all_work(idents: list[ThalovantIdentity], noise: Path) -> int:
    async def works(n: int, identity: ThalovantIdentity) -> bool:
        client = AsyncThalovantClient(identity, protocol="wss", noise_state_dir=noise / str(n), auto_reconnect=False)
        try:
            await client.connect()
            return (await client.ask(JOKE, timeout=30)).text != ""
        except Exception:
            return False
        finally:
            await client.close()

    gate = asyncio.Semaphore(4)

    async def limited(n: int, identity: ThalovantIdentity) -> bool:
        async with gate:
            return await works(n, identity)

    return sum(await asyncio.gather(*(limited(n, i) for n, i in enumerate(idents))))


def _integrity(server: RunningServer, database_url: str | None) -> str:
    if database_url is None:
        with contextlib.closing(sqlite3.connect(server.data_dir / "thalovant.db")) as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    return "ok"  # PostgreSQL: the server restarted on it and answered every query


def run_crash(folder: Path, rounds: int) -> None:
    from tests.fixtures.postgres import start_postgres

    def one(kind: str, database_url: str | None) -> None:
        extra = ["--database-url", database_url] if database_url else []
        server = new_server(folder / f"crash-{kind}", extra)
        answered: list[ThalovantIdentity] = []
        checks = []
        try:
            server.start()
            with trusting(server):
                for round_ in range(rounds):
                    answered += _create_identities_until_killed(server, round_)
                    server.stop()
                    checks.append(_integrity(server, database_url))
                    server.start()
                working = asyncio.run(_all_work(answered, folder / f"crash-{kind}-noise"))
        finally:
            server.stop()
        print(f"{kind}: integrity after each kill: {' '.join(checks)}; identities answered 201: {len(answered)}, "
              f"working after restart: {working}/{len(answered)}  (goal all)")  # fmt: skip

    print(f"\n== crash: kill -9 while identities are created, {rounds} times")
    one("sqlite", None)
    try:
        postgres = start_postgres()
        server_info = next(postgres)
    except Exception as exc:
        print(f"postgresql: not run ({type(exc).__name__}: {exc})")
        return
    try:
        one("postgresql", server_info.url(server_info.create_database()))
    finally:
        with contextlib.suppress(StopIteration):
            next(postgres)


# ---------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="restart,paced,race,herd,silent,mqtt64,crash",
                        help="comma-separated scenarios")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="smaller sizes (100 sessions, 50 racers, 200 silent)")
    parser.add_argument("--client-processes", type=int, default=2, metavar="N",
                        help="client processes of restart and race (default 2)")  # fmt: skip
    parser.add_argument("--profile-server", type=Path, metavar="FILE",
                        help="restart: py-spy the server for 8 s from ready, collapsed stacks to FILE")  # fmt: skip
    parser.add_argument("--profile-clients", type=Path, metavar="FILE",
                        help="restart: py-spy the first client process for 8 s from ready, to FILE")  # fmt: skip
    parser.add_argument(
        "--pin",
        action="store_true",
        help="restart, race: the server on one CPU, the client processes on the others "
        "(default: the scheduler places them; pinned on 2 CPUs the clients saturate one)",
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        idents_file, numbers, noise, mode = args.worker
        idents = [ThalovantIdentity.from_mapping(i) for i in json.loads(Path(idents_file).read_text())]
        logging.basicConfig(level=logging.CRITICAL)
        chosen_numbers = [int(n) for n in numbers.split(",") if n]
        asyncio.run(restart_worker(idents, chosen_numbers, Path(noise), mode))
        return
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("thalovant.client").setLevel(logging.CRITICAL)
    chosen = {name.strip() for name in args.only.split(",") if name.strip()}
    sessions, racers, silent, identity_count = (100, 50, 200, 10) if args.quick else (1000, 200, 1000, 50)
    placement = Placement.split() if args.pin else None
    with tempfile.TemporaryDirectory(prefix="thalovant-reliability-") as root:
        folder = Path(root)
        if "restart" in chosen:
            run_restart(folder, sessions, identity_count, mode="ask", processes=args.client_processes,
                        profile=args.profile_server, placement=placement,
                        profile_clients=args.profile_clients)  # fmt: skip
        if "paced" in chosen:
            run_restart(folder, sessions, identity_count, mode="paced", processes=args.client_processes,
                        profile=None, placement=placement)  # fmt: skip
        if "race" in chosen:
            run_restart(folder, racers, min(identity_count, racers), mode="race", processes=args.client_processes,
                        profile=None, placement=placement)  # fmt: skip
        if "herd" in chosen:
            run_herd(folder, sessions, identity_count)
        if "silent" in chosen:
            run_silent(folder, silent)
        if "mqtt64" in chosen:
            run_mqtt64(folder)
        if "crash" in chosen:
            run_crash(folder, 5)


if __name__ == "__main__":
    main()
