//! Typed errors of the protocol engine. Carriers and the link map them to the SDK's
//! [`crate::Error`]; the engine never decides about I/O.

/// Every error the protocol engine returns on bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A value cannot be written as canonical JSON.
    #[error("canonical JSON: {0}")]
    CanonicalJson(String),
    /// A Noise handshake message is malformed, out of order, or the handshake cannot run.
    #[error("Noise handshake: {0}")]
    Handshake(String),
    /// An AEAD tag did not verify: wrong key, wrong password, tamper, replay or reorder.
    #[error("Noise message failed to authenticate: {0}")]
    Decrypt(String),
    /// A negotiation message (HELLO, offer, shake) is malformed or out of order.
    #[error("{0}")]
    Negotiation(String),
    /// The hub's static key differs from the key pinned for this endpoint.
    #[error("{0}")]
    HubKeyChanged(String),
    /// A KKpsk0 attempt failed; the caller retries at once with XXpsk2.
    #[error("{0}")]
    KkFailed(String),
    /// On a channel shared across sessions (MQTT): a HELLO or offer unlike the pair message 1
    /// was built on arrived after message 1 went out. That pair was another session's, so the
    /// hub cannot read this message 1; the caller retries at once on a fresh carrier session.
    #[error("{0}")]
    NegotiationSuperseded(String),
    /// A transport frame breaks the marker, chunking or size rules.
    #[error("framing: {0}")]
    Framing(String),
    /// A decrypted JSON frame is not a valid HiveMind envelope.
    #[error("envelope: {0}")]
    Envelope(String),
    /// A WIRE-1 binary frame cannot be decoded or encoded.
    #[error("WIRE-1: {0}")]
    Wire1(String),
}

pub(crate) type Result<T> = std::result::Result<T, ProtocolError>;
