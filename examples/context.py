"""Attach user, source, locale and trace metadata to a request with build_client_context.

python examples/context.py --identity identity.json   (or THALOVANT_* variables)
"""

from __future__ import annotations

import argparse
import sys

from thalovant import ThalovantClient, ThalovantIdentity, build_client_context


def load_identity(path: str | None) -> ThalovantIdentity:
    return ThalovantIdentity.from_file(path) if path else ThalovantIdentity.from_env()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identity", help="identity file (mode 0600); default: THALOVANT_* variables")
    args = parser.parse_args()

    with ThalovantClient(load_identity(args.identity), protocol="wss") as client:
        context = build_client_context(
            user_id="user-42",
            user_name="Ada",
            source="checkout-kiosk",
            platform="kiosk",
            locale="en-US",
            metadata={"trace_id": "req-2026-06-10-001"},
        )

        reply = client.ask("Show the next instruction.", context=context)
        print(reply.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
