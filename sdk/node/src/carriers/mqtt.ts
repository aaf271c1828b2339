/**
 * The MQTT carrier (spec 4.3): the negotiation and Noise messages as MQTT publishes.
 *
 * - MQTT 3.1.1, clean session, keepalive 60 s, no automatic reconnect, client id
 *   `thalovant-<32 hex>` (new on every connect);
 * - TLS is mandatory (the identity's `tls` flag or an `mqtts`/`ssl` scheme); the port defaults
 *   to 8883;
 * - topics `<prefix>/in` (client to hub), `<prefix>/out` (hub to client) and `<prefix>/status`
 *   (presence: last will `offline`, `online` once authenticated, both QoS 1 and retained);
 * - opening is CONNECT, SUBSCRIBE `/out` at the identity's QoS, then the cleartext HELLO on `/in`
 *   (the same object as the encrypted HELLO of spec 3.10, see {@link MQTTCarrier.bindSession});
 * - negotiation JSON goes as UTF-8 text, Noise transport messages as raw bytes, one per publish;
 *   every publish to `/in` uses the identity's QoS, no retain, and is acknowledged at QoS 1.
 *
 * The broker connection itself is the host's (`mqtt` in Node.js); browsers have no MQTT carrier.
 */

import { ThalovantUnsupportedProtocolError } from "../errors.js";
import type { MqttBrokerCredentials } from "../identity.js";
import { platform } from "../platform/current.js";
import type { TlsOptions } from "../platform/types.js";
import { fromUtf8, toHex, utf8 } from "../protocol/bytes.js";
import { urlParts } from "../protocols.js";
import { type Carrier, CarrierClosed, CarrierOpenError, type CarrierMessage, Inbox } from "./base.js";
import type { MqttSession } from "./mqtt-types.js";

export const DEFAULT_TLS_PORT = 8883;
export const KEEPALIVE_SECONDS = 60;
export const MQTT_SEND_TIMEOUT_MS = 8000;
export const MQTT_CLOSE_TIMEOUT_MS = 2000;
export const MAX_INBOUND = 256;
const SCHEMES = new Set(["mqtt", "mqtts", "tcp", "ssl"]);
const TLS_SCHEMES = new Set(["mqtts", "ssl"]);
const ONLINE = utf8("online");
const OFFLINE = utf8("offline");

