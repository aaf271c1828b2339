/**
 * The runtime client: connect to a hub, ask, emit, send inputs, listen for events.
 *
 * A client owns at most one link at a time. With `autoReconnect` (the default), once a link has
 * been up, every loss of it (seen by the reader, by a failed send, or by a request finding it
 * dead) starts the one supervised reconnect loop, on the schedule of the failure policy
 * (runtime/policy.ts: every 0.5-1 s for the first minute, then backing off to 30 s; it stops for
 * a changed hub key, a rejected client key, or ten minutes of refusals). A request made while the
 * link is down (ask, emit, the sends, waitForEvent) does not dial: it waits for that loop to bring
 * the link back, up to its own timeout (`timeoutMs` of the request; `sendTimeoutMs` of the client
 * for a send without one, default {@link DEFAULT_SEND_TIMEOUT_MS}), then fails with a
 * {@link ThalovantConnectionError}. It fails at once with the policy's error when the loop has
 * stopped for good, or when an attempt made while it waits is refused or has its keys rejected
 * (policy WAITERS_SEE); after the loop stopped, `connect()` tries again. Without `autoReconnect`,
 * before any link has been up, and after `close()`, a request makes one connect attempt of its own
 * instead and fails at once with its error.
 *
 * A message already published is never sent again, with one exception (policy
 * `resendUnanswered`): when the hub closes a WSS link with 1001 (going away) or 1012 (restart), an
 * ask that has received nothing for its request is sent again, with the same request id, once the
 * link is back (within the ask's timeout). A message that found the link down before anything of
 * it went out is sent on the next link. Every promise the client returns settles with a value or a
 * {@link ThalovantError}; background work never leaves an unhandled rejection.
 */

import { type Carrier, carrierFor, selectProtocol } from "./carriers/index.js";
import { ThalovantConnectionError, ThalovantError } from "./errors.js";
import { EVENT_POLICY_DENIED, EVENT_UTTERANCE_HANDLED, ThalovantEvent } from "./events.js";
import { ThalovantIdentity, type FromConfigOptions, type FromEnvOptions } from "./identity.js";
import { ThalovantDoctorReport, ThalovantHealth, ThalovantReply } from "./models.js";
import type { NoiseStateStore } from "./noise-store.js";
import { platform } from "./platform/current.js";
import { isObject, type JsonObject } from "./protocol/bytes.js";
import { HiveMessage } from "./protocol/envelope.js";
import { directDerivation, type PskDeriver } from "./protocol/psk.js";
import type { Wire1Frame } from "./protocol/wire1.js";
import type { HubProtocol } from "./protocols.js";
import { urlParts } from "./protocols.js";
import { EMPTY_REPLY_WAIT_MS, ReplyCollector, SendAgain } from "./runtime/ask.js";
import * as bus from "./runtime/bus.js";
import { CarryWatch } from "./runtime/carry.js";
import { runDoctor } from "./runtime/doctor.js";
import { busEvent, busOf, RecentEvents } from "./runtime/inbound.js";
import { type ConnectionPhase, NO_TIMINGS, redactError, type ThalovantConnectionInfo } from "./runtime/info.js";
import { establish, type Link, LinkNotSent } from "./runtime/link.js";
import { log } from "./runtime/log.js";
import { Outage, resendUnanswered, Step, waiterGivesUp } from "./runtime/policy.js";
import { type EventHandler, EventQueue, eventMatches, type Subscription, SubscriptionRegistry } from "./runtime/subscriptions.js";

export { CARRY_GRACE_MS } from "./runtime/carry.js";
export const UNTRACKED_UTTERANCE_GRACE_MS = 10_000;
/** How long a send without a timeout of its own waits for a link that is down (8 s). */
export const DEFAULT_SEND_TIMEOUT_MS = 8000;
/** The default timeout of `ask` and `waitForEvent` (12 s). */
const DEFAULT_REQUEST_TIMEOUT_MS = 12_000;

