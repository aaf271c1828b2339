/**
 * WIRE-1 binary frames (spec 5.2): the bitstring carried after marker 0x01 or 0x03.
 *
 * Layout, most significant bit first:
 *
 *     0* 1                      left padding ended by a one bit
 *     v [version:8]             versioned bit, then the version (<= 1) when it is set
 *     type:5                    message type number (spec 5.1 table)
 *     compressed:1              metadata (and a JSON payload) are zlib streams
 *     metalen:8                 metadata length in bytes, as on the wire
 *     metadata                  JSON object
 *     bin:  ptype:4, payload    payload type, then every remaining whole byte, never inflated
 *     else: payload             JSON object (inflated when compressed)
 *
 * The encoder writes the layout of hivemind-bus-client (version 1, left padding to a whole
 * byte, metadata as Python's default `json.dumps`), so its frames match the reference vectors
 * byte for byte. Inflation uses `fflate`, fed in small slices so that the 32 MiB cap holds
 * whatever the compression ratio.
 */

import { Unzlib, zlibSync } from "fflate";

import { concat, type JsonObject, utf8 } from "./bytes.js";
import { HiveMessage, messageTypeName, messageTypeNumber, parseJsonObject } from "./envelope.js";
import { CanonicalJSONError, Wire1Error } from "./errors.js";
import { PYTHON_DEFAULT_STYLE, pythonJson } from "./json.js";

/** Message type number of `bin` frames. */
export const BIN_TYPE = 12;
/** Cap on any zlib inflation of frame content. */
export const MAX_INFLATED = 32 * 1024 * 1024;
/** Binary payload type numbers and the names the SDK gives them. */
export const PAYLOAD_TYPES: ReadonlyMap<number, string> = new Map([
  [1, "raw_audio"],
  [2, "numpy_image"],
  [3, "file"],
  [4, "stt_transcribe"],
  [5, "stt_handle"],
  [6, "tts_audio"],
]);

const MAX_METADATA = 255;
const INFLATE_SLICE = 1024; // deflate expands at most ~1032:1, so one slice adds about 1 MiB

/** The name of a payload type number; unnamed numbers read as `binary:<n>`. */
export function payloadTypeName(number: number): string {
  return PAYLOAD_TYPES.get(number) ?? `binary:${number}`;
}

/**
 * A decoded WIRE-1 frame. For `bin` frames `payload` is the raw bytes and `binType` the 4-bit
 * payload type; for every other type `payload` is the JSON object and `binType` is undefined.
 */
export class Wire1Frame {
  constructor(
    readonly msgType: string,
    readonly metadata: JsonObject,
    readonly payload: Uint8Array | JsonObject,
    readonly binType: number | undefined,
    readonly version: number | undefined,
    readonly compressed: boolean,
  ) {}

  /** The payload type name of a `bin` frame (`binary:<n>` if unnamed), else undefined. */
  get kind(): string | undefined {
    return this.binType === undefined ? undefined : payloadTypeName(this.binType);
  }

  /** A string metadata value; absent, empty or non-string values read as undefined. */
  text(key: string): string | undefined {
    const value = this.metadata[key];
    return typeof value === "string" && value !== "" ? value : undefined;
  }

  get utterance(): string | undefined {
    return this.text("utterance");
  }

  get lang(): string | undefined {
    return this.text("lang");
  }

  get fileName(): string | undefined {
    return this.text("file_name");
  }

  /** The JSON envelope `{msg_type, payload, metadata}` a non-`bin` frame stands for. */
  toEnvelope(): HiveMessage {
    if (this.payload instanceof Uint8Array) throw new Wire1Error("a bin frame carries no JSON envelope");
    return new HiveMessage(this.msgType, this.payload, this.metadata);
  }
}

// -- decoding --------------------------------------------------------------------------------

function inflate(data: Uint8Array): Uint8Array {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let ended = false;
  const stream = new Unzlib((chunk, final) => {
    size += chunk.length;
    if (size > MAX_INFLATED) throw new Wire1Error(`inflated content exceeds ${MAX_INFLATED} bytes`);
    chunks.push(chunk);
    if (final) ended = true;
  });
  try {
    for (let at = 0; at < data.length; at += INFLATE_SLICE) {
      stream.push(data.subarray(at, at + INFLATE_SLICE), at + INFLATE_SLICE >= data.length);
    }
    if (data.length === 0) stream.push(data, true);
  } catch (error) {
    if (error instanceof Wire1Error) throw error;
    throw new Wire1Error(/EOF/i.test(String(error)) ? "truncated zlib stream" : "corrupt zlib stream");
  }
  if (!ended) throw new Wire1Error("truncated zlib stream");
  return concat(...chunks);
}

function jsonObject(data: Uint8Array, what: string): JsonObject {
  try {
    return parseJsonObject(data, what);
  } catch (error) {
    throw new Wire1Error((error as Error).message);
  }
}

/** All whole bytes of `data` starting at absolute bit offset `bit` (tail bits dropped). */
function wholeBytesFrom(data: Uint8Array, bit: number): Uint8Array {
  const start = bit >> 3;
  const shift = bit & 7;
  if (shift === 0) return data.slice(start);
  const count = data.length - start - 1;
  if (count <= 0) return new Uint8Array(0);
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = (((data[start + i] as number) << shift) | ((data[start + i + 1] as number) >> (8 - shift))) & 0xff;
  }
  return out;
}

