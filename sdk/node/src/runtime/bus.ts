/**
 * Outgoing bus messages: ids, the runtime context (spec 6.1) and utterance contexts (6.2).
 * Pure functions over plain objects, so the rules are testable without a hub.
 */

import { CONVERSATION_SESSION_FIELDS } from "../events.js";
import { isObject, type JsonObject, toHex } from "../protocol/bytes.js";

export const UTTERANCE = "recognizer_loop:utterance";
export const DEFAULT_DESTINATION = "HiveMind";

/** Random bytes are drawn a pool at a time (each byte used once): one `getRandomValues` call serves 256 ids. */
const POOL_BYTES = 4096;
let pool = new Uint8Array(0);
let poolAt = 0;

function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    pool = crypto.getRandomValues(new Uint8Array(POOL_BYTES));
    poolAt = 0;
  }
  const out = toHex(pool.subarray(poolAt, poolAt + bytes));
  poolAt += bytes;
  return out;
}

/** A deep copy of a JSON value (what a parsed event holds); much cheaper than structuredClone. */
function copyJson(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map(copyJson);
  const out: JsonObject = {};
  for (const key of Object.keys(value)) {
    const copy = copyJson((value as JsonObject)[key]);
    // a JSON "__proto__" key is an own property, as structuredClone would keep it
    if (key === "__proto__") Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true });
    else out[key] = copy;
  }
  return out;
}

/** A new connection SID: `thalovant-node-<32 hex>` (never `default`). */
export function connectionSessionId(): string {
  return `thalovant-node-${randomHex(16)}`;
}

export function newRequestId(): string {
  return `thalovant-request-${randomHex(16)}`;
}

export function newConversationSessionId(): string {
  return `thalovant-session-${randomHex(16)}`;
}

/**
 * A copy of a caller's context that may be changed at the top level and in `session` (both are
 * copied); nested values are shared, never mutated, and serialised before the caller regains control.
 */
function ownCopy(value: JsonObject | undefined): JsonObject {
  return value === undefined ? {} : { ...value };
}

/** What every outgoing bus context gets from the client. */
export interface RuntimeContextOptions {
  userAgent: string;
  connectionSid: string;
  siteId: string;
  identityMetadata?: JsonObject | undefined;
}

/**
 * The context every outgoing bus message gets (spec 6.1); keys are added only when missing.
 * `source` and `platform` default to the user agent, `destination` to `HiveMind`; the session
 * gets the connection SID when it has none (or `default`) and the identity's site id; identity
 * metadata is merged under `metadata` with the caller's keys winning.
 */
export function runtimeContext(context: JsonObject | undefined, options: RuntimeContextOptions): JsonObject {
  const result = ownCopy(context);
  if (!("source" in result)) result.source = options.userAgent;
  if (!("platform" in result)) result.platform = options.userAgent;
  if (!("destination" in result)) result.destination = DEFAULT_DESTINATION;
  const session: JsonObject = isObject(result.session) ? { ...result.session } : {};
  const topSid = result.session_id;
  if (!session.session_id || session.session_id === "default") {
    session.session_id = typeof topSid === "string" && topSid && topSid !== "default" ? topSid : options.connectionSid;
  }
  if (!session.site_id) session.site_id = options.siteId;
  result.session = session;
  const metadata = options.identityMetadata;
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    result.metadata = { ...metadata, ...(isObject(result.metadata) ? result.metadata : {}) };
  }
  return result;
}

/** What {@link utteranceMessage} builds from. */
export interface UtteranceOptions {
  lang: string;
  sessionId?: string | undefined;
  requestId?: string | undefined;
  context?: JsonObject | undefined;
  siteId: string;
  /** The conversation fields remembered for this session (spec 6.6). */
  carried?: JsonObject | undefined;
}

/**
 * `[requestId, data, context]` of a `recognizer_loop:utterance` (spec 6.2), before the runtime
 * context of {@link runtimeContext} is applied. Each carried field is copied into the session
 * unless the caller's context already sets it.
 */
export function utteranceMessage(text: string, options: UtteranceOptions): [string, JsonObject, JsonObject] {
  const rid = options.requestId || newRequestId();
  const data: JsonObject = { utterances: [text.trim()], lang: options.lang };
  const ctx = ownCopy(options.context);
  const session: JsonObject = isObject(ctx.session) ? { ...ctx.session } : {};
  const explicit = options.sessionId || (typeof ctx.session_id === "string" ? ctx.session_id : undefined);
  if (explicit) session.session_id = explicit;
  if (!session.site_id) session.site_id = options.siteId;
  if (!("lang" in session)) session.lang = options.lang;
  session.request_id = rid;
  for (const [key, value] of Object.entries(options.carried ?? {})) {
    if (!(key in session)) session[key] = value;
  }
  ctx.session = session;
  ctx.request_id = rid;
  ctx.thalovant_request_id = rid;
  return [rid, data, ctx];
}

/** The truthy conversation fields of a handled event's session (spec 6.6). */
export function carriedFields(session: JsonObject): JsonObject {
  const fields: JsonObject = {};
  for (const key of CONVERSATION_SESSION_FIELDS) {
    const value = session[key];
    const truthy = Array.isArray(value) ? value.length > 0 : isObject(value) ? Object.keys(value).length > 0 : Boolean(value);
    if (truthy) fields[key] = copyJson(value);
  }
  return fields;
}
