#!/usr/bin/env python3
"""Cost of the protocol engine's cryptography: ours against the ``noiseprotocol`` package.

    .venv/bin/python bench/protocol.py [--rounds 300] [--messages 400] [--json]

Prints, in one run:

1. responder-side handshake cost for XXpsk2 and KKpsk0 (the hub's work per connection, PSK
   already derived, static key loaded once): median microseconds per full handshake,
   ours vs noiseprotocol, and the ratio ours / theirs;
2. per-message transport cost for 1 KiB and 64 KiB JSON bodies: encrypt + frame
   (``SecureChannel.seal_json``) and decrypt + deframe (``SecureChannel.open``), against
   noiseprotocol doing the same encryption and decryption under the same framing code
   (``split_plaintext`` / ``Reassembler``), so the ratio isolates the Noise layer;
   plus the bare CipherState encrypt/decrypt of one message (1 KiB, 65000 bytes), no framing;
3. the CPU time (process time) of one full XXpsk2 handshake, both sides, in ms.

Goals: ratio <= 1.0 on the transport path and a full XX handshake under 2 ms of CPU.
Timings are medians of batches; the machine is shared, so expect some noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from noise.connection import Keypair, NoiseConnection

from thalovant.protocol.channel import SecureChannel
from thalovant.protocol.framing import CHUNK_SIZE, Reassembler, split_plaintext
from thalovant.protocol.noise import CipherState, HandshakeState, KeyPair, protocol_name

SUITE = "25519_ChaChaPoly_SHA256"
PROLOGUE = b'{"node_id":"bench"}{"noise":{"patterns":["KKpsk0","XXpsk2"]}}Noise'
SIZES = {"1 KiB": 1024, "64 KiB": 64 * 1024}

warnings.filterwarnings("ignore", module="noise")


# -- handshakes ------------------------------------------------------------------------------


class Keys:
    """Long-lived material a hub holds: its static key, a client's static key, the PSK."""

    def __init__(self) -> None:
        self.hub = KeyPair.generate()
        self.client = KeyPair.generate()
        self.psk = os.urandom(32)


def _ours(pattern: str, keys: Keys, *, initiator: bool, suite: str = SUITE) -> HandshakeState:
    kk = pattern == "KKpsk0"
    if initiator:
        return HandshakeState(
            pattern,
            suite,
            initiator=True,
            prologue=PROLOGUE,
            psk=keys.psk,
            static=keys.client,
            remote_static=keys.hub.public if kk else None,
        )
    return HandshakeState(
        pattern,
        suite,
        initiator=False,
        prologue=PROLOGUE,
        psk=keys.psk,
        static=keys.hub,
        remote_static=keys.client.public if kk else None,
    )


def _theirs(pattern: str, keys: Keys, *, initiator: bool, suite: str = SUITE) -> NoiseConnection:
    conn = NoiseConnection.from_name(protocol_name(pattern, suite).encode("ascii"))
    kk = pattern == "KKpsk0"
    if initiator:
        conn.set_as_initiator()
        conn.set_keypair_from_private_bytes(Keypair.STATIC, keys.client.private)
        if kk:
            conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, keys.hub.public)
    else:
        conn.set_as_responder()
        conn.set_keypair_from_private_bytes(Keypair.STATIC, keys.hub.private)
        if kk:
            conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, keys.client.public)
    conn.set_psks(keys.psk)
    conn.set_prologue(PROLOGUE)
    conn.start_handshake()
    return conn


