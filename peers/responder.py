"""An echo "skill" on an OVOS messagebus, standing in for ovos-core behind hivemind-core.

Runs in the hm5 venv (it needs ``ovos_bus_client``)::

    python responder.py --port PORT [--host 127.0.0.1] [--route /core]

Every ``recognizer_loop:utterance`` is answered with ``speak`` carrying "You said <utterance>",
then ``ovos.utterance.handled``, both as replies to the request so that its context (the session,
source and destination) routes them back to the asking client. It matches no intents, so an ask
through it measures the transport and the hub, not a skill. Prints ``responder ready`` once it is
on the bus; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

PREFIX = "You said"


def main() -> int:
    parser = argparse.ArgumentParser(description="echo responder on an OVOS messagebus")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--route", default="/core")
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    args = parser.parse_args()

    from ovos_bus_client import MessageBusClient

    bus = MessageBusClient(host=args.host, port=args.port, route=args.route, ssl=False)

    def answer(message: Any) -> None:
        said = (message.data.get("utterances") or [""])[0]
        speak: dict[str, Any] = {"utterance": f"{PREFIX} {said}", "expect_response": False}
        if message.data.get("lang"):
            speak["lang"] = message.data["lang"]
        bus.emit(message.reply("speak", speak))
        bus.emit(message.reply("ovos.utterance.handled", {}))

    bus.on("recognizer_loop:utterance", answer)
    bus.run_in_thread()
    if not bus.connected_event.wait(args.connect_timeout):
        print(f"responder: no bus at ws://{args.host}:{args.port}{args.route}", file=sys.stderr, flush=True)
        return 1
    print("responder ready", flush=True)

    stop = threading.Event()
    # the handler only sets a flag read by the loop below: Event.set() itself could deadlock if the
    # signal arrived while this thread holds the event's lock inside wait()
    requested: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: requested.append(signum))
    while not requested:
        stop.wait(0.2)
    # the bus client's threads may not end on their own: give close() a moment, then leave
    closer = threading.Thread(target=bus.close, daemon=True)
    closer.start()
    closer.join(1.0)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
