"""Time N asks through the public Thalovant SDK 0.9.7 against any hub; print the figures.

Runs inside the sdk097 venv (``python -m peers setup`` builds it)::

    <peers>/sdk097/bin/python peers/sdk_ask.py --identity FILE --protocol wss|https|mqtt [--n 300] [--json]

One timed connect, ``--warmup`` untimed asks, then ``--n`` sequential timed asks. An ask that
raises is an error; one whose reply differs from ``--expect`` (default "You said <text>", the
peers' responder; ``--expect ''`` turns the check off) is a mismatch. Percentiles are nearest
rank. Exit status 0 only when the connect and every ask succeeded and matched.

``--ca FILE`` (or the identity's ``metadata.tls_ca_file``) is trusted on top of the bundle the
environment trusts, through every variable the SDK reads (its aiohttp side reads the first of
REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE; paho reads SSL_CERT_FILE through OpenSSL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import runpy
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TRUST_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="timed asks through the public Thalovant SDK")
    parser.add_argument("--identity", required=True, type=Path)
    parser.add_argument("--protocol", required=True, choices=("wss", "https", "mqtt"))
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--settle", type=float, default=0.0, help="reply_settle_seconds (the SDK's default is 0.25)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per ask")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds for the whole run")
    parser.add_argument("--text", default="hello {i}", help="utterance; {i} is the ask's index")
    parser.add_argument("--expect", default="You said {text}", help="expected reply ({text}, {i}); '' for none")
    parser.add_argument("--ca", type=Path, help="an extra CA to trust")
    parser.add_argument("--self-signed", action="store_true", help="the SDK's self_signed option (wss/https)")
    parser.add_argument("--noise-dir", help="Noise state folder (default: the SDK's, beside the identity)")
    parser.add_argument("--nodelay", action="store_true", help="TCP_NODELAY on this process's sockets")
    parser.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    return args


def trust(extra: Path) -> None:
    """Point every trust variable at the current bundle plus ``extra``."""
    current = next((os.environ[v] for v in TRUST_VARIABLES if os.path.isfile(os.environ.get(v, ""))), None)
    current = current or ssl.get_default_verify_paths().cafile
    text = Path(current).read_text(encoding="utf-8", errors="replace") if current and os.path.isfile(current) else ""
    fd, bundle = tempfile.mkstemp(prefix="sdk-ask-ca-", suffix=".pem")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text.rstrip() + "\n" + extra.read_text(encoding="utf-8"))
    for variable in TRUST_VARIABLES:
        os.environ[variable] = bundle


def nearest_rank(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def pattern_of(client: Any) -> str | None:
    """The live Noise pattern, looked up a few private attributes deep (the SDK has no accessor)."""
    frontier, seen = [client], set()
    for _ in range(4):
        found = []
        for obj in frontier:
            if obj is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            value = getattr(obj, "pattern", None)
            if isinstance(value, str) and value.endswith(("psk0", "psk2")):
                return value
            found += [getattr(obj, name, None) for name in ("_transport", "_async_transport", "_protocol", "_noise")]
        frontier = found
    return None


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import thalovant
    from thalovant import AsyncThalovantClient, ThalovantIdentity

    result: dict[str, Any] = {"tool": "sdk_ask", "sdk": thalovant.__version__, "protocol": args.protocol, "n": args.n,
                              "connect_ms": None, "noise_pattern": None, "ok": 0, "errors": 0, "mismatches": 0,
                              "first_error": None}  # fmt: skip
    options: dict[str, Any] = {"protocol": args.protocol, "self_signed": args.self_signed,
                               "reply_settle_seconds": args.settle}  # fmt: skip
    if args.noise_dir:
        options["noise_state_dir"] = args.noise_dir
    client = AsyncThalovantClient(ThalovantIdentity.from_file(args.identity), **options)
    try:
        started = time.perf_counter()
        try:
            await client.connect()
        except Exception as exc:
            result.update(errors=args.n, first_error=f"connect: {type(exc).__name__}: {exc}")
            return result
        result["connect_ms"] = round((time.perf_counter() - started) * 1000, 2)
        result["noise_pattern"] = pattern_of(client)

        async def ask(i: int) -> float | None:
            text = args.text.format(i=i)
            began = time.perf_counter()
            try:
                reply = await client.ask(text, timeout=args.timeout)
            except Exception as exc:
                result["first_error"] = result["first_error"] or f"ask {i}: {type(exc).__name__}: {exc}"
                return None
            elapsed = (time.perf_counter() - began) * 1000
            expected = args.expect.format(text=text, i=i) if args.expect else None
            if expected is not None and reply.text != expected:
                result["first_error"] = result["first_error"] or f"ask {i}: {reply.text!r} != {expected!r}"
                result["mismatches"] += 1
            return elapsed

        for i in range(args.warmup):
            await ask(-1 - i)
        result.update(errors=0, mismatches=0, first_error=None)
        times = []
        for i in range(args.n):
            elapsed = await ask(i)
            if elapsed is None:
                result["errors"] += 1
            else:
                times.append(elapsed)
        result["ok"] = args.n - result["errors"] - result["mismatches"]
        if times:
            times.sort()
            result.update(
                median_ms=round(statistics.median(times), 2), p90_ms=round(nearest_rank(times, 90), 2),
                p99_ms=round(nearest_rank(times, 99), 2), min_ms=round(times[0], 2), max_ms=round(times[-1], 2),
                mean_ms=round(statistics.fmean(times), 2),
            )  # fmt: skip
        return result
    finally:
        # the figures are what this tool reports; a failed or slow close is not one of them
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 15)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.nodelay:
        os.environ["PEERS_NODELAY"] = "1"
        runpy.run_path(str(Path(__file__).resolve().parent / "nodelay" / "sitecustomize.py"))
    metadata = json.loads(args.identity.read_text(encoding="utf-8")).get("metadata") or {}
    extra = args.ca or (Path(metadata["tls_ca_file"]) if metadata.get("tls_ca_file") else None)
    if extra is not None:
        trust(extra)
    try:
        result = asyncio.run(asyncio.wait_for(measure(args), args.deadline))
    except TimeoutError:
        result = {"tool": "sdk_ask", "n": args.n, "errors": args.n, "first_error": f"deadline {args.deadline} s"}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    good = result.get("connect_ms") is not None and not result.get("errors") and not result.get("mismatches")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
