#!/usr/bin/env python3
"""The Rust SDK beside the Python SDK on one hub: ask latency, then many concurrent sessions.

    .venv/bin/python sdk/rust/bench/ask.py [--n 300] [--warmup 5] [--sessions 1000] [--json]

One run starts ``thalovant-server serve --demo`` (bench/harness.py), creates one client identity
per SDK on the demo hub, then

- Rust: ``bench/ask.rs`` (built with ``cargo bench``, the release profile): connect, N
  sequential ``ask()`` with settle 0, over WSS;
- Python: the measurement of ``bench/sdk_ask.py`` (our Python SDK, same settings);
- Rust again: ``--sessions`` client identities provisioned through the API (bounded
  concurrency), every session opened and kept open, then every session asking at once.

It prints the medians and p99s, the ratio Rust / Python (goal <= 0.5) and how the sessions went.
With two or more CPUs the server runs on the first and every client on the others
(``harness.Placement``; ``--no-pin`` leaves them to the scheduler).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

RUST = Path(__file__).resolve().parents[1]
REPO = RUST.parents[1]
sys.path.insert(0, str(REPO / "bench"))

from harness import TRUST_VARIABLES, Placement, our_sdk_ask, our_server, ratio  # noqa: E402
from sdk_ask import make_identity  # noqa: E402


def build_rust_bench() -> Path:
    """``cargo bench --no-run`` for bench/ask.rs; the path of the executable."""
    env = dict(os.environ, CARGO_TARGET_DIR=str(RUST / "target"))
    done = subprocess.run(
        ["cargo", "bench", "--locked", "--bench", "ask", "--no-run", "--message-format=json"],
        cwd=RUST, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        message = json.loads(line)
        built = message.get("reason") == "compiler-artifact" and message.get("target", {}).get("name") == "ask"
        if built and message.get("executable"):
            return Path(message["executable"])
    sys.exit("cargo built no bench executable named ask")


def run_rust(binary: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    """One run of the Rust bench; ``{"failed": ...}`` when it did not finish."""
    done = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"failed": f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--text", default="Tell me a joke.")
    parser.add_argument("--sessions", type=int, default=1000, help="concurrent Rust sessions (0: skip)")
    parser.add_argument("--concurrency", type=int, default=16, help="sessions connecting at once")
    parser.add_argument("--provision-concurrency", type=int, default=4, help="identities provisioned at once")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-pin", action="store_true", help="leave the server and the clients to the scheduler")
    args = parser.parse_args()

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server and the client each hold every session
    binary = build_rust_bench()
    placement = None if args.no_pin else Placement.split()
    with our_server() as server:
        if placement is not None:
            placement.pin_server(server.pid)
            placement.pin_client()  # the Rust bench runs are started from here: they inherit it
        root = server.data_dir
        for variable in TRUST_VARIABLES:
            os.environ[variable] = str(server.ca_file)
        os.environ["THALOVANT_API_URL"] = server.api_url
        os.environ["XDG_CONFIG_HOME"] = str(root / "xdg")
        rust_identity = make_identity(server, root / "rust", "bench-rust")
        python_identity = make_identity(server, root / "python", "bench-python")
        rust = run_rust(binary, "ask", "--identity", str(rust_identity), "--n", str(args.n),
                        "--warmup", str(args.warmup), "--text", args.text,
                        "--state", str(root / "rust-state"))  # fmt: skip
        python = asyncio.run(
            our_sdk_ask(python_identity, args.n, protocol="wss", text=args.text, warmup=args.warmup)
        )
        sessions = None
        if args.sessions:
            env = dict(os.environ, THALOVANT_EMAIL="demo@example.com", THALOVANT_PASSWORD=server.demo_password)
            sessions = run_rust(binary, "sessions", "--count", str(args.sessions),
                                "--concurrency", str(args.concurrency),
                                "--provision-concurrency", str(args.provision_concurrency),
                                "--dir", str(root / "sessions"), env=env)  # fmt: skip

    if "failed" in rust:
        sys.exit(f"the Rust ask bench failed: {rust['failed']}")
    summary = {
        "n": args.n,
        "text": args.text,
        "settle": 0,
        "rust": rust,
        "python": python,
        "ratio_median": ratio(rust["median_ms"], python["median_ms"]),
        "ratio_p99": ratio(rust["p99_ms"], python["p99_ms"]),
        "sessions": sessions,
        "placement": str(placement) if placement else "left to the scheduler",
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"placement: {summary['placement']}")
        print(f"{'':8} {'connect ms':>11} {'median ms':>10} {'p99 ms':>8}  pattern  ok/errors")
        for name, row in (("rust", rust), ("python", python)):
            print(f"{name:8} {row['connect_ms']:11.1f} {row['median_ms'] or 0:10.3f} {row['p99_ms'] or 0:8.3f}  "
                  f"{row.get('noise_pattern') or '?':8} {row['ok']}/{row['errors']}")  # fmt: skip
        print(f"ratio rust/python: median {summary['ratio_median']}, p99 {summary['ratio_p99']} (goal median <= 0.5)")
        if sessions and "failed" in sessions:
            print(f"sessions: the run failed: {sessions['failed']}")
        elif sessions:
            print(
                f"sessions: {sessions['answered']}/{sessions['sessions']} answered, "
                f"{sessions['open_at_once']} open at once; "
                f"provisioned in {sessions['provision_s']:.1f} s, connected in {sessions['connect_s']:.1f} s, "
                f"all asked and answered in {sessions['ask_all_s']:.2f} s"
            )
            if sessions.get("first_error"):
                print(f"first error: {sessions['first_error']}")
    failed = rust["errors"] or python["errors"] or (sessions and sessions.get("answered") != args.sessions)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
