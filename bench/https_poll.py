#!/usr/bin/env python3
"""HTTPS polling carrier: hub CPU with idle polling clients, and ask latency over HTTPS.

    .venv/bin/python bench/https_poll.py [--clients 200] [--rate 20] [--duration 20] [--asks 100] [--json]

One invocation:

1. our hub: ``thalovant-server serve --demo`` on a free 127.0.0.1 port in a temporary data
   directory (``tests/fixtures/server.py``), ``--clients`` identities provisioned through the API;
2. a load generator built on our engine (``ClientNegotiation``) and a minimal HTTP/1.1 client
   (one keep-alive TLS connection per client) completes every handshake, then each client
   polls like an idle SDK: ``GET /get_messages`` then ``GET /get_binary_messages``, every
   ``2/rate`` seconds (``--rate`` requests per second per client, 20 as spec 4.2 describes);
   the hub process's CPU time (user + system, ``psutil``) is sampled over ``--duration`` s;
3. the floor: the same polling against a bare ASGI app (constant answers) under uvicorn and
   TLS, the cost any Python hub on this stack pays before its own code runs;
4. ask latency: our engine over raw HTTP (send, then poll until ``ovos.utterance.handled``:
   the hub's own cost), our SDK (``ThalovantClient(protocol="https")``) and the public SDK
   0.9.7 (``peers/sdk_ask.py --protocol https``), ``--asks`` sequential asks each.

Goal printed beside the result: 200 idle clients at 20 req/s cost the hub well under one core
(< 0.5). The load generator runs on the same machine and competes for the CPU: the requests
per second actually served are printed beside the CPU, and the CPU per request is the figure
that does not depend on that.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402
import psutil  # noqa: E402
from peers.processes import free_port  # noqa: E402
from tests.fixtures.peers import trust_env  # noqa: E402
from tests.fixtures.server import RunningServer, new_server  # noqa: E402

from harness import public_sdk_ask  # noqa: E402
from thalovant.protocol.envelope import BusMessage, HiveMessage  # noqa: E402
from thalovant.protocol.negotiation import ClientNegotiation  # noqa: E402
from thalovant.protocol.noise import KeyPair  # noqa: E402
from thalovant.protocol.psk import derive_psk  # noqa: E402

UA = "https-bench/1.0"
JOKE = "Tell me a short clean joke."


class Connection:
    """One keep-alive HTTP/1.1 connection over TLS: a request at a time, Content-Length bodies."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        self.host, self.port, self.context = host, port, context
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=self.context)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def request(self, method: str, target: str, body: bytes = b"", form: bool = False) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: {UA}\r\n"
        if method == "POST":
            kind = "application/x-www-form-urlencoded" if form else "application/octet-stream"
            head += f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode("ascii") + b"\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Client:
    """One polling client driven by our engine."""

    identity: dict[str, Any]
    connection: Connection
    negotiation: ClientNegotiation | None = None
    static: KeyPair = field(default_factory=KeyPair.generate)

    def target(self, path: str) -> str:
        token = base64.b64encode(f"{UA}:{self.identity['access_key']}".encode()).decode()
        base = f"/hubs/{self.identity['hub_id']}" if self.identity["hub_id"] else "/x"
        return f"{base}{path}?authorization={quote(token, safe='')}"

    async def call(self, method: str, path: str, form: dict[str, str] | None = None) -> dict[str, Any]:
        body = urlencode(form).encode() if form is not None else b""
        status, raw = await self.connection.request(method, self.target(path), body, form is not None)
        if status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {status} {raw[:200]!r}")
        answer: dict[str, Any] = json.loads(raw)
        return answer

    async def send(self, item: str | bytes) -> None:
        if isinstance(item, str):
            await self.call("POST", "/send_message", {"message": item})
        else:
            await self.call("POST", "/send_message", {"message": base64.b64encode(item).decode(), "binary": "1"})

    async def handshake(self, psk: bytes) -> None:
        await self.connection.open()
        await self.call("POST", "/connect")
        neg = self.negotiation = ClientNegotiation(
            static=self.static, site_id="bench", session_id=f"bench-{secrets.token_hex(8)}", hub_pin=None
        )
        while not neg.complete:
            for text in (await self.call("GET", "/get_messages"))["messages"]:
                out = neg.receive_text(text)
                if neg.needs_psk:
                    await self.send(neg.start(psk))
                for item in out:
                    await self.send(item)

    async def poll_once(self) -> list[dict[str, Any]]:
        await self.call("GET", "/get_messages")
        envelopes = []
        for item in (await self.call("GET", "/get_binary_messages"))["b64_messages"]:
            assert self.negotiation is not None
            frame = self.negotiation.channel.open(base64.b64decode(item))
            if frame is not None:
                envelopes.append(json.loads(frame.body))
        return envelopes

    async def ask(self, text: str) -> float:
        """Seconds from the send to ``ovos.utterance.handled``, polling back to back."""
        assert self.negotiation is not None
        request_id = secrets.token_hex(6)
        context = {"request_id": request_id, "source": UA, "destination": "HiveMind"}
        body = HiveMessage.bus("recognizer_loop:utterance", {"utterances": [text], "lang": "en-us"}, context)
        started = time.perf_counter()
        for message in self.negotiation.channel.seal_json(body.to_bytes()):
            await self.send(message)
        while True:
            for envelope in await self.poll_once():
                bus = BusMessage.from_object(envelope.get("payload"))
                if bus.type == "ovos.utterance.handled" and bus.context.get("request_id") == request_id:
                    return time.perf_counter() - started