def responder_handshake_us(pattern: str, keys: Keys, *, ours: bool) -> float:
    """Wall time of the responder's share of one handshake (its calls only), in microseconds."""
    clock = time.perf_counter
    initiator: HandshakeState | NoiseConnection
    initiator = _ours(pattern, keys, initiator=True) if ours else _theirs(pattern, keys, initiator=True)
    first = bytes(initiator.write_message(b'{"binarize":false,"encodings":[]}'))
    start = clock()
    responder: HandshakeState | NoiseConnection
    responder = _ours(pattern, keys, initiator=False) if ours else _theirs(pattern, keys, initiator=False)
    responder.read_message(first)
    second = bytes(responder.write_message(b'{"binarize":false}'))
    spent = clock() - start
    initiator.read_message(second)
    if pattern == "XXpsk2":
        third = bytes(initiator.write_message(b""))
        start = clock()
        responder.read_message(third)
        spent += clock() - start
    start = clock()
    if isinstance(responder, HandshakeState):
        responder.split()
    spent += clock() - start
    return spent * 1e6


def full_xx_cpu_ms(keys: Keys, *, ours: bool) -> float:
    """Process (CPU) time of one complete XXpsk2 handshake, both sides, split included, in ms."""
    start = time.process_time()
    if ours:
        i, r = _ours("XXpsk2", keys, initiator=True), _ours("XXpsk2", keys, initiator=False)
        r.read_message(i.write_message(b"{}"))
        i.read_message(r.write_message(b"{}"))
        r.read_message(i.write_message(b""))
        i.split()
        r.split()
    else:
        a, b = _theirs("XXpsk2", keys, initiator=True), _theirs("XXpsk2", keys, initiator=False)
        b.read_message(a.write_message(b"{}"))
        a.read_message(b.write_message(b"{}"))
        b.read_message(a.write_message(b""))
    return (time.process_time() - start) * 1e3


# -- transport -------------------------------------------------------------------------------


def _our_channels(suite: str = SUITE) -> tuple[SecureChannel, SecureChannel]:
    keys = Keys()
    i, r = _ours("XXpsk2", keys, initiator=True, suite=suite), _ours("XXpsk2", keys, initiator=False, suite=suite)
    r.read_message(i.write_message(b""))
    i.read_message(r.write_message(b""))
    r.read_message(i.write_message(b""))
    return SecureChannel(*i.split()), SecureChannel(*r.split())


def _their_connections(suite: str = SUITE) -> tuple[NoiseConnection, NoiseConnection]:
    keys = Keys()
    a, b = _theirs("XXpsk2", keys, initiator=True, suite=suite), _theirs("XXpsk2", keys, initiator=False, suite=suite)
    b.read_message(a.write_message(b""))
    a.read_message(b.write_message(b""))
    b.read_message(a.write_message(b""))
    return a, b


def _interleaved_us(
    ours: Callable[[], object], theirs: Callable[[], object], messages: int, batches: int
) -> tuple[float, float]:
    """Median over alternating batches of the mean cost of one call, in microseconds (ours, theirs)."""
    clock = time.perf_counter
    results: tuple[list[float], list[float]] = ([], [])
    for _ in range(batches):
        for step, bucket in ((ours, results[0]), (theirs, results[1])):
            start = clock()
            for _ in range(messages):
                step()
            bucket.append((clock() - start) / messages * 1e6)
    return statistics.median(results[0]), statistics.median(results[1])


def transport_us(size: int, messages: int, batches: int = 9) -> dict[str, dict[str, float]]:
    """Seal (encrypt + frame) and open (decrypt + deframe) cost of one JSON body of ``size`` bytes."""
    body = os.urandom(size)
    total = messages * batches
    sender, receiver = _our_channels()
    a, b = _their_connections()
    reassembler = Reassembler()

    def seal_theirs() -> list[bytes]:
        return [a.encrypt(part) for part in split_plaintext(body, binary=False)]

    our_sealed = iter([sender.seal_json(body) for _ in range(total)])
    their_sealed = iter([seal_theirs() for _ in range(total)])

    def open_ours() -> object:
        frame = None
        for message in next(our_sealed):
            frame = receiver.open(message)
        return frame

    def open_theirs() -> object:
        frame = None
        for message in next(their_sealed):
            frame = reassembler.feed(bytes(b.decrypt(message)))
        return frame

    seal = _interleaved_us(lambda: sender.seal_json(body), seal_theirs, messages, batches)
    opened = _interleaved_us(open_ours, open_theirs, messages, batches)
    return {"seal": _pair(*seal), "open": _pair(*opened)}


