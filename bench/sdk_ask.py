#!/usr/bin/env python3
"""Ask latency and connect time: our SDK against the public Thalovant SDK 0.9.7, on our hub.

    .venv/bin/python bench/sdk_ask.py [--n 300] [--text "Tell me a joke."] [--json]

One run: start ``thalovant-server serve --demo`` on a free 127.0.0.1 port in a temporary data
directory, sign in as the demo user, create one client identity per SDK for the demo hub
(``joke-garden``), then

- ours: connect (timed; first contact, XXpsk2), N sequential ``ask()`` with settle 0;
- the public SDK: ``shared/peers/sdk_ask.py --json`` in its own venv (same settings);

and print median / p99 ask latency, connect time, and the ratios ours / public (goal <= 1.0).
``shared/peers/setup.sh`` must have built the public SDK's venv (it is run, idempotently).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def shared_dir() -> Path:
    configured = os.environ.get("THALOVANT_SHARED")
    return Path(configured) if configured else REPO.parent / "shared"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (as shared/peers/sdk_ask.py computes it)."""
    if not values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(values)))
    return values[min(rank, len(values)) - 1]


class Server:
    """``thalovant-server serve --demo`` as a child process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.demo_password = "demo-" + secrets.token_urlsafe(12)
        self.process: subprocess.Popen[str] | None = None

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = Path(sys.executable).parent / "thalovant-server"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "thalovant_server.cli"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("THALOVANT_")}
        env["THALOVANT_DEMO_PASSWORD"] = self.demo_password
        self.process = subprocess.Popen(
            [
                *cmd,
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--demo",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        output: list[str] = []
        for line in self.process.stdout:
            output.append(line)
            if line.startswith("Thalovant API: "):
                return
        raise RuntimeError("server exited before ready:\n" + "".join(output))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def make_identity(server: Server, folder: Path, name: str) -> Path:
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


async def run_ours(identity_file: Path, n: int, text: str, warmup: int) -> dict[str, Any]:
    from thalovant import ThalovantIdentity
    from thalovant.client import AsyncThalovantClient

    identity = ThalovantIdentity.from_file(identity_file)
    client = AsyncThalovantClient(identity, protocol="wss", reply_settle_seconds=0)
    started = time.perf_counter()
    await client.connect()
    connect_ms = (time.perf_counter() - started) * 1000
    pattern = client.connection_info().noise_pattern
    times: list[float] = []
    errors = 0
    try:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            try:
                await client.ask(text.format(i=i), timeout=5)
            except Exception:
                errors += 1
                continue
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    finally:
        await client.close()
    times.sort()
    return {
        "sdk": "ours",
        "connect_ms": round(connect_ms, 2),
        "noise_pattern": pattern,
        "ok": len(times),
        "errors": errors,
        "median_ms": statistics.median(times) if times else None,
        "p99_ms": percentile(times, 99),
    }


def run_public(identity_file: Path, ca_file: Path, n: int, text: str, warmup: int) -> dict[str, Any]:
    script = shared_dir() / "peers" / "sdk_ask.py"
    peers = Path(os.environ.get("THALOVANT_PEERS") or Path(tempfile.gettempdir()) / "thalovant-peers")
    python = peers / "sdk097" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THALOVANT_", "PYTHON"))}
    env["THALOVANT_PEERS"] = str(peers)
    cmd = [
        str(python),
        str(script),
        "--identity",
        str(identity_file),
        "--protocol",
        "wss",
        "--n",
        str(n),
        "--settle",
        "0",
        "--json",
        "--ca",
        str(ca_file),
        "--expect",
        "",
        "--text",
        text,
        "--warmup",
        str(warmup),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"public sdk_ask.py failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["sdk"] = "public 0.9.7"
    return result


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours is not None and theirs else None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--text", default="Tell me a joke.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    subprocess.run(
        ["bash", str(shared_dir() / "peers" / "setup.sh")], check=True, capture_output=True, timeout=1200
    )
    with tempfile.TemporaryDirectory(prefix="sdk-ask-bench-") as tmp:
        root = Path(tmp)
        server = Server(root / "server")
        server.start()
        try:
            ca_file = server.data_dir / "ca.pem"
            for variable in TRUST_VARIABLES:
                os.environ[variable] = str(ca_file)
            os.environ["THALOVANT_API_URL"] = server.api_url
            os.environ["XDG_CONFIG_HOME"] = str(root / "xdg")
            ours_identity = make_identity(server, root / "ours", "bench-ours")
            public_identity = make_identity(server, root / "public", "bench-public")
            ours = asyncio.run(run_ours(ours_identity, args.n, args.text, args.warmup))
            public = run_public(public_identity, ca_file, args.n, args.text, args.warmup)
        finally:
            server.stop()

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
    return 0 if ours["errors"] == 0 and not public.get("errors") else 1


if __name__ == "__main__":
    sys.exit(main())
