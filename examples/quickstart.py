"""Quick start: sign in, create a client identity for a hub, ask it for a joke.

    THALOVANT_EMAIL=... THALOVANT_PASSWORD=... python examples/quickstart.py [--hub joke-garden]

The control plane URL comes from THALOVANT_API_URL (default https://localhost:8443); trust a
development CA with SSL_CERT_FILE. ``--hub`` (or THALOVANT_HUB) is a hub id or a public hub's
slug or reference; ``--save FILE`` also writes the new identity (0600) for the other examples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from thalovant import ThalovantClient, ThalovantControlPlane


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hub", default=os.environ.get("THALOVANT_HUB", "joke-garden"))
    parser.add_argument("--name", default="python-demo-client")
    parser.add_argument("--save", help="write the new identity to this file (mode 0600)")
    args = parser.parse_args()
    email = os.environ.get("THALOVANT_EMAIL")
    password = os.environ.get("THALOVANT_PASSWORD")
    if not email or not password:
        print("Set THALOVANT_EMAIL and THALOVANT_PASSWORD to sign in.", file=sys.stderr)
        return 2

    api = ThalovantControlPlane()
    api.login(email, password)
    hub = api.get_public_hub(args.hub)
    result = api.create_client_identity(
        hub["id"],
        name=args.name,
        preferred_protocols=("wss", "https", "mqtt"),
    )
    if args.save:
        fd = os.open(args.save, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(result.identity.as_dict(include_secrets=True), handle, indent=2)

    with ThalovantClient(result.identity, protocol="wss") as client:
        reply = client.ask("Tell me a short clean joke.")
        print(reply.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
