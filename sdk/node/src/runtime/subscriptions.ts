/**
 * Bus subscriptions: handlers and queues keyed by event name, fed by the link's reader.
 *
 * Delivery happens in arrival order. A handler that throws (or whose promise rejects) is logged
 * and kept. `"*"` subscribes to every bus event.
 *
 * Filtering (spec 7.4): a subscription with a request id (or session id) accepts an event whose
 * request id (session id) is equal, or an event that has none; request ids are compared first.
 */

import { ThalovantTimeoutError } from "../errors.js";
import type { ThalovantEvent } from "../events.js";
import { log } from "./log.js";

export const ANY_EVENT = "*";

/** A function called with each matching event. */
export type EventHandler = (event: ThalovantEvent) => unknown;

/** Spec 7.4: by request id when both sides have one, else by session id, else accept. */
export function eventMatches(event: ThalovantEvent, requestId?: string, sessionId?: string): boolean {
  const eventRequest = event.requestId;
  if (requestId && eventRequest) return eventRequest === requestId;
  const eventSession = event.sessionId;
  if (sessionId && eventSession) return eventSession === sessionId;
  return true;
}

/** Filters of one subscription. */
export interface SubscriptionFilter {
  requestId?: string | undefined;
  sessionId?: string | undefined;
}

/** A live registration; {@link close} removes it (idempotent). */
export class Subscription {
  private registry: SubscriptionRegistry | undefined;

  constructor(
    readonly name: string,
    readonly handler: EventHandler,
    readonly filter: SubscriptionFilter,
    registry: SubscriptionRegistry,
  ) {
    this.registry = registry;
  }

  get active(): boolean {
    return this.registry !== undefined;
  }

  close(): void {
    const registry = this.registry;
    this.registry = undefined;
    registry?.remove(this);
  }
}

/** Name to subscriptions. */
export class SubscriptionRegistry {
  private readonly byName = new Map<string, Subscription[]>();

  add(name: string, handler: EventHandler, filter: SubscriptionFilter = {}): Subscription {
    const sub = new Subscription(name, handler, filter, this);
    const list = this.byName.get(name);
    if (list === undefined) this.byName.set(name, [sub]);
    else list.push(sub);
    return sub;
  }

  remove(sub: Subscription): void {
    const list = this.byName.get(sub.name);
    if (list === undefined) return;
    const index = list.indexOf(sub);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.byName.delete(sub.name);
  }

  /** Hand `event` to every matching subscription of its name and of `*`. */
  deliver(event: ThalovantEvent): void {
    const targets = [...(this.byName.get(event.name) ?? []), ...(this.byName.get(ANY_EVENT) ?? [])];
    for (const sub of targets) {
      if (!eventMatches(event, sub.filter.requestId, sub.filter.sessionId)) continue;
      try {
        const result = sub.handler(event);
        if (result instanceof Promise) {
          result.catch((error: unknown) => log.error(`An async handler for ${JSON.stringify(sub.name)} failed: ${String(error)}`));
        }
      } catch (error) {
        log.error(`A handler for ${JSON.stringify(sub.name)} threw; it stays subscribed: ${String(error)}`);
      }
    }
  }

  clear(): void {
    this.byName.clear();
  }
}

/** A queue fed by a subscription, for `waitForEvent`. */
export class EventQueue {
  private readonly items: (ThalovantEvent | Error)[] = [];
  private waiter: ((item: ThalovantEvent | Error) => void) | undefined;
  private readonly sub: Subscription;

  constructor(
    registry: SubscriptionRegistry,
    readonly name: string,
    filter: SubscriptionFilter = {},
  ) {
    this.sub = registry.add(name, (event) => this.put(event), filter);
  }

  private put(item: ThalovantEvent | Error): void {
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      waiter(item);
    } else {
      this.items.push(item);
    }
  }

  /** Queue an event that arrived before this queue existed. */
  feedEarly(event: ThalovantEvent): void {
    this.put(event);
  }

  /** Wake the reader with `error` (the link was lost, the client closed). */
  fail(error: Error): void {
    this.put(error);
  }

  /** The next event; {@link ThalovantTimeoutError} after `timeoutMs`. */
  get(timeoutMs: number): Promise<ThalovantEvent> {
    const first = this.items.shift();
    if (first !== undefined) return first instanceof Error ? Promise.reject(first) : Promise.resolve(first);
    return new Promise<ThalovantEvent>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new ThalovantTimeoutError(`No ${JSON.stringify(this.name)} event within ${timeoutMs / 1000} s.`));
      }, Math.max(0, timeoutMs));
      this.waiter = (item) => {
        clearTimeout(timer);
        if (item instanceof Error) reject(item);
        else resolve(item);
      };
    });
  }

  close(): void {
    this.sub.close();
  }
}
