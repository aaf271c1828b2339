/**
 * Transport framing after the handshake (spec 3.11): marker bytes, chunking, reassembly.
 *
 * Every Noise transport message decrypts to one marker byte followed by a body. Bodies larger
 * than one chunk travel as a first chunk, any number of middle chunks and a last chunk, in order
 * and with nothing else in between. This module neither encrypts nor does I/O.
 */

import { concat } from "./bytes.js";
import { FramingError } from "./errors.js";

/** The first byte of every decrypted transport message. */
export const Marker = {
  JSON: 0x00,
  BINARY: 0x01,
  JSON_FIRST: 0x02,
  BINARY_FIRST: 0x03,
  MIDDLE: 0x04,
  LAST: 0x05,
} as const;

/** Largest body carried by one transport message (plaintext is one byte more, ciphertext 17). */
export const CHUNK_SIZE = 65000;
/** Largest Noise transport message (ciphertext) either side accepts. */
export const MAX_TRANSPORT_MESSAGE = 65535;
/** Largest body a chunked sequence may reassemble to; anything larger kills the session. */
export const MAX_REASSEMBLY = 32 * 1024 * 1024;

/** One complete application frame: a JSON envelope (`binary` false) or a WIRE-1 frame. */
export interface Frame {
  readonly binary: boolean;
  readonly body: Uint8Array;
}

function marked(marker: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 1);
  out[0] = marker;
  out.set(body, 1);
  return out;
}

/**
 * The marker-prefixed plaintexts that carry `body`, in sending order: one complete frame up to
 * `chunkSize` bytes (the empty body included), else a first chunk, middle chunks and a last one.
 */
export function splitPlaintext(body: Uint8Array, binary: boolean, chunkSize: number = CHUNK_SIZE): Uint8Array[] {
  if (chunkSize < 1) throw new RangeError("chunkSize must be positive");
  if (body.length <= chunkSize) return [marked(binary ? Marker.BINARY : Marker.JSON, body)];
  const parts = [marked(binary ? Marker.BINARY_FIRST : Marker.JSON_FIRST, body.subarray(0, chunkSize))];
  let start = chunkSize;
  while (body.length - start > chunkSize) {
    parts.push(marked(Marker.MIDDLE, body.subarray(start, start + chunkSize)));
    start += chunkSize;
  }
  parts.push(marked(Marker.LAST, body.subarray(start)));
  return parts;
}

/**
 * Turns the plaintexts of one direction back into frames, enforcing spec 3.11.
 *
 * `feed` returns a {@link Frame} when a plaintext completes one and `undefined` while a chunked
 * sequence is still open. Any sequencing violation throws {@link FramingError}; the stream is
 * then dead and every later call throws too.
 */
export class Reassembler {
  private parts: Uint8Array[] | undefined;
  private binary = false;
  private size = 0;
  private failed = false;

  /** True while a chunked sequence has begun and not yet ended. */
  get inSequence(): boolean {
    return this.parts !== undefined;
  }

  feed(plaintext: Uint8Array): Frame | undefined {
    if (this.failed) throw new FramingError("the frame stream already failed");
    if (plaintext.length === 0) throw this.error("empty transport plaintext");
    const marker = plaintext[0] as number;
    const body = plaintext.subarray(1);
    if (marker === Marker.JSON || marker === Marker.BINARY) {
      if (this.parts !== undefined) throw this.error("complete frame inside a chunked sequence");
      return { binary: marker === Marker.BINARY, body };
    }
    if (marker === Marker.JSON_FIRST || marker === Marker.BINARY_FIRST) {
      if (this.parts !== undefined) throw this.error("first chunk inside another chunked sequence");
      this.binary = marker === Marker.BINARY_FIRST;
      this.size = body.length;
      this.checkSize();
      this.parts = [body];
      return undefined;
    }
    if (marker === Marker.MIDDLE || marker === Marker.LAST) {
      const parts = this.parts;
      if (parts === undefined) throw this.error("middle or last chunk without a first chunk");
      this.size += body.length;
      this.checkSize();
      parts.push(body);
      if (marker === Marker.MIDDLE) return undefined;
      this.parts = undefined;
      return { binary: this.binary, body: concat(...parts) };
    }
    throw this.error(`unknown marker 0x${marker.toString(16).padStart(2, "0")}`);
  }

  private checkSize(): void {
    if (this.size > MAX_REASSEMBLY) throw this.error(`reassembled frame exceeds ${MAX_REASSEMBLY} bytes`);
  }

  private error(reason: string): FramingError {
    this.failed = true;
    this.parts = undefined;
    return new FramingError(reason);
  }
}
