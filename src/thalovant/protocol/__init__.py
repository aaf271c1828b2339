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
    "ProtocolError",
    "Wire1Error",
]