/** A request waiting for the supervised reconnect loop to bring the link back. */
interface Waiter {
  resolve(link: Link): void;
  reject(error: ThalovantError): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Options of a runtime client (all optional). */
export interface ClientOptions {
  /** Force a carrier: "wss", "https" or "mqtt"; without it the choice of spec 1.6 applies. */
  protocol?: HubProtocol | "http" | (string & {});
  /** Where the client's Noise key, hub pins and PSK cache live (default: spec 1.8). */
  noiseStore?: NoiseStateStore;
  /** Node.js: the folder of the Noise state (default: `hivemind` beside the identity file). */
  noiseStateDir?: string;
  /** How long `ask` keeps collecting speech after the first sentence (default 250 ms). */
  replySettleMs?: number;
  /** How long `ask` waits for speech after a handled or unmatched event (default 5 s). */
  emptyReplyWaitMs?: number;
  connectTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  userAgent?: string;
  /**
   * Redial a lost link in the background (default true); requests made while it is down wait for
   * it. Off: a request made while the link is down makes one connect attempt of its own.
   */
  autoReconnect?: boolean;
  /**
   * How long `emit`, `sendUtterance`, `sendAction` and `sendCode` wait for a link that is down
   * when the call has no `timeoutMs` (default {@link DEFAULT_SEND_TIMEOUT_MS}).
   */
  sendTimeoutMs?: number;
  /** Turn TLS certificate verification off (development only). */
  selfSigned?: boolean;
  /** Replace the argon2id derivation (for example with one in a Web Worker). */
  derivePsk?: PskDeriver;
}

/** Options of `ask`. */
export interface AskOptions {
  lang?: string;
  sessionId?: string;
  requestId?: string;
  context?: JsonObject;
  /**
   * The whole ask: waiting for a link that is down (ThalovantConnectionError when it is not back
   * in time), then for the reply (ThalovantTimeoutError). Default 12 s.
   */
  timeoutMs?: number;
}

/** Options of `sendUtterance`. */
export interface UtteranceOptions {
  lang?: string;
  sessionId?: string;
  requestId?: string;
  context?: JsonObject;
  /** How long to wait for a link that is down (default: the client's `sendTimeoutMs`). */
  timeoutMs?: number;
}

/** Options of `sendAction`. */
export interface ActionOptions {
  title?: string;
  sessionId?: string;
  context?: JsonObject;
  lang?: string;
  /** How long to wait for a link that is down (default: the client's `sendTimeoutMs`). */
  timeoutMs?: number;
}

/** Options of `sendCode`. */
export interface CodeOptions {
  kind?: string;
  label?: string;
  sessionId?: string;
  context?: JsonObject;
  lang?: string;
  /** How long to wait for a link that is down (default: the client's `sendTimeoutMs`). */
  timeoutMs?: number;
}

/** Options of `waitForEvent` and `on`. */
export interface EventOptions {
  timeoutMs?: number;
  requestId?: string;
  sessionId?: string;
}

/** What the internal sender takes besides the public options. */
interface OutgoingUtterance extends UtteranceOptions {
  dataExtra?: JsonObject;
  contextExtra?: JsonObject;
  tracked?: boolean;
}

function contextSessionId(context: JsonObject | undefined): string | undefined {
  if (context === undefined) return undefined;
  const session = context.session;
  if (isObject(session)) {
    const sid = session.session_id;
    if (typeof sid === "string" && sid && sid !== "default") return sid;
  }
  const sid = context.session_id;
  return typeof sid === "string" && sid && sid !== "default" ? sid : undefined;
}

function nonEmptyText(text: unknown, what: string): string {
  if (typeof text !== "string" || !text.trim()) throw new TypeError(`${what} is a non-empty string.`);
  return text;
}

/** A runtime client for one hub identity. */
export class ThalovantClient {
  readonly identity: ThalovantIdentity;
  readonly protocol: HubProtocol;
  readonly userAgent: string;
  readonly connectTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly replySettleMs: number;
  readonly emptyReplyWaitMs: number;
  readonly selfSigned: boolean;
  readonly sendTimeoutMs: number;
  autoReconnect: boolean;
  private readonly options: ClientOptions;
  private store: NoiseStateStore | undefined;
  private link: Link | undefined;
  private connecting: Promise<void> | undefined;
  private phase: ConnectionPhase = "idle";
  private lastError: string | undefined;
  private closed = false;
  private reconnects = 0;
  private supervisor: ReturnType<typeof setTimeout> | undefined;
  /** A link has been up since the last connect() / close(): its losses are supervised. */
  private everUp = false;
  /** Why the reconnect loop stopped for good (cleared when a link is up again). */
  private stopped: ThalovantError | undefined;
  private readonly waiters = new Set<Waiter>();
  /** How many asks were sent again after a restart close (policy resendUnanswered; the tests read it). */
  private resent = 0;
  private readonly subscriptions = new SubscriptionRegistry();
  private readonly queues = new Set<EventQueue>();
  private readonly collectors = new Map<string, ReplyCollector>();
  private readonly carryWatch = new CarryWatch();
  /** Conversation state per session id (spec 6.6). */
  readonly carried = new Map<string, JsonObject>();
  private lastUntracked = Number.NEGATIVE_INFINITY;
  private readonly recent = new RecentEvents();
  private publishSeq = 0;
  private readonly binaryHandlers = new Set<(frame: Wire1Frame) => void>();