def provision(server: RunningServer, count: int) -> list[dict[str, Any]]:
    """``count`` identities of the demo hub, through the API (the server derives each PSK once)."""
    with httpx.Client(base_url=server.api_url, verify=str(server.ca_file), timeout=60) as http:
        token = http.post("/v1/auth/token", json={"email": server.demo_email, "password": server.demo_password})
        headers = {"authorization": f"Bearer {token.json()['access_token']}"}
        hub_id = http.get("/v1/public/hubs/joke-garden").json()["id"]
        identities = []
        prefix = secrets.token_hex(3)
        for index in range(count):
            body = {"hub_id": hub_id, "name": f"bench-{prefix}-{index}"}
            created = http.post("/v1/clients", json=body, headers=headers)
            created.raise_for_status()
            identities.append(created.json()["initial_identify"])
        return identities


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def measure_polling(clients: list[Client], pid: int, rate: float, duration: float) -> dict[str, Any]:
    """Every client polls like an idle SDK for ``duration`` s; the CPU process ``pid`` used."""
    served = 0
    errors = 0
    stop = asyncio.Event()

    async def keep_polling(client: Client) -> None:
        nonlocal served, errors
        await asyncio.sleep(secrets.randbelow(1000) / 1000 * 2 / rate)  # spread the clients out
        while not stop.is_set():
            await asyncio.sleep(2 / rate)
            try:
                await client.poll_once()
                served += 2
            except Exception:  # counted and reported
                errors += 1

    tasks = [asyncio.create_task(keep_polling(client)) for client in clients]
    process = psutil.Process(pid)
    await asyncio.sleep(2)  # warm up
    before_cpu, before_served, before = process.cpu_times(), served, time.perf_counter()
    await asyncio.sleep(duration)
    after_cpu, after_served, after = process.cpu_times(), served, time.perf_counter()
    stop.set()
    await asyncio.gather(*tasks)
    wall = after - before
    cpu = (after_cpu.user - before_cpu.user) + (after_cpu.system - before_cpu.system)
    requests = after_served - before_served
    return {
        "clients": len(clients),
        "target_req_per_s": round(len(clients) * rate),
        "served_req_per_s": round(requests / wall),
        "cpu_cores": round(cpu / wall, 3),
        "cpu_us_per_request": round(cpu / max(requests, 1) * 1e6, 1),
        "cpu_cores_at_target": round(cpu / max(requests, 1) * len(clients) * rate, 3),
        "errors": errors,
    }


async def idle_load(
    server: RunningServer, identities: list[dict[str, Any]], rate: float, duration: float
) -> dict[str, Any]:
    """Handshake every identity, then measure the hub while they all poll idly."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    node = node_id(server, identities[0])
    psks = await asyncio.gather(
        *(asyncio.to_thread(derive_psk, str(identity["password"]), node) for identity in identities)
    )
    clients = [Client(identity, Connection("127.0.0.1", server.port, context)) for identity in identities]
    for client, psk in zip(clients, psks, strict=True):
        await client.handshake(psk)
    for client in clients:
        await client.poll_once()  # the hub's encrypted HELLO
    assert server.process is not None
    result = await measure_polling(clients, server.process.pid, rate, duration)
    asks = [await clients[0].ask(JOKE) for _ in range(50)]
    for client in clients:
        client.connection.close()
    result["engine_ask_while_loaded"] = summary(asks)
    return result


FLOOR_APP = """
import sys, uvicorn
ANSWERS = {b"/x/get_messages": b'{"messages":[]}', b"/x/get_binary_messages": b'{"b64_messages":[]}'}
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = ANSWERS.get(scope["raw_path"], b"{}")
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_certfile=sys.argv[2], ssl_keyfile=sys.argv[3],
            lifespan="off", access_log=False, log_level="warning")
