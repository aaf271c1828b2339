/**
 * Typed errors of the sans-I/O protocol engine.
 *
 * Every malformed input handed to the engine throws a subclass of {@link ProtocolError} and
 * nothing else. Carriers map these to their own refusals; the engine never decides about I/O.
 */

/** Base class of every error the protocol engine throws. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/** A value cannot be serialised as canonical JSON (non-integer numbers, lone surrogates, ...). */
export class CanonicalJSONError extends ProtocolError {
  override name = "CanonicalJSONError";
}

/** A Noise handshake message is malformed, out of order, or fails to authenticate. */
export class HandshakeError extends ProtocolError {
  override name = "HandshakeError";
}

/** An AEAD tag did not verify: wrong key, wrong password, tamper, replay or reorder. */
export class DecryptError extends HandshakeError {
  override name = "DecryptError";
}

/** A negotiation message (HELLO, offer, shake) is malformed or out of order. */
export class NegotiationError extends ProtocolError {
  override name = "NegotiationError";
}

/** The hub side decided to abort the session (a refusal). */
export class NegotiationAborted extends NegotiationError {
  override name = "NegotiationAborted";
}

/** The client's static key contradicts the key pinned for its access key. */
export class ClientKeyRejected extends NegotiationAborted {
  override name = "ClientKeyRejected";
}

/** The hub's static key differs from the key the client pinned for this endpoint. */
export class HubKeyChanged extends NegotiationError {
  override name = "HubKeyChanged";
}

/** A KKpsk0 attempt failed on the client side; the caller retries at once with XXpsk2. */
export class KKFailed extends NegotiationError {
  override name = "KKFailed";
}

/**
 * On a channel shared across sessions (MQTT): a HELLO or offer unlike the one message 1 was
 * built on arrived after message 1 went out. The pair it was built on was another session's, so
 * the hub cannot read this message 1; the caller retries at once on a fresh carrier session.
 */
export class NegotiationSuperseded extends NegotiationError {
  override name = "NegotiationSuperseded";
}

/** A transport frame breaks the marker, chunking or size rules. */
export class FramingError extends ProtocolError {
  override name = "FramingError";
}

/** A decrypted JSON envelope is not a valid HiveMind message object. */
export class EnvelopeError extends ProtocolError {
  override name = "EnvelopeError";
}

/** A WIRE-1 binary frame cannot be decoded or encoded. */
export class Wire1Error extends ProtocolError {
  override name = "Wire1Error";
}
