"""``python -m peers``: build the peers, run hivemind-core, run a command against a live platform.

python -m peers setup [--force]            build the venvs of the public SDK 0.9.7 and hivemind-core
python -m peers hm5 [--nodelay]            run the hivemind-core stack until Ctrl-C (prints its identity)
python -m peers testbed [--hm5] -- CMD...  run CMD with serve --demo (and hivemind-core) up
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
from pathlib import Path

from peers import peers_dir, testbed, venvs
from peers.hm5 import HM5Stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser("setup", help="build the peers' venvs (idempotent)")
    setup.add_argument("--force", action="store_true", help="rebuild both venvs")
    hm5 = commands.add_parser("hm5", help="run the hivemind-core stack until interrupted")
    hm5.add_argument("--nodelay", action="store_true", help="TCP_NODELAY in every process of the stack")
    hm5.add_argument("--state", type=Path, help="state folder (default: a new one under the peers folder)")
    bed = commands.add_parser("testbed", help="run a command with serve --demo (and hivemind-core) up")
    bed.add_argument("--hm5", action="store_true", help="also run hivemind-core")
    bed.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    args = parser.parse_args(argv)

    if args.command == "setup":
        venvs.ensure(force=args.force)
        return 0
    if args.command == "hm5":
        venvs.ensure()
        state = args.state or Path(tempfile.mkdtemp(prefix="hm5-", dir=peers_dir()))
        with HM5Stack(state, nodelay=args.nodelay) as stack:
            print(f"identity: {stack.identity_file()}\nCA: {stack.ca_file}\nCtrl-C stops the stack.", flush=True)
            stopped = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stopped.set())
            with contextlib.suppress(KeyboardInterrupt):
                stopped.wait()
        return 0
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        parser.error("testbed needs a command after --")
    return testbed.run(command, hm5=args.hm5)


if __name__ == "__main__":
    sys.exit(main())