"""


async def floor_load(directory: Path, clients: int, rate: float, duration: float) -> dict[str, Any]:
    """The same polling against a bare ASGI app under uvicorn and TLS: what any hub pays."""
    from thalovant_server.tls import ensure_dev_tls

    tls = ensure_dev_tls(directory / "floor-tls")
    port = free_port()
    app = subprocess.Popen([sys.executable, "-c", FLOOR_APP, str(port), str(tls.cert), str(tls.key)])
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_cert))
        pollers = []
        for _ in range(clients):
            poller = Client({"access_key": "floor", "hub_id": ""}, Connection("127.0.0.1", port, context))
            for _attempt in range(100):  # bounded wait for the listening socket
                try:
                    await poller.connection.open()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            pollers.append(poller)
        result = await measure_polling(pollers, app.pid, rate, duration)
        for poller in pollers:
            poller.connection.close()
        return result
    finally:
        app.terminate()
        app.wait(timeout=30)


def node_id(server: RunningServer, identity: dict[str, Any]) -> str:
    """The hub's node id, read from the cleartext HELLO of a session opened and dropped at once."""
    token = base64.b64encode(f"{UA}:{identity['access_key']}".encode()).decode()
    base = f"/hubs/{identity['hub_id']}"
    with httpx.Client(base_url=server.api_url, verify=str(server.ca_file), params={"authorization": token}) as http:
        http.post(f"{base}/connect").raise_for_status()
        hello = json.loads(http.get(f"{base}/get_messages").json()["messages"][0])
        http.post(f"{base}/disconnect").raise_for_status()
    return str(hello["payload"]["node_id"])


def our_sdk_asks(server: RunningServer, identity: dict[str, Any], count: int) -> dict[str, Any]:
    from thalovant import ThalovantClient, ThalovantIdentity

    os.environ.update(trust_env(server.ca_file))
    samples = []
    with tempfile.TemporaryDirectory() as noise:
        ident = ThalovantIdentity.from_mapping(identity)
        with ThalovantClient(ident, protocol="https", noise_state_dir=noise, reply_settle_seconds=0) as client:
            client.ask(JOKE)
            for _ in range(count):
                started = time.perf_counter()
                client.ask(JOKE)
                samples.append(time.perf_counter() - started)
    return summary(samples)


def public_sdk_asks(server: RunningServer, identity: dict[str, Any], count: int, directory: Path) -> dict[str, Any]:
    path = directory / "public-sdk-identity.json"
    path.write_text(json.dumps(identity))
    path.chmod(0o600)
    return public_sdk_ask(path, count, protocol="https", ca=server.ca_file, expect="", warmup=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second per idle client")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--asks", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="https-bench-") as tmp:
        server = new_server(Path(tmp) / "data")
        server.start()
        try:
            identities = provision(server, args.clients + 2)
            result: dict[str, Any] = {"idle": asyncio.run(idle_load(server, identities[2:], args.rate, args.duration))}
            result["floor"] = asyncio.run(floor_load(Path(tmp), args.clients, args.rate, args.duration))
            result["our_sdk_ask"] = our_sdk_asks(server, identities[0], args.asks)
            result["public_sdk_ask"] = public_sdk_asks(server, identities[1], args.asks, Path(tmp))
        finally:
            server.stop()
    if args.json:
        print(json.dumps(result))
        return
    idle = result["idle"]
    print(f"idle polling: {idle['clients']} clients, target {idle['target_req_per_s']} req/s, "
          f"served {idle['served_req_per_s']} req/s, errors {idle['errors']}")  # fmt: skip
    print(f"  hub CPU {idle['cpu_cores']} cores measured, {idle['cpu_us_per_request']} us per request, "
          f"{idle['cpu_cores_at_target']} cores at the target rate (goal < 0.5)")  # fmt: skip
    floor = result["floor"]
    print(f"  floor (bare ASGI app, uvicorn + TLS, same load): {floor['cpu_cores']} cores, "
          f"{floor['cpu_us_per_request']} us per request, served {floor['served_req_per_s']} req/s")  # fmt: skip
    print(f"  engine ask while loaded: {idle['engine_ask_while_loaded']}")
    print(f"our SDK ask over https: {result['our_sdk_ask']}")
    print(f"public SDK 0.9.7 ask over https: {result['public_sdk_ask']}")


if __name__ == "__main__":
    main()
