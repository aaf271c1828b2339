"""Load an identity (file, config profile or environment) and inspect its protocols.

python examples/identity_protocols.py --identity identity.json
python examples/identity_protocols.py --profile prod
THALOVANT_ACCESS_KEY=... python examples/identity_protocols.py
"""

from __future__ import annotations

import argparse
import sys

from thalovant import ThalovantIdentity


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--identity", help="identity file (mode 0600)")
    parser.add_argument("--profile", help="a profile of the config file")
    args = parser.parse_args()

    if args.identity:
        identity = ThalovantIdentity.from_file(args.identity)
    elif args.profile:
        identity = ThalovantIdentity.from_config(profile=args.profile)
    else:
        identity = ThalovantIdentity.from_env()

    print(identity.enabled_protocols())
    print(identity.endpoint_for("wss"))
    print(identity.endpoint_for("https"))
    print(identity.endpoint_for("mqtt"))
    print(identity.supports_protocol("wss"))

    if identity.mqtt:
        print(identity.mqtt["host"], identity.mqtt["port"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
