#!/usr/bin/env python3
"""Ask latency and connect time: our SDK against the public Thalovant SDK 0.9.7, on our hub.

    .venv/bin/python bench/sdk_ask.py [--n 300] [--text "Tell me a joke."] [--json]

One run: start ``thalovant-server serve --demo`` on a free 127.0.0.1 port in a temporary data
directory, sign in as the demo user, create one client identity per SDK for the demo hub
(``joke-garden``), then

- ours: connect (timed; first contact, XXpsk2), N sequential ``ask()`` with settle 0;
- the public SDK: ``peers/sdk_ask.py --json`` in its own venv (same settings);

and print median / p99 ask latency, connect time, the ratios ours / public (goal <= 1.0), and the
server's CPU time per ask of ours.
The public SDK's venv is built first if needed (``python -m peers setup``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from harness import (
    TRUST_VARIABLES,
    OurServer,
    our_sdk_ask,
    our_server,
    public_sdk_ask,
    ratio,
    setup_peers,
)


def make_identity(server: OurServer, folder: Path, name: str) -> Path:
    """Create a client identity for the demo hub with our control-plane SDK; write it 0600."""
    from thalovant import ThalovantControlPlane

    api = ThalovantControlPlane(server.api_url)
    api.login("demo@example.com", server.demo_password)
    hub = api.get_public_hub("joke-garden")
    result = api.create_client_identity(hub["id"], name=name, preferred_protocols=("wss",))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "identity.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(result.identity.as_dict(include_secrets=True), handle)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--text", default="Tell me a joke.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    setup_peers()
    with our_server() as server:
        root = server.data_dir
        for variable in TRUST_VARIABLES:
            os.environ[variable] = str(server.ca_file)
        os.environ["THALOVANT_API_URL"] = server.api_url
        os.environ["XDG_CONFIG_HOME"] = str(root / "xdg")
        ours_identity = make_identity(server, root / "ours", "bench-ours")
        public_identity = make_identity(server, root / "public", "bench-public")
        ours = asyncio.run(our_sdk_ask(ours_identity, args.n, protocol="wss", text=args.text, warmup=args.warmup,
                                       server_pid=server.pid))  # fmt: skip
        public = public_sdk_ask(public_identity, args.n, ca=server.ca_file, text=args.text, expect="",
                                warmup=args.warmup)  # fmt: skip
        public["sdk"] = "public 0.9.7"

    summary = {
        "n": args.n,
        "text": args.text,
        "settle": 0,
        "ours": ours,
        "public": {
            k: public.get(k) for k in ("connect_ms", "noise_pattern", "ok", "errors", "median_ms", "p99_ms")
        },
        "ratio_median": ratio(ours["median_ms"], public.get("median_ms")),
        "ratio_p99": ratio(ours["p99_ms"], public.get("p99_ms")),
        "ratio_connect": ratio(ours["connect_ms"], public.get("connect_ms")),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{'':14} {'connect ms':>11} {'median ms':>10} {'p99 ms':>8}  pattern  ok/errors")
        for row in (ours, summary["public"]):
            name = row.get("sdk", "public 0.9.7")
            connect, median, p99 = row["connect_ms"] or 0, row["median_ms"] or 0, row["p99_ms"] or 0
            pattern = row.get("noise_pattern") or "?"
            counts = f"{row['ok']}/{row['errors']}"
            print(f"{name:14} {connect:11.1f} {median:10.2f} {p99:8.2f}  {pattern:8} {counts}")
        print(
            f"ratios ours/public: median {summary['ratio_median']}, p99 {summary['ratio_p99']}, "
            f"connect {summary['ratio_connect']} (goal <= 1.0)"
        )
        print(f"server CPU per ask of ours (user + system, clock ticks of 10 ms): {ours['server_cpu_us_per_ask']} us")
    return 0 if ours["errors"] == 0 and not public.get("errors") else 1


if __name__ == "__main__":
    sys.exit(main())
