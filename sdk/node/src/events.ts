/**
 * Event names, constants and {@link ThalovantEvent}, the bus event the client delivers.
 *
 * The names and values are those of dataplane.md section 8; the accessors follow section 7.2
 * and the request-id order and display-item rules of section 6.3.
 */

import { isObject, type JsonObject } from "./protocol/bytes.js";

export const EVENT_RECOGNIZER_LOOP_UTTERANCE = "recognizer_loop:utterance";
export const EVENT_SPEAK = "speak";
export const EVENT_OVOS_UTTERANCE_SPEAK = "ovos.utterance.speak";
export const EVENT_UTTERANCE_HANDLED = "ovos.utterance.handled";
export const EVENT_INTENT_FAILURE = "complete_intent_failure";
export const EVENT_INTENT_UNMATCHED = "ovos.intent.unmatched";
export const EVENT_POLICY_DENIED = "hive.policy.denied";
export const EVENT_QUERY_TIMEOUT = "hive.query.timeout";
export const EVENT_QUERY_COMPLETE = "hive.query.complete";
export const EVENT_AUDIO_QUEUE = "mycroft.audio.queue";
export const EVENT_INTENT_LIST = "ovos.intent.list";
export const EVENT_INTENT_LIST_RESPONSE = "ovos.intent.list.response";
export const EVENT_INTENT_DESCRIBE = "ovos.intent.describe";
export const EVENT_INTENT_DESCRIBE_RESPONSE = "ovos.intent.describe.response";

export const HIVE_BROADCAST = "broadcast";
export const HIVE_PROPAGATE = "propagate";
export const HIVE_ESCALATE = "escalate";
export const HIVE_INTERCOM = "intercom";
export const HIVE_RENDEZVOUS = "rendezvous";
export const HIVE_KINDS = [HIVE_BROADCAST, HIVE_PROPAGATE, HIVE_ESCALATE, HIVE_INTERCOM, HIVE_RENDEZVOUS] as const;

export const HOME_REQUEST = "thalovant.home.request";
export const HOME_RESPONSE = "thalovant.home.response";
export const THALOVANT_CLAIMED_META_KEY = "thalovant_claimed";
/** The order carriers are tried in when none is forced. */
export const DEFAULT_PROTOCOL_PREFERENCE = ["wss", "https", "mqtt"] as const;

export const FAILURE_EVENTS: ReadonlySet<string> = new Set([
  EVENT_INTENT_FAILURE,
  EVENT_INTENT_UNMATCHED,
  EVENT_POLICY_DENIED,
  EVENT_QUERY_TIMEOUT,
]);
export const MAX_AUDIO_CLIP_BYTES = 4 * 1024 * 1024;
export const MAX_REPLY_MEDIA_BYTES = 16 * 1024 * 1024;
/** The session fields a conversation carries to its next turn (dataplane.md 6.6). */
export const CONVERSATION_SESSION_FIELDS = [
  "converse_handlers",
  "active_handlers",
  "active_skills",
  "context",
  "utterance_states",
  "response_mode",
] as const;

const REQUEST_ID_KEYS = ["request_id", "thalovant_request_id", "correlation_id"];
const TAG = /<[^<>]*>/g;
const RICH_KEYS = ["rich_media_data", "rich_media", "display"];
const DIRECT_RICH_KEYS = ["table", "attachment", "attachments", "quick_replies", "buttons", "image", "images"];

