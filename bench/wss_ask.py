#!/usr/bin/env python3
"""WSS ask latency against hivemind-core, throughput with 50 sessions, memory per idle session.

    .venv/bin/python bench/wss_ask.py [--n 300] [--sessions 50] [--duration 5] [--idle 200] [--json]

One invocation:

1. our hub: ``thalovant-server serve --demo`` on a free 127.0.0.1 port in a temporary data
   directory; the public SDK 0.9.7 (``peers/sdk_ask.py --json``, settle 0) asks it N
   times over WSS;
2. hivemind-core 5.3.10a1 as shipped (``peers.hm5``), then with TCP_NODELAY
   forced in its processes: the same client, the same N asks;
3. a load generator built on our engine (``ClientNegotiation`` + the ``websockets`` client):
   ``--sessions`` concurrent sessions asking as fast as answers come back, for ``--duration``
   seconds: asks/s, latency, errors;
4. ``--idle`` idle sessions held open: the server's resident memory growth per session.

Goals printed beside the results: our median <= 1/10 of hivemind-core as shipped and <= 1/2
with nodelay; >= 2,000 asks/s with 50 sessions and no error; <= 100 KiB per idle session.
The peers' venvs are built first (``python -m peers setup``, idempotent).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import secrets
import ssl
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness import (
    REPO,
    hm5_running,
    latency_columns,
    our_server,
    percentile,
    public_sdk_ask,
    ratio,
    setup_peers,
)

sys.path.insert(0, str(REPO / "src"))

import psutil
import websockets

from thalovant.protocol.envelope import HiveMessage
from thalovant.protocol.negotiation import ClientNegotiation
from thalovant.protocol.noise import KeyPair
from thalovant.protocol.psk import derive_psk

# -- load generator on our engine ------------------------------------------------------------


class EngineSession:
    """One client session driven by ``ClientNegotiation`` over the ``websockets`` client."""

    def __init__(self, url: str, identity: dict[str, Any], static: KeyPair, psks: dict[str, bytes],
                 context: ssl.SSLContext) -> None:  # fmt: skip
        self.url, self.identity, self.static, self.psks, self.ssl = url, identity, static, psks, context
        self.ws: Any = None
        self.negotiation: ClientNegotiation | None = None

    async def open(self) -> None:
        token = base64.b64encode(f"bench/1:{self.identity['access_key']}".encode()).decode()
        self.ws = await websockets.connect(f"{self.url}?authorization={quote(token, safe='')}", ssl=self.ssl,
                                           max_size=None, compression=None)  # fmt: skip
        self.negotiation = neg = ClientNegotiation(
            static=self.static, site_id="bench", session_id=f"bench-{secrets.token_hex(8)}", hub_pin=None
        )
        while not neg.complete:
            message = await self.ws.recv()
            out = neg.receive_text(message)
            if neg.needs_psk:
                assert neg.node_id is not None
                if neg.node_id not in self.psks:
                    self.psks[neg.node_id] = await asyncio.to_thread(
                        derive_psk, str(self.identity["password"]), neg.node_id
                    )
                await self.ws.send(neg.start(self.psks[neg.node_id]))
            for item in out:
                await self.ws.send(item)
        await self.envelope()  # the hub's HELLO

    async def envelope(self) -> dict[str, Any]:
        assert self.negotiation is not None
        while True:
            frame = self.negotiation.channel.open(await self.ws.recv())
            if frame is not None:
                result: dict[str, Any] = json.loads(frame.body)
                return result

    async def ask(self, text: str) -> None:
        assert self.negotiation is not None
        request_id = secrets.token_hex(8)
        body = HiveMessage.bus("recognizer_loop:utterance", {"utterances": [text], "lang": "en-us"},
                               {"request_id": request_id, "source": "bench", "destination": "HiveMind"})  # fmt: skip
        for message in self.negotiation.channel.seal_json(body.to_bytes()):
            await self.ws.send(message)
        spoke = False
        while True:
            payload = (await self.envelope()).get("payload") or {}
            if (payload.get("context") or {}).get("request_id") != request_id:
                continue
            spoke = spoke or payload.get("type") == "speak"
            if payload.get("type") == "ovos.utterance.handled":
                if not spoke:
                    raise RuntimeError("handled without speak")
                return


async def load_test(
    url: str, identity: dict[str, Any], ca: Path, static: KeyPair, sessions: int, duration: float
) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(ca))
    psks: dict[str, bytes] = {}
    first = EngineSession(url, identity, static, psks, context)
    await first.open()  # pins the key and derives the PSK once
    pool = [first] + [EngineSession(url, identity, static, psks, context) for _ in range(sessions - 1)]
    await asyncio.gather(*(s.open() for s in pool[1:]))
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def worker(session: EngineSession) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                await session.ask("What can this hub do?")
            except Exception:
                errors += 1
                return
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker(s) for s in pool))
    elapsed = time.perf_counter() - began
    for session in pool:
        with contextlib.suppress(Exception):
            await session.ws.close()
    return {
        "sessions": sessions, "asks": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
        "asks_per_s": round(len(latencies) / elapsed, 1),
        "median_ms": round(statistics.median(latencies), 3) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 3) if latencies else None,
    }  # fmt: skip


async def idle_memory(
    url: str, identity: dict[str, Any], ca: Path, static: KeyPair, pid: int, count: int
) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(ca))
    psks: dict[str, bytes] = {}
    warm = EngineSession(url, identity, static, psks, context)
    await warm.open()
    process = psutil.Process(pid)
    gc.collect()
    await asyncio.sleep(1.0)
    before = process.memory_info().rss
    pool = [EngineSession(url, identity, static, psks, context) for _ in range(count)]
    for start in range(0, count, 25):
        await asyncio.gather(*(s.open() for s in pool[start : start + 25]))
    await asyncio.sleep(1.0)
    after = process.memory_info().rss
    for session in [warm, *pool]:
        with contextlib.suppress(Exception):
            await session.ws.close()
    return {"sessions": count, "rss_before_kib": before // 1024, "rss_after_kib": after // 1024,
            "kib_per_session": round((after - before) / 1024 / count, 1)}  # fmt: skip


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="public SDK asks per hub (default 300)")
    ap.add_argument("--sessions", type=int, default=50, help="concurrent load sessions (default 50)")
    ap.add_argument("--duration", type=float, default=5.0, help="load test seconds (default 5)")
    ap.add_argument("--idle", type=int, default=200, help="idle sessions for the memory probe (default 200)")
    ap.add_argument("--skip-peers", action="store_true", help="do not run hivemind-core")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    setup_peers()
    results: dict[str, Any] = {}
    with our_server() as server:
        sdk_identity = server.identity("bench-sdk")
        results["ours"] = public_sdk_ask(sdk_identity, args.n, ca=server.ca_file, text="Tell me a short clean joke.",
                                         expect="")  # fmt: skip
        load_identity = json.loads(server.identity("bench-load").read_text())
        url = str(load_identity["data_plane_endpoints"]["wss"])
        static = KeyPair.generate()  # one client key: the hub pins it on the first session
        results["load"] = asyncio.run(
            load_test(url, load_identity, server.ca_file, static, args.sessions, args.duration)
        )
        assert server.process is not None
        results["idle"] = asyncio.run(
            idle_memory(url, load_identity, server.ca_file, static, server.pid, args.idle)
        )
    if not args.skip_peers:
        for label, nodelay in (("hm5", False), ("hm5_nodelay", True)):
            with hm5_running(nodelay=nodelay) as stack:
                results[label] = public_sdk_ask(stack.identity_file(), args.n)

    ours = results["ours"].get("median_ms")
    ratios = {}
    for label in ("hm5", "hm5_nodelay"):
        if (value := ratio(ours, results.get(label, {}).get("median_ms"))) is not None:
            ratios[label] = value
    results["ratios"] = ratios
    if args.json:
        print(json.dumps(results))
        return
    print("WSS ask latency, public SDK 0.9.7 (settle 0), sequential asks")
    print(f"{'hub':<28}{'median ms':>12}{'p99 ms':>12}{'errors':>8}{'pattern':>10}")
    for label, title in (
        ("ours", "ours"),
        ("hm5", "hivemind-core (shipped)"),
        ("hm5_nodelay", "hivemind-core nodelay"),
    ):
        row = results.get(label)
        if row:
            print(f"{title:<28}{latency_columns(row)}")
    for label, goal in (("hm5", 0.1), ("hm5_nodelay", 0.5)):
        if label in ratios:
            verdict = "ok" if ratios[label] <= goal else "MISSED"
            print(f"ratio ours/{label}: {ratios[label]:.4f} (goal <= {goal}) {verdict}")
    load = results["load"]
    verdict = "ok" if load["asks_per_s"] >= 2000 and load["errors"] == 0 else "MISSED"
    print(f"load: {load['sessions']} sessions, {load['asks']} asks in {load['seconds']} s = "
          f"{load['asks_per_s']} asks/s, median {load['median_ms']} ms, p99 {load['p99_ms']} ms, "
          f"errors {load['errors']} "
          f"(goal >= 2000 asks/s, 0 errors) {verdict}")  # fmt: skip
    idle = results["idle"]
    verdict = "ok" if idle["kib_per_session"] <= 100 else "MISSED"
    print(f"idle: {idle['sessions']} sessions, RSS {idle['rss_before_kib']} -> {idle['rss_after_kib']} KiB, "
          f"{idle['kib_per_session']} KiB/session (goal <= 100) {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
