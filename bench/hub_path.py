#!/usr/bin/env python3
"""CPU time of the hub's ask path, in-process: microseconds per answered utterance.

    nice -n 15 .venv/bin/python bench/hub_path.py [--n 3000] [--rounds 5] [--text "Tell me a joke."]
    nice -n 15 .venv/bin/python bench/hub_path.py --profile link   # cProfile of one round

The hub is the demo hub's skill set (jokes, trivia, capabilities, memory) built as the runtime
builds it (:class:`~thalovant_server.hub.runtime.HubHost`), with a request log sink that drops
what it gets. The utterance is what our SDK sends for an ``ask`` in a conversation: its
runtime context, and the session fields it carries from the previous answer's
``ovos.utterance.handled`` (active skills, skill state).

Two paths are timed, each as ``--rounds`` rounds of ``--n`` asks (the best and the median round
are printed, in µs of this process's CPU time per ask, so other load on the machine counts
less than in wall time):

- ``router``: :meth:`HubRouter.handle` of the bus message (matching, skills, session, reply);
- ``link``: :meth:`HubLink.receive` of the client's sealed transport message (decrypt, parse,
  route, encode and seal the replies), over a real Noise channel pair of the protocol core.
  The client's sealing and opening happen outside the timed loop.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.envelope import BusMessage, HiveMessage
from thalovant.protocol.noise import SUITES, CipherState, KeyPair
from thalovant.runtime import bus as busmsg
from thalovant_server.hub.activity import Activity
from thalovant_server.hub.directory import HubKeys
from thalovant_server.hub.link import HubLink
from thalovant_server.hub.router import SKILLS_PIPELINE_ID, UTTERANCE_HANDLED, ClientOrigin, Reply
from thalovant_server.hub.runtime import HubHost

DEMO_SKILLS = ("jokes", "trivia", "capabilities", "memory")
USERAGENT = "thalovant-python/bench"
CONNECTION_SID = "thalovant-python-" + "0123456789abcdef" * 2
"""Shaped as the SDK's (``token_hex(16)``): hex with no digit run long enough to be read as a
big integer, which would send the JSON to the slower exact reader."""
SITE_ID = "bench-site"


class DroppingSink:
    """A request log that keeps nothing (the server's queues the entry; that is not measured)."""

    def record(self, activity: Activity) -> None:
        del activity


def demo_host() -> HubHost:
    keys = HubKeys("joke-garden", "node-joke-garden", KeyPair.generate(), DEMO_SKILLS, ("wss", "http", "mqtt"))
    return HubHost(keys, sink=DroppingSink())


def origin(host: HubHost) -> ClientOrigin:
    return ClientOrigin("client-bench", host.hub_id, SITE_ID, CONNECTION_SID, frozenset(), carrier="wss")


def ask_message(text: str, carried: dict[str, Any] | None) -> BusMessage:
    """The bus message our SDK sends for ``ask(text)`` (with the conversation it carries)."""
    _rid, data, ctx = busmsg.utterance_message(
        text, lang="en-us", session_id=None, request_id=None, context=None, site_id=SITE_ID, carried=carried
    )
    ctx = busmsg.runtime_context(ctx, useragent=USERAGENT, connection_sid=CONNECTION_SID, site_id=SITE_ID)
    return BusMessage(busmsg.UTTERANCE, data, ctx)


def carried_after(host: HubHost, text: str) -> dict[str, Any]:
    """The conversation fields the SDK carries after one warm-up ask of ``text``."""
    replies = host.router.handle(origin(host), ask_message(text, None))
    for reply in replies:
        if isinstance(reply, BusMessage) and reply.type == UTTERANCE_HANDLED:
            return busmsg.carried_fields(reply.context.get("session", {}))
    raise SystemExit(f"no {UTTERANCE_HANDLED} for {text!r}")


def channel_pair() -> tuple[SecureChannel, SecureChannel]:
    """(client, hub) channels as a completed handshake leaves them."""
    k1, k2 = os.urandom(32), os.urandom(32)
    suite = SUITES[0]
    return (
        SecureChannel(CipherState(suite, k1), CipherState(suite, k2)),
        SecureChannel(CipherState(suite, k2), CipherState(suite, k1)),
    )


@dataclass(frozen=True, slots=True)
class Round:
    """``asks`` runs the timed asks and returns what they sent; ``check`` verifies it (untimed)."""

    asks: Callable[[], Any]
    check: Callable[[Any], None]


def router_round(host: HubHost, text: str, n: int) -> Round:
    """``n`` router asks, each with its own message (built beforehand, as on the wire)."""
    who = origin(host)
    carried = carried_after(host, text)
    messages = [ask_message(text, carried) for _ in range(n)]
    handle = host.router.handle

    def asks() -> list[Reply]:
        replies: list[Reply] = []
        for message in messages:
            replies = handle(who, message)
        return replies

    return Round(asks, check_router)


def check_router(replies: list[Reply]) -> None:
    """The last ask was answered by a skill, not the fallback."""
    handled = [r for r in replies if isinstance(r, BusMessage) and r.type == UTTERANCE_HANDLED]
    if not handled or handled[0].context.get("pipeline_id") != SKILLS_PIPELINE_ID:
        raise SystemExit(f"the last ask was not answered by a skill: {replies}")


def link_round(host: HubHost, text: str, n: int) -> Round:
    """``n`` :meth:`HubLink.receive` calls (the client's frames sealed beforehand)."""
    client, hub = channel_pair()
    link = HubLink(hub, origin(host), host, "XXpsk2")
    carried = carried_after(host, text)
    frames = []
    for _ in range(n):
        message = ask_message(text, carried)
        frames.extend(client.seal_json(HiveMessage("bus", message.to_dict()).to_bytes()))
    receive = link.receive

    def asks() -> list[list[bytes]]:
        return [receive(frame) for frame in frames]

    def check(sent: list[list[bytes]]) -> None:
        """Every reply decrypts, in order, and the last ask was answered by a skill."""
        last: list[dict[str, Any]] = []
        for messages in sent:
            last = [json.loads(frame.body) for frame in map(client.open, messages) if frame is not None]
        check_router([BusMessage.from_object(m["payload"]) for m in last])

    return Round(asks, check)


def timed(path: str, host: HubHost, text: str, n: int) -> float:
    """Seconds of one round of ``n`` asks on ``path`` (the check after it not counted)."""
    round_ = router_round(host, text, n) if path == "router" else link_round(host, text, n)
    start = time.process_time()
    sent = round_.asks()
    elapsed = time.process_time() - start
    round_.check(sent)
    return elapsed


def profiled(path: str, host: HubHost, text: str, n: int, sort: str = "tottime") -> None:
    """cProfile of one round's asks, sorted by ``sort`` (a :mod:`pstats` key)."""
    round_ = router_round(host, text, n) if path == "router" else link_round(host, text, n)
    profiler = cProfile.Profile()
    sent = profiler.runcall(round_.asks)
    round_.check(sent)
    pstats.Stats(profiler).sort_stats(sort).print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="asks per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--text", default="Tell me a joke.")
    parser.add_argument("--path", choices=("router", "link", "both"), default="both")
    parser.add_argument("--profile", choices=("router", "link"), help="cProfile one round of this path instead")
    args = parser.parse_args()
    host = demo_host()
    if args.profile:
        profiled(args.profile, host, args.text, args.n)
        return
    paths = ("router", "link") if args.path == "both" else (args.path,)
    for path in paths:
        timed(path, host, args.text, min(args.n, 300))  # warm up
        per_ask = [timed(path, host, args.text, args.n) / args.n * 1e6 for _ in range(args.rounds)]
        print(
            f"{path:6s} {args.n} asks x {args.rounds} rounds: "
            f"best {min(per_ask):6.1f} µs/ask, median {statistics.median(per_ask):6.1f} µs/ask"
        )


if __name__ == "__main__":
    main()
