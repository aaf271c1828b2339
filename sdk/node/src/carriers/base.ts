/**
 * The client-side carrier interface: moving negotiation text and Noise transport messages.
 *
 * A carrier is an I/O adapter only. It opens a session with a hub, sends the cleartext
 * negotiation (text) and the Noise transport messages (binary), and hands back what the hub
 * sends, in order. It knows nothing of Noise, envelopes or bus messages.
 *
 * Close and refusal signals are reported as {@link CarrierClosed} / {@link CarrierRefused} with
 * the carrier's own evidence (a WebSocket close code, an HTTP status); the link layer decides,
 * with its clocks, whether that means "credentials refused" or "link dropped".
 */

import type { HubProtocol } from "../protocols.js";

/** Base class of carrier failures (never shown to users as such; mapped to Thalovant errors). */
export class CarrierError extends Error {
  override name = "CarrierError";
}

/** The carrier could not open (DNS, TCP, TLS, an unexpected upgrade status). */
export class CarrierOpenError extends CarrierError {
  override name = "CarrierOpenError";
}

/** The hub refused the carrier credential while opening (HTTP 401 or 403). */
export class CarrierRefused extends CarrierOpenError {
  override name = "CarrierRefused";

  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** Opening or a wait did not finish in time. */
export class CarrierTimeout extends CarrierError {
  override name = "CarrierTimeout";
}

/**
 * The session ended. `code` is the carrier's evidence (a WebSocket close code, an HTTP status,
 * undefined when no close frame came); `refusalSignal` is true when that evidence is of the kind
 * a hub uses to refuse credentials (WSS 1000/1005/1008, HTTPS 401/403).
 */
export class CarrierClosed extends CarrierError {
  override name = "CarrierClosed";
  readonly code: number | undefined;
  readonly refusalSignal: boolean;

  constructor(message: string, options: { code?: number | undefined; refusalSignal?: boolean } = {}) {
    super(message);
    this.code = options.code;
    this.refusalSignal = options.refusalSignal ?? false;
  }
}

/** One message from the hub: text (negotiation) or bytes (a Noise transport message). */
export type CarrierMessage = string | Uint8Array;

/** One session with a hub over one transport; use a fresh instance per connect attempt. */
export interface Carrier {
  readonly protocol: HubProtocol;
  /** The endpoint id the hub's Noise key is pinned under (spec 1.8). */
  readonly pinId: string;
  /** The endpoint dialled, without credentials (safe to print). */
  readonly endpoint: string;
  /** True while the session is open and the transport is healthy. */
  readonly alive: boolean;
  /**
   * True when the hub's channel to this client outlives the session (MQTT's `<prefix>/out`, one
   * topic per identity): messages the hub sent another session of the same identity may arrive
   * before the answers to this session's HELLO. Absent: the channel is this session's own.
   */
  readonly sharedInbound?: boolean;
  /**
   * Learn the session id and site id the negotiation's HELLO will carry; called before `open`.
   * Only a carrier that sends a cleartext HELLO of its own (MQTT) uses them.
   */
  bindSession(sessionId: string, siteId: string): void;
  /** Open within `timeoutMs`; throws CarrierOpenError, CarrierRefused or CarrierTimeout. */
  open(timeoutMs: number): Promise<void>;
  sendText(text: string): Promise<void>;
  sendBinary(data: Uint8Array): Promise<void>;
  /** The next message from the hub; CarrierClosed when the session ends, CarrierTimeout after `timeoutMs`. */
  receive(timeoutMs?: number): Promise<CarrierMessage>;
  /**
   * The next message when one is already queued, without waiting (undefined otherwise, and at
   * the end of the session: `receive` reports that). Lets a reader take, in one turn, every frame
   * that arrived together.
   */
  takeReady?(): CarrierMessage | undefined;
  /** Close normally; idempotent, never throws. */
  close(): Promise<void>;
  /** Carrier-specific facts for diagnostics (`socketOpenMs`, `tls`, ...). */
  extraInfo(): Record<string, unknown>;
}

/**
 * The ordered queue of what a hub sent, shared by every carrier: items are pushed by the
 * transport's callbacks and taken by one reader; a failure is delivered after the items queued
 * before it. A bounded queue fails the session when the reader falls too far behind.
 */
export class Inbox {
  private readonly items: CarrierMessage[] = [];
  private head = 0;
  private failure: CarrierClosed | undefined;
  private waiter: { resolve(item: CarrierMessage): void; reject(error: Error): void } | undefined;

  constructor(private readonly limit = Number.POSITIVE_INFINITY) {}

  get size(): number {
    return this.items.length - this.head;
  }

  get failed(): CarrierClosed | undefined {
    return this.failure;
  }

  push(item: CarrierMessage): void {
    if (this.failure !== undefined) return;
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      waiter.resolve(item);
      return;
    }
    if (this.size >= this.limit) {
      this.fail(new CarrierClosed(`More than ${this.limit} messages queued from the hub; disconnecting.`));
      return;
    }
    this.items.push(item);
  }

  /** End the queue; the reader gets `failure` once the earlier items are taken. First one wins. */
  fail(failure: CarrierClosed): void {
    if (this.failure !== undefined) return;
    this.failure = failure;
    const waiter = this.waiter;
    if (waiter !== undefined && this.size === 0) {
      this.waiter = undefined;
      waiter.reject(failure);
    }
  }

  /** The next queued item, if one is queued now (the failure is left to {@link next}). */
  take(): CarrierMessage | undefined {
    if (this.size === 0) return undefined;
    const item = this.items[this.head] as CarrierMessage;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    return item;
  }

  next(timeoutMs?: number): Promise<CarrierMessage> {
    const ready = this.take();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.waiter !== undefined) return Promise.reject(new CarrierError("Only one reader may wait on a carrier."));
    return new Promise<CarrierMessage>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
      };
      this.waiter = {
        resolve: (item) => {
          done();
          resolve(item);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.waiter = undefined;
          reject(new CarrierTimeout("Nothing arrived from the hub in time."));
        }, Math.max(0, timeoutMs));
      }
    });
  }
}
