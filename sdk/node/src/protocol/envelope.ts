/**
 * The HiveMind JSON envelope (spec 5.1) and the OVOS bus message it carries.
 *
 * Parsing is lenient where the spec is: only `msg_type` is required, every other field defaults
 * when missing (or of the wrong JSON type). Anything that is not a UTF-8 JSON object with a
 * string `msg_type` throws {@link EnvelopeError}.
 */

import { fromUtf8, isObject, type JsonObject, utf8 } from "./bytes.js";
import { EnvelopeError } from "./errors.js";

/** Wire numbers of the message types (used by WIRE-1 binary frames). */
export const MESSAGE_TYPES: ReadonlyMap<number, string> = new Map([
  [0, "shake"],
  [1, "bus"],
  [2, "shared_bus"],
  [3, "broadcast"],
  [4, "propagate"],
  [5, "escalate"],
  [6, "hello"],
  [7, "query"],
  [8, "cascade"],
  [9, "ping"],
  [10, "rendezvous"],
  [11, "3rdparty"],
  [12, "bin"],
]);

/** Message type name to wire number; `handshake` is an alias of `shake`, `intercom` has none. */
export const MESSAGE_NUMBERS: ReadonlyMap<string, number> = new Map([
  ...Array.from(MESSAGE_TYPES, ([number, name]) => [name, number] as [string, number]),
  ["handshake", 0],
]);

/** Kinds whose `payload` is a whole inner envelope. */
export const NESTED_TYPES: ReadonlySet<string> = new Set([
  "broadcast",
  "propagate",
  "escalate",
  "intercom",
  "rendezvous",
  "query",
  "cascade",
  "shared_bus",
]);

/** The message type of a wire number; unknown numbers read as `3rdparty`. */
export function messageTypeName(number: number): string {
  return MESSAGE_TYPES.get(number) ?? "3rdparty";
}

/** The wire number of a message type, or `undefined` (`intercom` and unknown names). */
export function messageTypeNumber(name: string): number | undefined {
  return MESSAGE_NUMBERS.get(name);
}

/** An OVOS bus message: `type`, `data` and `context`. */
export interface BusMessage {
  type: string;
  data: JsonObject;
  context: JsonObject;
}

/** Read a bus message leniently: a missing `type` is `""`, non-object data/context `{}`. */
export function busMessageFrom(value: unknown): BusMessage {
  if (!isObject(value)) return { type: "", data: {}, context: {} };
  return {
    type: typeof value.type === "string" ? value.type : "",
    data: isObject(value.data) ? value.data : {},
    context: isObject(value.context) ? value.context : {},
  };
}

/** One HiveMind envelope with its eight fields. */
export class HiveMessage {
  constructor(
    readonly msgType: string,
    readonly payload: JsonObject = {},
    readonly metadata: JsonObject = {},
    readonly route: unknown[] = [],
    readonly node: unknown = null,
    readonly targetSiteId: unknown = null,
    readonly targetPubkey: unknown = null,
    readonly sourcePeer: unknown = null,
  ) {}

  /** A `bus` envelope carrying the bus message `{type, data, context}`. */
  static bus(type: string, data: JsonObject = {}, context: JsonObject = {}): HiveMessage {
    return new HiveMessage("bus", { type, data, context });
  }

  /** The payload read as a bus message (lenient, spec 5.1). */
  busMessage(): BusMessage {
    return busMessageFrom(this.payload);
  }

  /** The nested envelope of a nesting kind whose payload has a string `msg_type`. */
  inner(): HiveMessage | undefined {
    if (NESTED_TYPES.has(this.msgType) && typeof this.payload.msg_type === "string") {
      return envelopeFromObject(this.payload);
    }
    return undefined;
  }

  /** The envelope as a JSON-ready object, always with all eight fields. */
  toObject(): JsonObject {
    return {
      msg_type: this.msgType,
      payload: this.payload,
      metadata: this.metadata,
      route: this.route,
      node: this.node,
      target_site_id: this.targetSiteId,
      target_pubkey: this.targetPubkey,
      source_peer: this.sourcePeer,
    };
  }

  /** Compact UTF-8 JSON of all eight fields; {@link EnvelopeError} if not serialisable. */
  toBytes(): Uint8Array {
    let text: string;
    try {
      text = JSON.stringify(this.toObject());
    } catch (error) {
      throw new EnvelopeError(`envelope is not JSON-serialisable: ${String(error)}`);
    }
    return utf8(text);
  }
}

/** Build an envelope from a parsed JSON value (lenient defaults, spec 5.1). */
export function envelopeFromObject(value: unknown): HiveMessage {
  if (!isObject(value)) throw new EnvelopeError("envelope is not a JSON object");
  const msgType = value.msg_type;
  if (typeof msgType !== "string") throw new EnvelopeError("envelope has no string msg_type");
  return new HiveMessage(
    msgType,
    isObject(value.payload) ? value.payload : {},
    isObject(value.metadata) ? value.metadata : {},
    Array.isArray(value.route) ? value.route : [],
    value.node ?? null,
    value.target_site_id ?? null,
    value.target_pubkey ?? null,
    value.source_peer ?? null,
  );
}

/** Decode UTF-8 JSON that must be an object; {@link EnvelopeError} otherwise. */
export function parseJsonObject(body: Uint8Array | string, what = "envelope"): JsonObject {
  let text: string;
  if (typeof body === "string") {
    text = body;
  } else {
    try {
      text = fromUtf8(body);
    } catch {
      throw new EnvelopeError(`${what} is not valid UTF-8`);
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EnvelopeError(`${what} is not valid JSON`);
  }
  if (!isObject(value)) throw new EnvelopeError(`${what} is not a JSON object`);
  return value;
}

/** Parse one JSON frame body into an envelope (spec 5.1). */
export function parseEnvelope(body: Uint8Array): HiveMessage {
  return envelopeFromObject(parseJsonObject(body));
}
