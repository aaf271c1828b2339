"""Typed errors of the sans-I/O protocol engine.

Every malformed input handed to the engine raises a subclass of :class:`ProtocolError`
and nothing else. Carriers map these to their own refusals (a close code, an HTTP 401,
silence on MQTT); the engine never decides about I/O.
"""


class ProtocolError(Exception):
    """Base class of every error the protocol engine raises."""


class CanonicalJSONError(ProtocolError):
    """A value cannot be serialised as canonical JSON (floats, non-string keys, ...)."""


class HandshakeError(ProtocolError):
    """A Noise handshake message is malformed, out of order, or fails to authenticate."""


class DecryptError(HandshakeError):
    """An AEAD tag did not verify: wrong key, wrong password, tamper, replay or reorder."""


class NegotiationError(ProtocolError):
    """A negotiation message (HELLO, offer, shake) is malformed or out of order."""


class NegotiationAborted(NegotiationError):
    """The hub side decided to abort the session (refusal); carriers signal it as a refusal."""


class ClientKeyRejected(NegotiationAborted):
    """The client's static key contradicts the key pinned for its access key."""


class HubKeyChanged(NegotiationError):
    """The hub's static key differs from the key the client pinned for this endpoint."""


class KKFailed(NegotiationError):
    """A KKpsk0 attempt failed on the client side; the caller retries at once with XXpsk2."""


class NegotiationSuperseded(NegotiationError):
    """On a channel shared across sessions (MQTT's ``<prefix>/out``): a HELLO or offer unlike the
    pair message 1 was built on arrived after message 1 went out. That pair was another session's,
    so the hub cannot read this message 1; the caller retries at once on a fresh carrier session."""


class FramingError(ProtocolError):
    """A transport frame breaks the marker, chunking or size rules."""


class EnvelopeError(ProtocolError):
    """A decrypted JSON envelope is not a valid HiveMind message object."""


class Wire1Error(ProtocolError):
    """A WIRE-1 binary frame cannot be decoded or encoded."""
