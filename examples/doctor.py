"""Diagnose a client: identity, endpoint, TLS, handshake and round trip.

    python examples/doctor.py --identity identity.json   (or THALOVANT_* variables)

Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import sys

from thalovant import ThalovantClient, ThalovantIdentity


def load_identity(path: str | None) -> ThalovantIdentity:
    return ThalovantIdentity.from_file(path) if path else ThalovantIdentity.from_env()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--identity", help="identity file (mode 0600); default: THALOVANT_* variables")
    args = parser.parse_args()

    client = ThalovantClient(load_identity(args.identity))
    try:
        report = client.doctor()
        print(report)
    finally:
        client.close()
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
