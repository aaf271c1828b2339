/**
 * The secure channel of an established session: Noise transport plus framing (spec 3.11).
 *
 * `sealJson` / `sealBinary` turn one application body into the transport messages that carry
 * it (each at most 65535 bytes); `open` decrypts one transport message and returns the frame it
 * completes. Messages must be opened in the order they were sealed: nonces are sequential.
 */

import { FramingError } from "./errors.js";
import { type Frame, MAX_TRANSPORT_MESSAGE, Reassembler, splitPlaintext } from "./framing.js";
import type { CipherState } from "./noise.js";

/**
 * Both directions of one session's transport. Decryption failures throw `DecryptError`;
 * framing violations and oversize messages throw {@link FramingError}. Either is fatal.
 */
export class SecureChannel {
  private readonly reassembler = new Reassembler();

  constructor(
    private readonly sendState: CipherState,
    private readonly recvState: CipherState,
  ) {}

  /** Transport messages carrying one JSON envelope body (chunked above 65000 bytes). */
  sealJson(body: Uint8Array): Uint8Array[] {
    return splitPlaintext(body, false).map((part) => this.sendState.encrypt(part));
  }

  /** Transport messages carrying one WIRE-1 frame (chunked above 65000 bytes). */
  sealBinary(body: Uint8Array): Uint8Array[] {
    return splitPlaintext(body, true).map((part) => this.sendState.encrypt(part));
  }

  /** Decrypt one transport message; the frame it completes, else `undefined`. */
  open(message: Uint8Array): Frame | undefined {
    if (message.length > MAX_TRANSPORT_MESSAGE) {
      throw new FramingError(`transport message of ${message.length} bytes exceeds ${MAX_TRANSPORT_MESSAGE}`);
    }
    return this.reassembler.feed(this.recvState.decrypt(message));
  }
}
