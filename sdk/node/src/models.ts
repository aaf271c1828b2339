/**
 * Data-plane result models: the reply of `ask`, the health and the doctor report. Plain data
 * objects; the runtime client builds them, users read and print them.
 */

import { EVENT_OVOS_UTTERANCE_SPEAK, EVENT_SPEAK, THALOVANT_CLAIMED_META_KEY, type DisplayItem, type ThalovantEvent } from "./events.js";
import { isObject, type JsonObject } from "./protocol/bytes.js";

const SPEECH = new Set([EVENT_SPEAK, EVENT_OVOS_UTTERANCE_SPEAK]);
/** Node's `util.inspect` hook, named without importing `node:util` (the browser build shares this file). */
const INSPECT = Symbol.for("nodejs.util.inspect.custom");

function stringsInOrder(values: unknown[]): string[] {
  const seen: string[] = [];
  for (const value of values) if (typeof value === "string" && value !== "" && !seen.includes(value)) seen.push(value);
  return seen;
}

/** What {@link ThalovantReply.fromEvents} is built from. */
export interface ReplyParts {
  text: string;
  events: ThalovantEvent[];
  requestId?: string | undefined;
  sessionId?: string | undefined;
  fragments?: string[];
  mediaEvents?: ThalovantEvent[];
  handled?: boolean;
  failureEvent?: ThalovantEvent | undefined;
  droppedMedia?: number;
}

/**
 * The answer to one `ask`. `text` is the spoken answer (its sentences joined by a space);
 * `events` every correlated event in arrival order; `mediaEvents` the speech and sound events;
 * `handled` is true when the hub finished the request without a failure.
 */
export class ThalovantReply {
  readonly text: string;
  readonly requestId: string | undefined;
  readonly sessionId: string | undefined;
  readonly lang: string | undefined;
  readonly handled: boolean;
  readonly events: ThalovantEvent[];
  readonly fragments: string[];
  readonly mediaEvents: ThalovantEvent[];
  readonly failureEvent: ThalovantEvent | undefined;
  readonly droppedMedia: number;
  readonly pipelineIds: string[];
  readonly skillIds: string[];
  readonly claimed: boolean;

  private constructor(parts: ReplyParts) {
    const events = [...parts.events];
    const first = events[0];
    this.text = parts.text;
    this.requestId = parts.requestId;
    this.sessionId = first?.sessionId ?? parts.sessionId;
    this.lang = first?.lang;
    this.handled = parts.handled ?? false;
    this.events = events;
    this.fragments = [...(parts.fragments ?? (parts.text ? [parts.text] : []))];
    this.mediaEvents = [...(parts.mediaEvents ?? [])];
    this.failureEvent = parts.failureEvent;
    this.droppedMedia = parts.droppedMedia ?? 0;
    this.pipelineIds = stringsInOrder(events.map((event) => event.context.pipeline_id));
    this.skillIds = stringsInOrder(events.map((event) => event.context.skill_id));
    this.claimed = ThalovantReply.isClaimed(events, this.pipelineIds, this.failureEvent !== undefined);
  }

  /** Build a reply and derive `sessionId`, `lang`, `pipelineIds`, `skillIds` and `claimed`. */
  static fromEvents(parts: ReplyParts): ThalovantReply {
    return new ThalovantReply(parts);
  }

  private static isClaimed(events: ThalovantEvent[], pipelineIds: string[], failed: boolean): boolean {
    if (failed) return false;
    for (const event of events) {
      const meta = event.data.meta;
      if (SPEECH.has(event.name) && isObject(meta) && meta[THALOVANT_CLAIMED_META_KEY] === true) return true;
    }
    if (pipelineIds.length === 0) return true;
    return pipelineIds.some((pipeline) => !pipeline.includes("fallback"));
  }