  constructor(identity: ThalovantIdentity, options: ClientOptions = {}) {
    if (!(identity instanceof ThalovantIdentity)) throw new TypeError("ThalovantClient needs a ThalovantIdentity.");
    this.identity = identity;
    this.options = options;
    this.protocol = selectProtocol(identity, options.protocol);
    this.userAgent = options.userAgent ?? platform().userAgent;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 4000;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 20_000;
    this.replySettleMs = options.replySettleMs ?? 250;
    this.emptyReplyWaitMs = options.emptyReplyWaitMs ?? EMPTY_REPLY_WAIT_MS;
    this.selfSigned = options.selfSigned ?? false;
    this.autoReconnect = options.autoReconnect ?? true;
    this.sendTimeoutMs = options.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS;
    this.newCarrier(); // fail early on a carrier this identity or build cannot use
  }

  /** A client for the identity of a config profile (spec 1.5). Node.js only. */
  static async fromConfig(options: FromConfigOptions & ClientOptions = {}): Promise<ThalovantClient> {
    const { profile, path, ...clientOptions } = options;
    return new ThalovantClient(await ThalovantIdentity.fromConfig({ ...(profile !== undefined ? { profile } : {}), ...(path !== undefined ? { path } : {}) }), clientOptions);
  }

  /** A client for an identity file (0600). Node.js only. */
  static async fromIdentityFile(path: string, options: ClientOptions = {}): Promise<ThalovantClient> {
    return new ThalovantClient(await ThalovantIdentity.fromFile(path), options);
  }

  /** A client for the identity in `THALOVANT_*` environment variables. */
  static fromEnv(options: FromEnvOptions & ClientOptions = {}): ThalovantClient {
    const { prefix, env, ...clientOptions } = options;
    return new ThalovantClient(ThalovantIdentity.fromEnv({ ...(prefix !== undefined ? { prefix } : {}), ...(env !== undefined ? { env } : {}) }), clientOptions);
  }

  // ------------------------------------------------------------------ state

  /** Where this client keeps its Noise key, pins and PSK cache. */
  get noiseStore(): NoiseStateStore {
    if (this.store === undefined) {
      const endpoint = this.identity.endpointFor(this.protocol) ?? this.identity.endpointBase();
      this.store =
        this.options.noiseStore ??
        platform().defaultNoiseStore({
          directory: this.options.noiseStateDir,
          sourcePath: this.identity.sourcePath,
          hubHost: urlParts(endpoint)?.hostname,
        });
    }
    return this.store;
  }

  get connected(): boolean {
    return this.link !== undefined && this.link.alive;
  }

  /** The connection SID of the live link (the default session of its messages). */
  get sessionId(): string | undefined {
    return this.link?.sessionId;
  }

  private newCarrier(): Carrier {
    return carrierFor(this.protocol, this.identity, { userAgent: this.userAgent, tls: { verify: !this.selfSigned } });
  }