/** Decode one WIRE-1 frame; every malformation throws {@link Wire1Error}. */
export function decodeFrame(data: Uint8Array): Wire1Frame {
  let first = 0;
  while (first < data.length && data[first] === 0) first += 1;
  if (first === data.length) throw new Wire1Error("no start bit in binary frame");
  const total = data.length * 8;
  let pos = first * 8 + Math.clz32(data[first] as number) - 24 + 1; // the bit after the start bit

  const take = (count: number): number => {
    if (pos + count > total) throw new Wire1Error("binary frame truncated");
    let value = 0;
    for (let i = 0; i < count; i++, pos++) {
      value = (value << 1) | (((data[pos >> 3] as number) >> (7 - (pos & 7))) & 1);
    }
    return value;
  };

  let version: number | undefined;
  if (take(1)) {
    version = take(8);
    if (version > 1) throw new Wire1Error(`unsupported WIRE-1 version ${version}`);
  }
  const typeNumber = take(5);
  const compressed = take(1) === 1;
  const metalen = take(8);
  let rawMeta: Uint8Array = new Uint8Array(metalen);
  for (let i = 0; i < metalen; i++) rawMeta[i] = take(8);
  if (compressed && rawMeta.length > 0) rawMeta = inflate(rawMeta);
  const metadata = rawMeta.length > 0 ? jsonObject(rawMeta, "frame metadata") : {};
  const msgType = messageTypeName(typeNumber);
  if (typeNumber === BIN_TYPE) {
    const binType = take(4);
    return new Wire1Frame(msgType, metadata, wholeBytesFrom(data, pos), binType, version, compressed);
  }
  let body = wholeBytesFrom(data, pos);
  if (compressed) body = inflate(body);
  return new Wire1Frame(msgType, metadata, jsonObject(body, "frame payload"), undefined, version, compressed);
}

// -- encoding --------------------------------------------------------------------------------

function pythonText(value: JsonObject, what: string): Uint8Array {
  try {
    return utf8(pythonJson(value, PYTHON_DEFAULT_STYLE));
  } catch (error) {
    const reason = error instanceof CanonicalJSONError ? error.message : String(error);
    throw new Wire1Error(`${what} is not JSON-serialisable: ${reason}`);
  }
}

function metadataBytes(metadata: JsonObject, compress: boolean | undefined): [Uint8Array, boolean] {
  let raw: Uint8Array = pythonText(metadata, "metadata");
  const compressed = compress ?? raw.length > MAX_METADATA;
  if (compressed) raw = zlibSync(raw);
  if (raw.length > MAX_METADATA) throw new Wire1Error("metadata exceeds 255 bytes even when compressed");
  return [raw, compressed];
}

/** Start bit, header and metadata (plus `tailBits` of `tail`), left-padded to whole bytes. */
function pack(typeNumber: number, compressed: boolean, meta: Uint8Array, tailBits: number, tail: number, versioned: boolean): Uint8Array {
  const bits: number[] = [];
  const put = (value: number, count: number): void => {
    for (let i = count - 1; i >= 0; i--) bits.push((value >> i) & 1);
  };
  put(1, 1);
  if (versioned) {
    put(1, 1);
    put(1, 8);
  } else {
    put(0, 1);
  }
  put(typeNumber, 5);
  put(compressed ? 1 : 0, 1);
  put(meta.length, 8);
  for (const byte of meta) put(byte, 8);
  put(tail, tailBits);
  const padding = (8 - (bits.length % 8)) % 8;
  const all = [...new Array<number>(padding).fill(0), ...bits];
  const out = new Uint8Array(all.length / 8);
  all.forEach((bit, index) => {
    out[index >> 3] = (out[index >> 3] as number) | (bit << (7 - (index & 7)));
  });
  return out;
}

export interface EncodeOptions {
  metadata?: JsonObject;
  /** Compress the metadata; by default only when it would exceed 255 bytes. */
  compress?: boolean;
  /** Write the version field (version 1), as hivemind-bus-client does; default true. */
  versioned?: boolean;
}

/** Encode a `bin` frame; `binType` must fit the 4-bit field (0-15). The payload is never compressed. */
export function encodeBinary(payload: Uint8Array, binType: number, options: EncodeOptions = {}): Uint8Array {
  if (!Number.isInteger(binType) || binType < 0 || binType > 15) {
    throw new Wire1Error(`payload type ${binType} does not fit in 4 bits`);
  }
  const [meta, compressed] = metadataBytes(options.metadata ?? {}, options.compress);
  return concat(pack(BIN_TYPE, compressed, meta, 4, binType, options.versioned ?? true), payload);
}

/** Encode a JSON-carrying message type as a WIRE-1 frame (the payload is compressed with the metadata). */
export function encodeJson(msgType: string, payload: JsonObject, options: EncodeOptions = {}): Uint8Array {
  const number = messageTypeNumber(msgType);
  if (number === undefined || number === BIN_TYPE) {
    throw new Wire1Error(`message type ${JSON.stringify(msgType)} has no JSON WIRE-1 encoding`);
  }
  const [meta, compressed] = metadataBytes(options.metadata ?? {}, options.compress);
  let body: Uint8Array = pythonText(payload, "payload");
  if (compressed) body = zlibSync(body);
  return concat(pack(number, compressed, meta, 0, 0, options.versioned ?? true), body);
}