  /**
   * The rich items of the reply (tables, attachments, choices, images) in arrival order; the
   * spoken text is {@link text}. `maxItems` caps the list.
   */
  displayItems(maxItems?: number): DisplayItem[] {
    const items = this.events.flatMap((event) => event.displayItems({ includeText: false }));
    return maxItems === undefined ? items : items.slice(0, Math.max(0, maxItems));
  }

  /** A JSON-ready summary: text, ids, handled and the display items. */
  toJSON(): JsonObject {
    return {
      text: this.text,
      request_id: this.requestId ?? null,
      session_id: this.sessionId ?? null,
      lang: this.lang ?? null,
      handled: this.handled,
      display_items: this.displayItems() as unknown as JsonObject[],
    };
  }

  toString(): string {
    return this.text;
  }
}

/** What {@link ThalovantHealth} is made of. */
export interface HealthFields {
  connected: boolean;
  handshakeComplete: boolean;
  transportAlive: boolean;
  lastError?: string | undefined;
  protocol?: string | undefined;
  endpoint?: string | undefined;
  noisePattern?: string | undefined;
}

/** The link state of a runtime client: `ok` when connected, handshaken, alive and error-free. */
export class ThalovantHealth {
  readonly connected: boolean;
  readonly handshakeComplete: boolean;
  readonly transportAlive: boolean;
  readonly lastError: string | undefined;
  readonly protocol: string | undefined;
  readonly endpoint: string | undefined;
  readonly noisePattern: string | undefined;

  constructor(fields: HealthFields) {
    this.connected = fields.connected;
    this.handshakeComplete = fields.handshakeComplete;
    this.transportAlive = fields.transportAlive;
    this.lastError = fields.lastError;
    this.protocol = fields.protocol;
    this.endpoint = fields.endpoint;
    this.noisePattern = fields.noisePattern;
  }

  get ok(): boolean {
    return this.connected && this.handshakeComplete && this.transportAlive && !this.lastError;
  }

  toJSON(): JsonObject {
    return {
      ok: this.ok,
      connected: this.connected,
      handshake_complete: this.handshakeComplete,
      transport_alive: this.transportAlive,
      last_error: this.lastError ?? null,
      protocol: this.protocol ?? null,
      endpoint: this.endpoint ?? null,
      noise_pattern: this.noisePattern ?? null,
    };
  }

  toString(): string {
    const parts = [
      `health: ${this.ok ? "ok" : "NOT OK"}`,
      `protocol=${this.protocol ?? "?"}`,
      `connected=${this.connected}`,
      `handshake_complete=${this.handshakeComplete}`,
      `transport_alive=${this.transportAlive}`,
    ];
    if (this.noisePattern) parts.push(`noise=${this.noisePattern}`);
    if (this.endpoint) parts.push(`endpoint=${this.endpoint}`);
    if (this.lastError) parts.push(`last_error=${this.lastError}`);
    return parts.join(" ");
  }

  /** `console.log(health)` in Node.js prints the same line as `String(health)`. */
  [INSPECT](): string {
    return this.toString();
  }
}

/** One diagnostic check: its name, whether it passed, and what it found. */
export interface ThalovantDoctorCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** The result of `doctor()`: the checks in order; `ok` when every check passed. */
export class ThalovantDoctorReport {
  constructor(readonly checks: ThalovantDoctorCheck[] = []) {}

  get ok(): boolean {
    return this.checks.length > 0 && this.checks.every((check) => check.ok);
  }

  toJSON(): JsonObject {
    return { ok: this.ok, checks: this.checks.map((c) => ({ name: c.name, ok: c.ok, detail: c.detail })) };
  }

  toString(): string {
    const width = Math.max(0, ...this.checks.map((check) => check.name.length));
    const lines = this.checks.map((c) => `[${(c.ok ? "ok" : "FAIL").padStart(4)}] ${c.name.padEnd(width)}  ${c.detail}`);
    lines.push(this.ok ? "doctor: all checks passed" : "doctor: some checks failed");
    return lines.join("\n");
  }

  [INSPECT](): string {
    return this.toString();
  }
}
