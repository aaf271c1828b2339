"""Send a raw event, an utterance, an action and a code value (all fire and forget).

python examples/emit_and_inputs.py --identity identity.json   (or THALOVANT_* variables)
"""

from __future__ import annotations

import argparse
import sys

from thalovant import ThalovantClient, ThalovantIdentity


def load_identity(path: str | None) -> ThalovantIdentity:
    return ThalovantIdentity.from_file(path) if path else ThalovantIdentity.from_env()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identity", help="identity file (mode 0600); default: THALOVANT_* variables")
    args = parser.parse_args()

    with ThalovantClient(load_identity(args.identity), protocol="wss") as client:
        client.emit(
            "thalovant.client.status",
            {"state": "ready"},
            {"source": "checkout-kiosk"},
        )
        print("emitted thalovant.client.status")

        client.send_utterance(
            "What is the status?",
            lang="en-us",
            session_id="status-session",
        )
        print("sent utterance")

        client.send_action(
            "/approve invoice-42",
            title="Approve invoice",
            session_id="approval-session",
        )
        print("sent action")

        client.send_code(
            "INV-2026-001",
            kind="invoice",
            session_id="scan-session",
        )
        print("sent code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
