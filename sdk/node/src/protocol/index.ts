/**
 * The sans-I/O data-plane protocol engine: bytes and parsed JSON in, bytes and events out. No
 * sockets, no timers, no clocks.
 */

export * from "./errors.js";
export { buildPrologue, canonicalJson, canonicalJsonText } from "./canonical.js";
export { CANONICAL_STYLE, PYTHON_DEFAULT_STYLE, pythonJson } from "./json.js";
export {
  CipherState,
  HandshakeState,
  KeyPair,
  PATTERNS,
  SUITES,
  protocolName,
  type NoisePattern,
  type NoiseSuite,
} from "./noise.js";
export { derivePsk, pskDeriverWith, wasmArgon2id, type Argon2id, type PskDeriver } from "./psk.js";
export { noblePrimitives, useNoisePrimitives, type Aead, type NoisePrimitives } from "./primitives.js";
export { SecureChannel } from "./channel.js";
export { HiveMessage, busMessageFrom, envelopeFromObject, parseEnvelope, parseJsonObject, type BusMessage } from "./envelope.js";
export { CHUNK_SIZE, MAX_REASSEMBLY, MAX_TRANSPORT_MESSAGE, Marker, Reassembler, splitPlaintext, type Frame } from "./framing.js";
export { ClientNegotiation, selectNoise, type ClientNegotiationOptions } from "./negotiation.js";
export { Wire1Frame, decodeFrame, encodeBinary, encodeJson, payloadTypeName } from "./wire1.js";