  /** A snapshot of the link: phase, Noise pattern, timings, last error (nothing is sent). */
  connectionInfo(): ThalovantConnectionInfo {
    const link = this.link;
    const timings = link?.timings;
    let endpoint: string | undefined;
    try {
      endpoint = this.newCarrier().endpoint;
    } catch {
      endpoint = undefined;
    }
    let phase = this.phase;
    if (phase === "ready" && !this.connected) phase = "error";
    return {
      ...(timings ?? NO_TIMINGS),
      phase,
      protocol: this.protocol,
      endpoint,
      sessionId: link?.sessionId,
      noisePattern: link?.pattern,
      reconnects: this.reconnects,
      lastError: redactError(this.lastError),
    };
  }

  // ------------------------------------------------------------------ connecting

  /**
   * Connect and authenticate, unless already connected. Rejects with the typed errors of spec 12
   * (refused, key changed, client key rejected, timeout, connection).
   */
  async connect(): Promise<void> {
    this.closed = false;
    if (this.connected) return;
    await this.attempt();
  }

  /** The connect attempt in progress, or a new one (the loop's and connect()'s: never two at once). */
  private attempt(): Promise<void> {
    if (this.connecting === undefined) {
      this.connecting = this.dial()
        .catch((error: unknown) => {
          this.phase = "error";
          this.lastError = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
          // an attempt that failed in a way waiting cannot help ends every wait at once
          if (error instanceof ThalovantError && waiterGivesUp(error)) this.settleWaiters(error);
          throw error;
        })
        .finally(() => {
          this.connecting = undefined;
        });
    }
    return this.connecting;
  }

  /** Whether a loss of the link is left to the reconnect loop (and requests wait for it). */
  private get supervised(): boolean {
    return this.autoReconnect && this.everUp && !this.closed;
  }

  private async dial(): Promise<void> {
    const old = this.link;
    this.link = undefined;
    if (old !== undefined) await old.close();
    let link: Link;
    try {
      link = await establish(() => this.newCarrier(), {
        store: this.noiseStore,
        credentials: { accessKey: this.identity.accessKey, password: this.identity.password, siteId: this.identity.siteId },
        sessionId: bus.connectionSessionId(),
        connectTimeoutMs: this.connectTimeoutMs,
        handshakeTimeoutMs: this.handshakeTimeoutMs,
        startDerivation: () => {
          const custom = this.options.derivePsk;
          return custom !== undefined ? directDerivation(custom) : platform().startPskDerivation();
        },
        onPhase: (phase) => {
          this.phase = phase;
        },
      });
    } catch (error) {
      throw error instanceof ThalovantError ? error : new ThalovantConnectionError(`Could not connect: ${String(error)}`);
    }
    if (this.closed) {
      await link.close();
      throw new ThalovantConnectionError("The client was closed while connecting.");
    }
    link.onEnvelope = (envelope) => this.onEnvelope(envelope);
    link.onBinary = (frame) => this.onBinaryFrame(frame);
    link.onLost = (error) => this.onLost(error, link);
    this.link = link;
    this.phase = "ready";
    this.lastError = undefined;
    this.everUp = true;
    this.stopped = undefined;
    link.start();
    if (link.alive) this.settleWaiters(link);
  }

  /** The link when it is up (no await: the hot path of every request). */
  private liveLink(): Link | undefined {
    const link = this.link;
    return link !== undefined && link.alive ? link : undefined;
  }