function randomHex(bytes: number): string {
  return toHex(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** The client HELLO of spec 3.10 as compact JSON (sent in cleartext on MQTT). */
export function helloText(sessionId: string, siteId: string): string {
  return JSON.stringify({
    msg_type: "hello",
    payload: { pubkey: "", session: { session_id: sessionId }, site_id: siteId },
    metadata: {},
    route: [],
    node: null,
    target_site_id: null,
    target_pubkey: null,
    source_peer: null,
  });
}

/** The three topics of one client. */
export interface MqttTopics {
  inbound: string;
  outbound: string;
  status: string;
}

/** The topics of `prefix` (trimmed of whitespace and `/`); refuses empty, `#`, `+` or control characters. */
export function topicsForPrefix(prefix: string | undefined): MqttTopics {
  const cleaned = (prefix ?? "").trim().replace(/^\/+|\/+$/g, "").trim();
  if (!cleaned) throw new ThalovantUnsupportedProtocolError("The identity's MQTT block has no topic_prefix; MQTT needs one.");
  if (/[#+]|\p{C}/u.test(cleaned)) {
    throw new ThalovantUnsupportedProtocolError("The MQTT topic_prefix must not contain '#', '+' or control characters.");
  }
  return { inbound: `${cleaned}/in`, outbound: `${cleaned}/out`, status: `${cleaned}/status` };
}

/** Validated broker settings of one identity (spec 4.3 preconditions). */
export interface MqttSettings {
  host: string;
  port: number;
  username: string;
  password: string;
  topics: MqttTopics;
  qos: 0 | 1;
}

/** Check an identity's MQTT block; {@link ThalovantUnsupportedProtocolError} when MQTT cannot be used. */
export function mqttSettings(credentials: MqttBrokerCredentials | undefined): MqttSettings {
  if (credentials === undefined) {
    throw new ThalovantUnsupportedProtocolError("This identity has no MQTT broker credentials; it cannot use mqtt.");
  }
  const endpoint = credentials.endpoint.trim();
  const parts = urlParts(endpoint.includes("://") ? endpoint : `mqtt://${endpoint}`);
  if (parts === undefined || !SCHEMES.has(parts.scheme) || !parts.hostname) {
    throw new ThalovantUnsupportedProtocolError("The MQTT endpoint must be an mqtt://, mqtts://, tcp:// or ssl:// URL with a host.");
  }
  if (!(credentials.tls || TLS_SCHEMES.has(parts.scheme))) {
    throw new ThalovantUnsupportedProtocolError("HiveMind MQTT requires a broker connection with TLS.");
  }
  const port = parts.port ? Number(parts.port) : DEFAULT_TLS_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ThalovantUnsupportedProtocolError("The MQTT endpoint has an invalid port.");
  return {
    host: parts.hostname,
    port,
    username: credentials.username,
    password: credentials.password,
    topics: topicsForPrefix(credentials.topicPrefix),
    qos: credentials.qos,
  };
}

/** A connection SID for MQTT: `thalovant-node-mqtt-<32 hex>`. */
export function newMqttSessionId(): string {
  return `thalovant-node-mqtt-${randomHex(16)}`;
}

/** One MQTT session with a hub through a broker (spec 4.3). */
export class MQTTCarrier implements Carrier {
  readonly protocol = "mqtt" as const;
  /** `<prefix>/out` is the identity's: the negotiation skips another session's answers on it. */
  readonly sharedInbound = true;
  private readonly inbox = new Inbox(MAX_INBOUND);
  private session: MqttSession | undefined;
  private sessionId = newMqttSessionId();
  private siteId: string;
  private authenticated = false;
  private opened = false;
  private closed = false;
  private socketOpenMs: number | undefined;

  constructor(
    readonly settings: MqttSettings,
    private readonly options: { pinId: string; siteId: string; tls: TlsOptions; sendTimeoutMs?: number },
  ) {
    this.siteId = options.siteId;
  }

  get pinId(): string {
    return this.options.pinId;
  }

  get endpoint(): string {
    const host = this.settings.host.includes(":") ? `[${this.settings.host}]` : this.settings.host;
    return `mqtts://${host}:${this.settings.port}`;
  }

  get alive(): boolean {
    return this.opened && !this.closed && this.inbox.failed === undefined && this.session?.connected === true;
  }

  /** The cleartext HELLO this carrier publishes when it opens. */
  get hello(): string {
    return helloText(this.sessionId, this.siteId);
  }

  /** Use `sessionId` (and `siteId`) in the cleartext HELLO, so it matches the encrypted one. */
  bindSession(sessionId: string, siteId: string): void {
    this.sessionId = sessionId;
    this.siteId = siteId;
  }

  extraInfo(): Record<string, unknown> {
    return { socketOpenMs: this.socketOpenMs, tls: true, verifyTls: this.options.tls.verify, qos: this.settings.qos };
  }

  private get sendTimeoutMs(): number {
    return this.options.sendTimeoutMs ?? MQTT_SEND_TIMEOUT_MS;
  }

  async open(timeoutMs: number): Promise<void> {
    if (this.opened || this.closed) throw new CarrierOpenError("An MQTT carrier opens once; use a fresh one per connection.");
    const connector = platform().mqtt;
    if (connector === undefined) throw new CarrierOpenError("This build of the SDK has no MQTT carrier.");
    const deadline = performance.now() + timeoutMs;
    const started = performance.now();
    const { topics, qos } = this.settings;
    const session = await connector.connect({
      host: this.settings.host,
      port: this.settings.port,
      username: this.settings.username,
      password: this.settings.password,
      clientId: `thalovant-${randomHex(16)}`,
      keepaliveSeconds: KEEPALIVE_SECONDS,
      will: { topic: topics.status, payload: OFFLINE, qos: 1, retain: true },
      tls: this.options.tls,
      timeoutMs,
    });
    this.session = session;
    if (this.closed) {
      session.destroy();
      throw new CarrierOpenError("The MQTT carrier was closed while opening.");
    }
    session.onMessage = (topic, payload) => this.onMessage(topic, payload);
    session.onClose = (reason) => this.inbox.fail(new CarrierClosed(`The MQTT broker connection was lost (${reason}).`));
    this.socketOpenMs = performance.now() - started;
    let granted: number[];
    try {
      granted = await withDeadline(session.subscribe(topics.outbound, qos), deadline - performance.now());
    } catch (error) {
      throw new CarrierOpenError(`Cannot subscribe to the hub's topic: ${(error as Error).message}`);
    }
    if (granted.some((code) => code >= 128)) throw new CarrierOpenError("The MQTT broker refused the subscription to the hub's topic.");
    this.opened = true;
    try {
      await session.publish(topics.inbound, utf8(this.hello), qos, false, this.sendTimeoutMs);
    } catch (error) {
      this.opened = false;
      throw new CarrierOpenError(`Cannot publish the HELLO: ${(error as Error).message}`);
    }
  }

  private onMessage(topic: string, payload: Uint8Array): void {
    if (topic !== this.settings.topics.outbound || this.inbox.failed !== undefined) return;
    let item: CarrierMessage = payload;
    if (!this.authenticated && firstNonSpace(payload) === 0x7b) {
      try {
        item = fromUtf8(payload);
      } catch {
        item = payload;
      }
    }
    // The topic outlives sessions: the hub may still be answering this identity's previous
    // session. A Noise transport frame before our first binary message cannot be ours: drop it.
    if (!this.authenticated && typeof item !== "string") return;
    this.inbox.push(item);
    if (this.inbox.failed !== undefined) this.session?.destroy();
  }

  private async publish(topic: string, payload: Uint8Array, qos: 0 | 1, retain = false): Promise<void> {
    const failure = this.inbox.failed;
    if (failure !== undefined) throw failure;
    const session = this.session;
    if (session === undefined || this.closed) throw new CarrierClosed("The MQTT session is not open.");
    try {
      await session.publish(topic, payload, qos, retain, this.sendTimeoutMs);
    } catch (error) {
      const closed = new CarrierClosed(`Cannot publish to the broker: ${(error as Error).message}`);
      this.inbox.fail(closed);
      throw closed;
    }
  }

  async sendText(text: string): Promise<void> {
    await this.publish(this.settings.topics.inbound, utf8(text), this.settings.qos);
  }

  async sendBinary(data: Uint8Array): Promise<void> {
    const first = !this.authenticated;
    this.authenticated = true;
    await this.publish(this.settings.topics.inbound, data, this.settings.qos);
    if (first) this.publish(this.settings.topics.status, ONLINE, 1, true).catch(() => undefined);
  }

  receive(timeoutMs?: number): Promise<CarrierMessage> {
    return this.inbox.next(timeoutMs);
  }

  takeReady(): CarrierMessage | undefined {
    return this.inbox.take();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const session = this.session;
    const wasOpen = this.opened && this.inbox.failed === undefined && session?.connected === true;
    if (wasOpen && session !== undefined) {
      await withDeadline(session.publish(this.settings.topics.status, OFFLINE, 1, true, MQTT_CLOSE_TIMEOUT_MS), MQTT_CLOSE_TIMEOUT_MS).catch(
        () => undefined,
      );
    }
    this.closed = true;
    this.inbox.fail(new CarrierClosed("The MQTT session is closed."));
    if (session !== undefined) await session.end(MQTT_CLOSE_TIMEOUT_MS).catch(() => session.destroy());
  }
}

function firstNonSpace(payload: Uint8Array): number | undefined {
  for (const byte of payload) if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return byte;
  return undefined;
}

/** `promise`, or a rejection after `ms` milliseconds. */
export function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out")), Math.max(0, ms));
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
