"""Wait for one event that proves a request completed, then stream speech events.

    python examples/events.py --identity identity.json   (or THALOVANT_* variables)

Both calls see events the hub sent after this client's last publication, so "send, then
wait" never misses a fast answer; ``listen`` subscribes as soon as it is called.
"""

from __future__ import annotations

import argparse
import sys

from thalovant import EVENT_SPEAK, EVENT_UTTERANCE_HANDLED, ThalovantClient, ThalovantIdentity


def load_identity(path: str | None) -> ThalovantIdentity:
    return ThalovantIdentity.from_file(path) if path else ThalovantIdentity.from_env()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--identity", help="identity file (mode 0600); default: THALOVANT_* variables")
    args = parser.parse_args()

    with ThalovantClient(load_identity(args.identity), protocol="wss") as client:
        client.send_utterance("Tell me a joke.")
        event = client.wait_for_event(EVENT_UTTERANCE_HANDLED, timeout=12)
        print("handled:", event.name)

        speech = client.listen(EVENT_SPEAK, timeout=30, max_events=3)
        for question in ("Tell me a joke.", "Tell me a trivia fact.", "What can this hub do?"):
            client.send_utterance(question)
        for event in speech:
            print(event.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