  /**
   * The live link, waiting for it up to `waitMs` when it is down (see the header): a supervised
   * client waits for its reconnect loop (starting it if nothing runs), any other makes one
   * connect attempt. `timeoutMs` is the request's whole timeout, for the error message.
   */
  private async waitLink(waitMs: number, timeoutMs: number = waitMs): Promise<Link> {
    const live = this.liveLink();
    if (live !== undefined) return live;
    if (!this.supervised) {
      await this.connect();
      const link = this.link;
      if (link === undefined) throw new ThalovantConnectionError("The hub connection is closed.");
      return link;
    }
    const dead = this.link;
    if (dead !== undefined && dead.error === undefined) dead.abandon(new ThalovantConnectionError("The hub connection dropped."));
    if (this.stopped !== undefined) throw this.stopped;
    if (this.supervisor === undefined && this.connecting === undefined) this.scheduleReconnect(new Outage(performance.now()), true);
    log.info(`Waiting for the hub link, within the request's ${timeoutMs / 1000} s.`);
    return new Promise<Link>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: undefined };
      waiter.timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const last = this.lastError === undefined ? "" : ` (last error: ${redactError(this.lastError) ?? ""})`;
        reject(new ThalovantConnectionError(`The hub link was not back within the request's ${timeoutMs / 1000} s${last}.`));
      }, Math.max(0, waitMs));
      this.waiters.add(waiter);
    });
  }

  /** Wake every waiting request: with the link that is up, or with the error that ends their wait. */
  private settleWaiters(outcome: Link | ThalovantError): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      if (outcome instanceof ThalovantError) waiter.reject(outcome);
      else waiter.resolve(outcome);
    }
  }

  /**
   * Run `send` on the live link, waiting for one up to `waitMs` when it is down. When `send`
   * fails before anything went out ({@link LinkNotSent}) on a supervised client, it runs again on
   * the next link within the same time.
   */
  private async deliver<T>(waitMs: number, send: (link: Link) => Promise<T>, timeoutMs: number = waitMs): Promise<T> {
    const link = this.liveLink();
    if (link !== undefined) {
      try {
        return await send(link);
      } catch (error) {
        if (!(error instanceof LinkNotSent) || !this.supervised) throw error;
      }
    }
    const started = performance.now();
    for (;;) {
      const next = await this.waitLink(waitMs - (performance.now() - started), timeoutMs);
      try {
        return await send(next);
      } catch (error) {
        if (!(error instanceof LinkNotSent) || !this.supervised) throw error;
      }
    }
  }

  private onLost(error: ThalovantError, link: Link): void {
    this.phase = "error";
    this.lastError = `${error.name}: ${error.message}`;
    log.warn(`Hub link lost: ${redactError(error.message) ?? ""}`);
    const resend = this.autoReconnect && !this.closed && resendUnanswered(link.closeCode);
    for (const collector of this.collectors.values()) {
      if (resend && collector.abortIfUnanswered(new SendAgain("sent again on the next link"))) continue;
      collector.abort(new ThalovantConnectionError(`The hub connection dropped before the reply: ${error.message}`));
    }
    if (!this.autoReconnect) {
      for (const queue of this.queues) queue.fail(new ThalovantConnectionError(`The hub connection dropped: ${error.message}`));
      return;
    }
    if (!this.closed && this.supervisor === undefined) this.scheduleReconnect(new Outage(performance.now()));
  }

  /**
   * The next retry of `outage`, when and until the failure policy says (runtime/policy.ts); at
   * once when `immediate` (a request found the link down and no loop running). When the policy
   * says stop, waiting requests get the error, and so do later ones until a link is up again.
   */
  private scheduleReconnect(outage: Outage, immediate = false): void {
    this.supervisor = setTimeout(() => {
      this.supervisor = undefined;
      if (this.closed || this.connected) return;
      this.attempt().then(
        () => {
          this.reconnects += 1;
          log.info("Reconnected to the hub.");
        },
        (error: unknown) => {
          if (outage.afterFailure(error, performance.now()) === Step.STOP) {
            log.error(`Not reconnecting: ${error instanceof Error ? error.message : String(error)}`);
            this.stopped = error instanceof ThalovantError ? error : new ThalovantConnectionError(String(error));
            this.settleWaiters(this.stopped);
            return;
          }
          log.info(`Reconnect failed (${redactError(String(error)) ?? ""}); retrying.`);
          if (!this.closed && !this.connected) this.scheduleReconnect(outage);
        },
      );
    }, immediate ? 0 : outage.nextDelayMs(performance.now()));
  }

  /** Close the link (normal close) and stop reconnecting. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.everUp = false;
    this.settleWaiters(new ThalovantConnectionError("The client was closed."));
    if (this.supervisor !== undefined) {
      clearTimeout(this.supervisor);
      this.supervisor = undefined;
    }
    for (const collector of this.collectors.values()) collector.abort(new ThalovantConnectionError("The client was closed."));
    for (const queue of this.queues) queue.fail(new ThalovantConnectionError("The client was closed."));
    await this.connecting?.catch(() => undefined);
    const link = this.link;
    this.link = undefined;
    if (link !== undefined) await link.close();
    this.phase = "closed";
  }

  // ------------------------------------------------------------------ inbound

  private onEnvelope(envelope: HiveMessage): void {
    const message = busOf(envelope, this.identity.siteId);
    if (message === undefined) return;
    const event = busEvent(message);
    this.recent.add(event);
    const rid = event.requestId;
    if (rid) {
      this.collectors.get(rid)?.feed(event);
      const watched = this.carryWatch.sessionOf(rid);
      if (event.name === EVENT_UTTERANCE_HANDLED && watched !== undefined) this.rememberConversation(watched, event);
    } else if (event.name === EVENT_POLICY_DENIED) {
      this.attributeDenial(event);
    }
    this.subscriptions.deliver(event);
  }

  private onBinaryFrame(frame: Wire1Frame): void {
    for (const handler of this.binaryHandlers) {
      try {
        handler(frame);
      } catch (error) {
        log.error(`A binary handler threw: ${String(error)}`);
      }
    }
  }

  /** A denial without a request id goes to the only ask in flight, if no untracked utterance was sent in the last 10 s. */
  private attributeDenial(event: ThalovantEvent): void {
    if (event.data.denied_type !== bus.UTTERANCE || this.collectors.size !== 1) return;
    if (performance.now() - this.lastUntracked < UNTRACKED_UTTERANCE_GRACE_MS) return;
    this.collectors.values().next().value?.feed(event);
  }

  private rememberConversation(requestSession: string, event: ThalovantEvent): void {
    const session = isObject(event.context.session) ? event.context.session : {};
    const fields = bus.carriedFields(session);
    const keys = new Set([requestSession]);
    if (typeof session.session_id === "string" && session.session_id) keys.add(session.session_id);
    for (const key of keys) {
      if (Object.keys(fields).length > 0) this.carried.set(key, fields);
      else this.carried.delete(key);
    }
  }

  // ------------------------------------------------------------------ publishing

  private context(context: JsonObject | undefined, link: Link): JsonObject {
    return bus.runtimeContext(context, {
      userAgent: this.userAgent,
      connectionSid: link.sessionId,
      siteId: this.identity.siteId,
      identityMetadata: this.identity.metadata,
    });
  }

  private async publish(name: string, data: JsonObject, context: JsonObject, link: Link): Promise<void> {
    this.publishSeq = this.recent.seq;
    await link.sendEnvelope(HiveMessage.bus(name, data, context));
  }

  /**
   * Send a raw bus event `name` with `data` and the runtime context (spec 6.7). A link that is
   * down is waited for up to the client's `sendTimeoutMs` (see the header).
   */
  async emit(name: string, data: JsonObject = {}, context: JsonObject = {}): Promise<void> {
    nonEmptyText(name, "An event name");
    await this.deliver(this.sendTimeoutMs, (link) => this.publish(name, { ...data }, this.context(context, link), link));
  }

  /**
   * Send one utterance, waiting up to `waitMs` for a link that is down (`timeoutMs`: the
   * request's whole timeout, for the error message); a tracked one is registered for its reply.
   */
  private sendUtteranceMessage(
    text: string,
    options: OutgoingUtterance,
    waitMs: number,
    timeoutMs: number,
    makeCollector?: (rid: string, sid: string) => ReplyCollector,
  ): Promise<[string, ReplyCollector | undefined]> {
    nonEmptyText(text, "An utterance");
    return this.deliver(waitMs, (link) => this.sendUtteranceOn(link, text, options, makeCollector), timeoutMs);
  }

  private sendUtteranceOn(
    link: Link,
    text: string,
    options: OutgoingUtterance,
    makeCollector?: (rid: string, sid: string) => ReplyCollector,
  ): Promise<[string, ReplyCollector | undefined]> {
    const effectiveSid = options.sessionId || contextSessionId(options.context) || link.sessionId;
    const carried = options.tracked ? this.carried.get(effectiveSid) : undefined;
    const [rid, data, ctx] = bus.utteranceMessage(text, {
      lang: options.lang ?? "en-us",
      sessionId: options.sessionId,
      requestId: options.requestId,
      context: options.context,
      siteId: this.identity.siteId,
      carried,
    });
    Object.assign(data, options.dataExtra ?? {});
    Object.assign(ctx, options.contextExtra ?? {});
    const full = this.context(ctx, link);
    const collector = makeCollector?.(rid, effectiveSid);
    if (collector !== undefined) {
      this.collectors.set(rid, collector);
      this.carryWatch.watch(rid, effectiveSid);
    } else {
      this.lastUntracked = performance.now();
    }
    return this.publish(bus.UTTERANCE, data, full, link).then(
      () => [rid, collector],
      (error: unknown) => {
        this.collectors.delete(rid);
        this.carryWatch.forget(rid);
        throw error;
      },
    );
  }

  /**
   * Send an utterance and collect the hub's spoken reply (spec 6.3). `timeoutMs` (default 12 s)
   * covers the whole ask: a link that is down is waited for within it (see the header), and an
   * ask the hub dropped unanswered when restarting is sent again within it, same request id.
   */
  async ask(text: string, options: AskOptions = {}): Promise<ThalovantReply> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const began = performance.now();
    let requestId = options.requestId;
    for (;;) {
      const [rid, collector] = await this.sendUtteranceMessage(
        text,
        { ...options, requestId, tracked: true },
        timeoutMs - (performance.now() - began),
        timeoutMs,
        (id, sessionId) => new ReplyCollector(id, sessionId, this.replySettleMs, this.emptyReplyWaitMs),
      );
      requestId = rid;
      try {
        return await (collector as ReplyCollector).result(timeoutMs - (performance.now() - began), this.carryWatch, timeoutMs);
      } catch (error) {
        if (!(error instanceof SendAgain)) throw error;
        if (this.closed) throw new ThalovantConnectionError("The client was closed.");
        this.resent += 1;
        log.info(`Sending the unanswered ask ${rid} again once the hub link is back.`);
      } finally {
        this.collectors.delete(rid);
        this.carryWatch.release(rid);
      }
    }
  }

  /**
   * Send speech or chat text without waiting for a reply (fire and forget); resolves to the
   * request id. A link that is down is waited for up to `timeoutMs` (default: `sendTimeoutMs`).
   */
  async sendUtterance(text: string, options: UtteranceOptions = {}): Promise<string> {
    const waitMs = options.timeoutMs ?? this.sendTimeoutMs;
    const [rid] = await this.sendUtteranceMessage(text, options, waitMs, waitMs);
    return rid;
  }

  /**
   * Send a button / menu pick / command (`context.input.kind = "action"`); resolves to the
   * request id. A link that is down is waited for up to `timeoutMs` (default: `sendTimeoutMs`).
   */
  async sendAction(payload: string, options: ActionOptions = {}): Promise<string> {
    const action = { kind: "action", title: options.title ?? payload, payload };
    const waitMs = options.timeoutMs ?? this.sendTimeoutMs;
    const [rid] = await this.sendUtteranceMessage(
      payload,
      { lang: options.lang, sessionId: options.sessionId, context: options.context, contextExtra: { input: action } },
      waitMs,
      waitMs,
    );
    return rid;
  }

  /**
   * Send an exact value (QR, barcode, serial): `input = {kind, label, value, exact}`; resolves to
   * the request id. A link that is down is waited for up to `timeoutMs` (default: `sendTimeoutMs`).
   */
  async sendCode(value: string, options: CodeOptions = {}): Promise<string> {
    const kind = options.kind ?? "code";
    const code = { kind, label: options.label ?? kind, value, exact: true };
    const waitMs = options.timeoutMs ?? this.sendTimeoutMs;
    const [rid] = await this.sendUtteranceMessage(
      value,
      {
        lang: options.lang,
        sessionId: options.sessionId,
        context: options.context,
        dataExtra: { input: { ...code } },
        contextExtra: { input: { ...code } },
      },
      waitMs,
      waitMs,
    );
    return rid;
  }

  /** Related turns sharing one session (spec 6.6). */
  conversation(options: { lang?: string; sessionId?: string } = {}): ThalovantConversation {
    return new ThalovantConversation(this, options.lang ?? "en-us", options.sessionId);
  }

  // ------------------------------------------------------------------ events

  /**
   * Call `handler(event)` for every `name` event (`"*"` for all); a handler's thrown error or
   * rejected promise is logged. Returns a subscription; `close()` it to stop.
   */
  on(name: string, handler: EventHandler, options: Omit<EventOptions, "timeoutMs"> = {}): Subscription {
    return this.subscriptions.add(name, handler, { requestId: options.requestId, sessionId: options.sessionId });
  }

  /** Receive every WIRE-1 `bin` frame; returns a function that unsubscribes. */
  onBinary(handler: (frame: Wire1Frame) => void): () => void {
    this.binaryHandlers.add(handler);
    return () => {
      this.binaryHandlers.delete(handler);
    };
  }

  /**
   * The next `name` event, or the first matching one that arrived since your last publication
   * and that no earlier wait took (so "send, then wait" never misses a fast answer);
   * {@link ThalovantTimeoutError} after `timeoutMs` (default 12 s). A link that is down is waited
   * for first, within the same `timeoutMs` (see the header).
   */
  async waitForEvent(name: string, options: EventOptions = {}): Promise<ThalovantEvent> {
    let timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (this.liveLink() === undefined) {
      const began = performance.now();
      await this.waitLink(timeoutMs);
      timeoutMs -= performance.now() - began;
    }
    const queue = new EventQueue(this.subscriptions, name, { requestId: options.requestId, sessionId: options.sessionId });
    for (const item of this.recent.since(this.publishSeq)) {
      if (item.event.name !== name || item.consumed) continue;
      if (eventMatches(item.event, options.requestId, options.sessionId)) {
        queue.feedEarly(item.event);
        item.consumed = true;
        break;
      }
    }
    this.queues.add(queue);
    try {
      return await queue.get(timeoutMs);
    } finally {
      queue.close();
      this.queues.delete(queue);
    }
  }

  // ------------------------------------------------------------------ diagnostics

  /**
   * Report the link state (no network round trip). A link that is down is left to the reconnect
   * loop when it is supervised (see the header); otherwise one connect attempt is made first.
   */
  async healthcheck(): Promise<ThalovantHealth> {
    let error: string | undefined;
    if (!this.connected && this.supervised) {
      const dead = this.link;
      if (dead !== undefined && dead.error === undefined) dead.abandon(new ThalovantConnectionError("The hub connection dropped."));
    } else if (!this.connected) {
      try {
        await this.connect();
      } catch (caught) {
        if (!(caught instanceof ThalovantError)) throw caught;
        error = `${caught.name}: ${caught.message}`;
      }
    }
    const link = this.link;
    const alive = link !== undefined && link.alive;
    let endpoint: string | undefined;
    try {
      endpoint = this.newCarrier().endpoint;
    } catch {
      endpoint = undefined;
    }
    return new ThalovantHealth({
      connected: link !== undefined && !this.closed,
      handshakeComplete: link !== undefined && Boolean(link.pattern),
      transportAlive: alive,
      lastError: redactError(error ?? (alive ? undefined : this.lastError)),
      protocol: this.protocol,
      endpoint,
      noisePattern: link?.pattern,
    });
  }

  /** Check identity, endpoint, TLS, handshake and transport; readable when printed. */
  async doctor(): Promise<ThalovantDoctorReport> {
    return runDoctor(this, () => this.newCarrier().endpoint);
  }
}

/** Turns that share one session id: `ask` carries the conversation state (spec 6.6). */
export class ThalovantConversation {
  readonly sessionId: string;

  constructor(
    readonly client: ThalovantClient,
    readonly lang: string,
    sessionId?: string,
  ) {
    this.sessionId = sessionId || bus.newConversationSessionId();
  }

  ask(text: string, options: Omit<AskOptions, "sessionId"> = {}): Promise<ThalovantReply> {
    return this.client.ask(text, { ...options, lang: options.lang ?? this.lang, sessionId: this.sessionId });
  }

  sendUtterance(text: string, options: Omit<UtteranceOptions, "sessionId"> = {}): Promise<string> {
    return this.client.sendUtterance(text, { ...options, lang: options.lang ?? this.lang, sessionId: this.sessionId });
  }

  /** Drop the carried conversation state of this session. */
  forget(): void {
    this.client.carried.delete(this.sessionId);
  }
}
