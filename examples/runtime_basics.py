"""Connect, check health, ask what the hub can do and print any display items.

python examples/runtime_basics.py --identity identity.json   (or THALOVANT_* variables)
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
    identity = load_identity(args.identity)

    client = ThalovantClient(identity, protocol="wss")
    client.connect()
    print(client.healthcheck())
    try:
        reply = client.ask("What can this hub do?")
        print(reply.text)
        for item in reply.display_items():
            print(item)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
