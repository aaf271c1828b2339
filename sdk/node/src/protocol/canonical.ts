/**
 * Canonical JSON and the Noise prologue (data-plane spec 3.6).
 *
 * Canonical JSON is Python's `json.dumps(obj, sort_keys=True, separators=(",", ":"),
 * ensure_ascii=False)` encoded as UTF-8 (see `json.ts` for the accepted values). Both sides of a
 * handshake must produce the same bytes, or the handshake fails exactly like a wrong password.
 */

import { utf8 } from "./bytes.js";
import { CANONICAL_STYLE, pythonJson } from "./json.js";

/** The canonical JSON text of `value`. */
export function canonicalJsonText(value: unknown): string {
  return pythonJson(value, CANONICAL_STYLE);
}

/** The canonical UTF-8 serialisation of `value`. */
export function canonicalJson(value: unknown): Uint8Array {
  return utf8(canonicalJsonText(value));
}

/**
 * canonical(HELLO payload) || canonical(offer payload) || UTF-8 protocol name.
 *
 * Both payloads are the whole `payload` objects as sent or parsed (spec 3.6).
 */
export function buildPrologue(
  helloPayload: Record<string, unknown>,
  offerPayload: Record<string, unknown>,
  protocolName: string,
): Uint8Array {
  return utf8(canonicalJsonText(helloPayload) + canonicalJsonText(offerPayload) + protocolName);
}