function record(value: unknown): JsonObject {
  return isObject(value) ? value : {};
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/**
 * The request id of an event in the order of dataplane.md 6.3: the context, then its `session`,
 * then the data; each place tries `request_id`, `thalovant_request_id` and `correlation_id`.
 */
export function requestIdOf(data: JsonObject, context: JsonObject): string | undefined {
  for (const place of [context, record(context.session), data]) {
    for (const key of REQUEST_ID_KEYS) {
      const found = nonEmpty(place[key]);
      if (found) return found;
    }
  }
  return undefined;
}

function eventText(data: JsonObject): string | undefined {
  const direct = nonEmpty(data.utterance) ?? nonEmpty(data.text);
  if (direct) return direct;
  const utterances = data.utterances;
  if (Array.isArray(utterances) && typeof utterances[0] === "string") return utterances[0];
  return undefined;
}

// ---------------------------------------------------------------------------- display items

/** What a UI can show: `kind` is `text`, `table`, `attachment`, `image` or `choices`. */
export interface DisplayItem {
  kind: "text" | "table" | "attachment" | "image" | "choices";
  text?: string;
  title?: string;
  url?: string;
  silent?: boolean;
  table?: unknown;
  choices?: { title: unknown; payload: unknown }[];
  data?: JsonObject;
}

function parseRich(value: unknown): JsonObject | undefined {
  if (isObject(value)) return value;
  if (typeof value === "string" && value.trim() !== "") {
    try {
      const parsed: unknown = JSON.parse(value);
      return isObject(parsed) ? parsed : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function isBlank(value: unknown): boolean {
  return (
    value === undefined ||
    value === null ||
    value === "" ||
    (Array.isArray(value) && value.length === 0) ||
    (isObject(value) && Object.keys(value).length === 0)
  );
}

/**
 * The rich media of an event's data: `rich_media_data`, `rich_media` or `display` (an object or
 * a JSON string), else the direct keys; undefined when there is none.
 */
export function richMediaOf(data: JsonObject): JsonObject | undefined {
  for (const key of RICH_KEYS) {
    const found = parseRich(data[key]);
    if (found !== undefined) return { ...found };
  }
  const direct: JsonObject = {};
  for (const key of DIRECT_RICH_KEYS) if (!isBlank(data[key])) direct[key] = data[key];
  return Object.keys(direct).length > 0 ? direct : undefined;
}

function urlOf(entry: JsonObject): string | undefined {
  const payload = record(entry.payload);
  for (const value of [payload.src, payload.url, entry.src, entry.url]) {
    const found = nonEmpty(value);
    if (found) return found;
  }
  return undefined;
}

function richItems(rich: JsonObject): DisplayItem[] {
  const items: DisplayItem[] = [];
  const table = rich.table;
  if (!isBlank(table)) {
    const title = isObject(table) ? nonEmpty(table.title) : undefined;
    items.push({ kind: "table", ...(title ? { title } : {}), table });
  }
  const attachments: unknown[] = [];
  if (isObject(rich.attachment)) attachments.push(rich.attachment);
  if (Array.isArray(rich.attachments)) attachments.push(...rich.attachments);
  for (const entry of attachments) {
    if (!isObject(entry)) continue;
    const title = nonEmpty(entry.title);
    const url = urlOf(entry);
    items.push({
      kind: entry.type === "image" ? "image" : "attachment",
      ...(title ? { title } : {}),
      ...(url ? { url } : {}),
      ...(typeof entry.type === "string" ? { data: { type: entry.type } } : {}),
    });
  }
  const choices: { title: unknown; payload: unknown }[] = [];
  for (const key of ["quick_replies", "buttons"]) {
    const entries = rich[key];
    if (!Array.isArray(entries)) continue;
    for (const entry of entries) {
      if (typeof entry === "string" && entry !== "") {
        choices.push({ title: entry, payload: entry });
      } else if (isObject(entry)) {
        const titleKey = ["title", "label", "text"].find((k) => nonEmpty(entry[k]));
        const title = titleKey !== undefined ? entry[titleKey] : null;
        const payloadKey = ["payload", "value"].find((k) => entry[k] !== undefined && entry[k] !== null);
        const payload = payloadKey !== undefined ? entry[payloadKey] : title;
        if (title !== null || (payload !== null && payload !== undefined)) choices.push({ title, payload });
      }
    }
  }
  if (choices.length > 0) items.push({ kind: "choices", choices });
  const images: unknown[] = [];
  if (rich.image !== undefined && rich.image !== null && rich.image !== "") images.push(rich.image);
  if (Array.isArray(rich.images)) images.push(...rich.images);
  for (const image of images) {
    if (typeof image === "string" && image !== "") {
      items.push({ kind: "image", url: image });
    } else if (isObject(image)) {
      const url = urlOf(image);
      const title = nonEmpty(image.title);
      if (url) items.push({ kind: "image", url, ...(title ? { title } : {}) });
    }
  }
  return items;
}

/**
 * The display items of one event (dataplane.md 6.3): its text (tags stripped; silent when
 * `data.silent` is set or the event is `write`) and then its rich media.
 */
export function displayItemsFrom(name: string, data: JsonObject, includeText = true): DisplayItem[] {
  const items: DisplayItem[] = [];
  if (includeText) {
    const raw = eventText(data);
    if (raw) {
      const text = raw.replace(TAG, " ").trim().split(/\s+/).join(" ");
      if (text) items.push({ kind: "text", text, silent: Boolean(data.silent) || name === "write" });
    }
  }
  const rich = richMediaOf(data);
  if (rich) items.push(...richItems(rich));
  return items;
}

// ---------------------------------------------------------------------------- the event

/** A bus event from the hub: `name` (the bus type), `data` and `context`. */
export class ThalovantEvent {
  readonly data: JsonObject;
  readonly context: JsonObject;

  constructor(
    readonly name: string,
    data: unknown = {},
    context: unknown = {},
  ) {
    this.data = record(data);
    this.context = record(context);
  }

  /** Alias of {@link name} (the OVOS message type). */
  get type(): string {
    return this.name;
  }

  /** `data.utterance`, else `data.text`, else the first of `data.utterances`. */
  get text(): string | undefined {
    return eventText(this.data);
  }

  get sessionId(): string | undefined {
    return nonEmpty(record(this.context.session).session_id) ?? nonEmpty(this.context.session_id);
  }

  get siteId(): string | undefined {
    return nonEmpty(record(this.context.session).site_id) ?? nonEmpty(this.context.site_id);
  }

  /** The request id in the order of dataplane.md 6.3. */
  get requestId(): string | undefined {
    return requestIdOf(this.data, this.context);
  }

  get lang(): string | undefined {
    return nonEmpty(this.data.lang) ?? nonEmpty(this.context.lang) ?? nonEmpty(record(this.context.session).lang);
  }

  get isFailure(): boolean {
    return FAILURE_EVENTS.has(this.name);
  }

  /** The event's rich media object (dataplane.md 6.3), or undefined. */
  get richMedia(): JsonObject | undefined {
    return richMediaOf(this.data);
  }

  /** The event's display items: its text, then tables, attachments, choices, images. */
  displayItems(options: { includeText?: boolean } = {}): DisplayItem[] {
    return displayItemsFrom(this.name, this.data, options.includeText ?? true);
  }

  toJSON(): JsonObject {
    return { name: this.name, data: this.data, context: this.context };
  }

  toString(): string {
    const text = this.text;
    return text ? `${this.name}: ${text}` : this.name;
  }
}
