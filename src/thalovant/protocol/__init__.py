"""The sans-I/O data-plane protocol engine, shared by the SDK (client role) and the hub.

Bytes and parsed JSON in, bytes and events out: no sockets, no asyncio, no clocks.
"""

from thalovant.protocol.errors import (
    CanonicalJSONError,
    ClientKeyRejected,
    DecryptError,
    EnvelopeError,
    FramingError,
    HandshakeError,
    HubKeyChanged,
    KKFailed,
    NegotiationAborted,
    NegotiationError,
    NegotiationSuperseded,
    ProtocolError,
    Wire1Error,
)

__all__ = [
    "CanonicalJSONError",
    "ClientKeyRejected",
    "DecryptError",
    "EnvelopeError",
    "FramingError",
    "HandshakeError",
    "HubKeyChanged",
    "KKFailed",
    "NegotiationAborted",
    "NegotiationError",
    "NegotiationSuperseded",
    "ProtocolError",
    "Wire1Error",
]

# -- cryptographic core: canonical JSON and prologue, PSK, Noise (spec 3.5-3.7)
from thalovant.protocol.canonical import build_prologue, canonical_json
from thalovant.protocol.noise import (
    PATTERNS,
    SUITES,
    CipherState,
    HandshakeState,
    KeyPair,
    protocol_name,
)
from thalovant.protocol.psk import derive_psk

__all__ += [
    "PATTERNS",
    "SUITES",
    "CipherState",
    "HandshakeState",
    "KeyPair",
    "build_prologue",
    "canonical_json",
    "derive_psk",
    "protocol_name",
]

# -- framing, secure channel, envelopes, WIRE-1 and the negotiation machines (spec 3, 5)
from thalovant.protocol.channel import SecureChannel  # noqa: E402
from thalovant.protocol.envelope import BusMessage, HiveMessage, parse_envelope  # noqa: E402
from thalovant.protocol.framing import (  # noqa: E402
    CHUNK_SIZE,
    MAX_REASSEMBLY,
    MAX_TRANSPORT_MESSAGE,
    Frame,
    Marker,
    Reassembler,
    split_plaintext,
)
from thalovant.protocol.negotiation import ClientHello, ClientNegotiation, HubNegotiation  # noqa: E402
from thalovant.protocol.wire1 import Wire1Frame, decode_frame, encode_binary, encode_json  # noqa: E402

__all__ += [
    "CHUNK_SIZE",
    "MAX_REASSEMBLY",
    "MAX_TRANSPORT_MESSAGE",
    "BusMessage",
    "ClientHello",
    "ClientNegotiation",
    "Frame",
    "HiveMessage",
    "HubNegotiation",
    "Marker",
    "Reassembler",
    "SecureChannel",
    "Wire1Frame",
    "decode_frame",
    "encode_binary",
    "encode_json",
    "parse_envelope",
    "split_plaintext",
]
