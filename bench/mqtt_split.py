"""Where a public-SDK MQTT ask spends its time: on the wire (broker and hub) or in the client.

Runs inside the sdk097 venv (``python -m peers setup`` builds it; ``bench/carriers.py --split``
runs it)::

    <peers>/sdk097/bin/python bench/mqtt_split.py --identity FILE [--n 200] [--ca FILE] [--json]

The public SDK 0.9.7 as shipped asks ``--n`` times over ``mqtts`` (settle 0, after ``--warmup``
untimed asks). Two instants of each ask are taken inside paho, in the SDK's own process:

- *out*: the first PUBLISH paho writes to its socket after the ask began;
- *in*: the last PUBLISH paho reads from its socket before the ask returned;
- *ack*: the broker's PUBACK for that request (the SDK publishes at QoS 1 and waits for it).

``wire`` is *in* minus *out*: the request and its reply crossing TLS, the broker (twice) and the
hub. ``puback`` is *ack* minus *out*. ``client`` is the ask minus the longer of the two: the SDK
encrypting, handing the message to paho's network thread and carrying the reply back to the
caller, with nothing of it on the wire. No hub can make an ask faster than its ``client`` part.
Prints medians and p99 (nearest rank), or one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "peers"))

from sdk_ask import nearest_rank, trust  # peers/sdk_ask.py, in this same venv

PUBLISH = 0x30


class Marks:
    """Instants (``time.perf_counter``) at which paho wrote and read PUBLISH packets."""

    def __init__(self) -> None:
        self.out: list[float] = []
        self.into: list[float] = []
        self.acks: list[float] = []

    def clear(self) -> None:
        self.out.clear()
        self.into.clear()
        self.acks.clear()

    def install(self) -> None:
        """Wrap paho's socket write and its PUBLISH and PUBACK handlers (every client of the process)."""
        from paho.mqtt.client import Client

        send, handle, acked = Client._sock_send, Client._handle_publish, Client._handle_pubackcomp
        marks = self

        def sock_send(client: Any, buf: bytes | bytearray) -> int:
            if buf and buf[0] & 0xF0 == PUBLISH:
                marks.out.append(time.perf_counter())
            return int(send(client, buf))

        def handle_publish(client: Any) -> Any:
            marks.into.append(time.perf_counter())
            return handle(client)

        def handle_ack(client: Any, cmd: Any) -> Any:
            marks.acks.append(time.perf_counter())
            return acked(client, cmd)

        Client._sock_send = sock_send  # type: ignore[method-assign]
        Client._handle_publish = handle_publish  # type: ignore[method-assign]
        Client._handle_pubackcomp = handle_ack  # type: ignore[method-assign]

    def split(self, began: float, ended: float) -> tuple[float, float] | None:
        """Milliseconds from the request's write to the reply and to the PUBACK, of the ask that
        ran from ``began`` to ``ended`` (None when either was not seen)."""
        out = next((t for t in self.out if t >= began), None)
        if out is None:
            return None
        into = [t for t in self.into if out < t <= ended]
        ack = next((t for t in self.acks if out < t <= ended), None)
        return ((into[-1] - out) * 1000, (ack - out) * 1000) if into and ack is not None else None


def summary(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"median_ms": None, "p99_ms": None}
    return {"median_ms": round(statistics.median(ordered), 3), "p99_ms": round(nearest_rank(ordered, 99), 3)}


async def measure(args: argparse.Namespace, marks: Marks) -> dict[str, Any]:
    from thalovant import AsyncThalovantClient, ThalovantIdentity

    client = AsyncThalovantClient(ThalovantIdentity.from_file(args.identity), protocol="mqtt", reply_settle_seconds=0)
    totals: list[float] = []
    wires: list[float] = []
    pubacks: list[float] = []
    errors = 0
    first_error: str | None = None
    await client.connect()
    try:
        for i in range(args.warmup + args.n):
            marks.clear()
            began = time.perf_counter()
            try:
                await client.ask(args.text.format(i=i), timeout=args.timeout)
            except Exception as exc:
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
                continue
            ended = time.perf_counter()
            split = marks.split(began, ended)
            if i >= args.warmup and split is not None:
                totals.append((ended - began) * 1000)
                wires.append(split[0])
                pubacks.append(split[1])
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 15)
    clients = [total - max(wire, ack) for total, wire, ack in zip(totals, wires, pubacks, strict=True)]
    return {
        "tool": "mqtt_split", "n": args.n, "split": len(totals), "errors": errors, "first_error": first_error,
        "ask": summary(totals), "wire": summary(wires), "puback": summary(pubacks), "client": summary(clients),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="split public-SDK MQTT asks into wire and client time")
    parser.add_argument("--identity", required=True, type=Path)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per ask")
    parser.add_argument("--text", default="hello {i}", help="utterance; {i} is the ask's index")
    parser.add_argument("--ca", type=Path, help="an extra CA to trust")
    parser.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args(argv)
    metadata = json.loads(args.identity.read_text(encoding="utf-8")).get("metadata") or {}
    extra = args.ca or (Path(metadata["tls_ca_file"]) if metadata.get("tls_ca_file") else None)
    if extra is not None:
        trust(extra)
    marks = Marks()
    marks.install()
    result = asyncio.run(measure(args, marks))
    if args.json:
        print(json.dumps(result))
    else:
        for part in ("ask", "wire", "puback", "client"):
            print(f"{part}: median {result[part]['median_ms']} ms, p99 {result[part]['p99_ms']} ms")
        print(f"asks split: {result['split']}/{args.n}, errors: {result['errors']}")
    return 0 if result["errors"] == 0 and result["split"] == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
