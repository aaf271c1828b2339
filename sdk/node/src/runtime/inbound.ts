/**
 * Inbound routing: envelopes from the link become {@link ThalovantEvent} objects (spec 5.1, 7.3).
 *
 * - `hello` and unknown kinds are ignored;
 * - `bus` payloads are delivered as bus events;
 * - a `broadcast` whose inner frame is `bus` and whose `target_site_id` is this client's site
 *   is delivered as a bus event too;
 * - before delivery `context.hivemind_verified_source_peer` is dropped (a hub cannot assert a
 *   verified origin to a client) and `context.destination` becomes `context.source`.
 */

import { ThalovantEvent } from "../events.js";
import type { JsonObject } from "../protocol/bytes.js";
import type { BusMessage, HiveMessage } from "../protocol/envelope.js";

export const VERIFIED_PEER_KEY = "hivemind_verified_source_peer";
export const RECENT_EVENTS = 256;
export const RECENT_MS = 30_000;

/** The context as the client sees it (spec 7.3); the original is left untouched. */
export function normaliseContext(context: JsonObject): JsonObject {
  // built key by key rather than copied and then `delete`d: deleting turns an object into a
  // slow dictionary for every later read of the event's context
  const result: JsonObject = {};
  const redirected = Object.hasOwn(context, "destination");
  for (const key of Object.keys(context)) {
    if (key === VERIFIED_PEER_KEY || key === "destination") continue;
    const value = key === "source" && redirected ? context.destination : context[key];
    if (key === "__proto__") Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
    else result[key] = value;
  }
  if (redirected && !Object.hasOwn(context, "source")) result.source = context.destination;
  return result;
}

export function busEvent(bus: BusMessage): ThalovantEvent {
  return new ThalovantEvent(bus.type, bus.data, normaliseContext(bus.context));
}

/** The bus message an inbound envelope delivers to this client, if any. */
export function busOf(envelope: HiveMessage, siteId: string): BusMessage | undefined {
  if (envelope.msgType === "bus") return envelope.busMessage();
  if (envelope.msgType === "broadcast") {
    const inner = envelope.inner();
    if (inner !== undefined && inner.msgType === "bus" && envelope.targetSiteId === siteId) return inner.busMessage();
  }
  return undefined;
}

/** One remembered event. */
export interface RecentEvent {
  seq: number;
  at: number;
  event: ThalovantEvent;
  consumed: boolean;
}

/**
 * The last few events with a sequence number, so `waitForEvent` called right after a
 * publication still sees what the hub answered in the meantime.
 */
export class RecentEvents {
  private readonly items: RecentEvent[] = [];
  seq = 0;

  add(event: ThalovantEvent): RecentEvent {
    this.seq += 1;
    const item = { seq: this.seq, at: performance.now(), event, consumed: false };
    this.items.push(item);
    if (this.items.length > RECENT_EVENTS) this.items.shift();
    return item;
  }

  since(seq: number): RecentEvent[] {
    const horizon = performance.now() - RECENT_MS;
    return this.items.filter((item) => item.seq > seq && item.at >= horizon);
  }
}