def raw_cipher_us(size: int, messages: int, batches: int = 9) -> dict[str, dict[str, float]]:
    """Bare encrypt and decrypt of one ``size``-byte Noise message, no framing."""
    body = os.urandom(size)
    total = messages * batches
    send, recv = CipherState(SUITE, bytes(32)), CipherState(SUITE, bytes(32))
    a, b = _their_connections()
    our_sealed = iter([send.encrypt(body) for _ in range(total)])
    their_sealed = iter([a.encrypt(body) for _ in range(total)])
    enc = _interleaved_us(lambda: send.encrypt(body), lambda: a.encrypt(body), messages, batches)
    dec = _interleaved_us(
        lambda: recv.decrypt(next(our_sealed)), lambda: b.decrypt(next(their_sealed)), messages, batches
    )
    return {"encrypt": _pair(*enc), "decrypt": _pair(*dec)}


# -- report ----------------------------------------------------------------------------------


def run(rounds: int, messages: int) -> dict[str, object]:
    keys = Keys()
    result: dict[str, object] = {}
    for _ in range(20):  # warm up both implementations
        responder_handshake_us("XXpsk2", keys, ours=True)
        responder_handshake_us("XXpsk2", keys, ours=False)
    for pattern in ("XXpsk2", "KKpsk0"):
        ours, theirs = [], []
        for _ in range(rounds):  # interleaved, so load changes hit both alike
            ours.append(responder_handshake_us(pattern, keys, ours=True))
            theirs.append(responder_handshake_us(pattern, keys, ours=False))
        result[f"responder_{pattern}"] = _pair(statistics.median(ours), statistics.median(theirs))
    for label, size in SIZES.items():
        count = max(20, messages // (1 + size // 8192))
        for kind, value in transport_us(size, count).items():
            result[f"{kind}_{label}"] = value
        raw_size = min(size, CHUNK_SIZE)  # one Noise message at most
        for kind, value in raw_cipher_us(raw_size, count).items():
            result[f"raw_{kind}_{raw_size}B"] = value
    ours_cpu = [full_xx_cpu_ms(keys, ours=True) for _ in range(rounds)]
    theirs_cpu = [full_xx_cpu_ms(keys, ours=False) for _ in range(rounds)]
    result["full_xx_cpu_ms"] = {
        "ours_median": round(statistics.median(ours_cpu), 3),
        "ours_mean": round(statistics.fmean(ours_cpu), 3),
        "theirs_median": round(statistics.median(theirs_cpu), 3),
        "goal_ms": 2.0,
    }
    return result


def _pair(ours: float, theirs: float) -> dict[str, float]:
    return {"ours_us": round(ours, 2), "theirs_us": round(theirs, 2), "ratio": round(ours / theirs, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=300, help="handshakes per measurement")
    parser.add_argument("--messages", type=int, default=400, help="1 KiB messages per batch")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    result = run(args.rounds, args.messages)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"thalovant.protocol vs noiseprotocol 0.3.1 ({SUITE}; medians; ratio = ours / theirs)")
    print(f"{'measurement':<34}{'ours µs':>12}{'theirs µs':>12}{'ratio':>8}")
    for name, value in result.items():
        if isinstance(value, dict) and "ratio" in value:
            print(f"{name:<34}{value['ours_us']:>12.2f}{value['theirs_us']:>12.2f}{value['ratio']:>8.3f}")
    cpu = result["full_xx_cpu_ms"]
    assert isinstance(cpu, dict)
    print(
        f"full XXpsk2 handshake, both sides, CPU: ours {cpu['ours_median']:.3f} ms median "
        f"({cpu['ours_mean']:.3f} mean), noiseprotocol {cpu['theirs_median']:.3f} ms; goal < {cpu['goal_ms']} ms"
    )
    print("seal/open = SecureChannel (encrypt + frame / decrypt + deframe); theirs uses the same framing code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
