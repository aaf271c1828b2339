"""Two turns in one conversation: the second one relies on the first.

python examples/conversation.py --identity identity.json   (or THALOVANT_* variables)
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

    with (
        ThalovantClient(load_identity(args.identity), protocol="wss") as client,
        client.conversation(lang="en-us") as convo,
    ):
        print(convo.ask("Remember that my favorite color is blue.").text)
        print(convo.ask("What color did I mention?").text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
