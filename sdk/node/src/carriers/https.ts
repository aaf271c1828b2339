/**
 * The HTTPS polling carrier (spec 4.2).
 *
 * A session is a sequence of short requests under the identity's `endpointBase()`:
 *
 * - `POST /connect` (empty body) opens it; the hub queues its HELLO and offer;
 * - `POST /send_message` carries `message=<text>` during the handshake and
 *   `message=<base64>&binary=1` for every Noise transport message after it;
 * - a poller GETs `/get_messages` (and, once this side has sent its first transport message,
 *   `/get_binary_messages`) and queues what comes back, in order;
 * - `POST /disconnect` ends it, and is sent before every reconnect.
 *
 * Every request carries `authorization=<base64(useragent:access_key)>` in its query, the
 * `User-Agent` header (Node.js) and, once the hub has set one, the `hivemind_http_replica` cookie
 * (other cookies are ignored; browsers manage cookies themselves). All requests of one carrier go
 * through one lock, so polls and sends never overlap; redirects are not followed (a 3xx is a
 * failure); 401/403 are the hub's refusal signal.
 *
 * The poller waits {@link POLL_INTERVAL_MS} after an empty round, and
 * {@link ACTIVE_POLL_INTERVAL_MS} for {@link ACTIVE_WINDOW_MS} after this side sent something,
 * so answers are picked up promptly without keeping an idle client busy.
 *
 * The replica cookie and the "admission still held" flag outlive one carrier: a fresh carrier for
 * the same endpoint and access key reuses the cookie and first sends the `/disconnect` its
 * predecessor could not.
 */

import { sha256 } from "@noble/hashes/sha2.js";

import { httpsPinId } from "../noise-store.js";
import { platform } from "../platform/current.js";
import type { TlsOptions } from "../platform/types.js";
import { fromBase64, fromUtf8, isObject, type JsonObject, toBase64, toHex, utf8 } from "../protocol/bytes.js";
import { type Carrier, CarrierClosed, CarrierOpenError, CarrierRefused, CarrierTimeout, type CarrierMessage, Inbox } from "./base.js";
import { type HttpClient, type HttpResponse, HttpTimeoutError } from "./http.js";
import { Serial } from "../runtime/serial.js";
import { authorizationValue } from "./wss.js";

export const POLL_INTERVAL_MS = 100;
export const ACTIVE_POLL_INTERVAL_MS = 20;
export const ACTIVE_WINDOW_MS = 1000;
export const SEND_TIMEOUT_MS = 8000;
export const DISCONNECT_TIMEOUT_MS = 2000;
export const MAX_QUEUED = 1024;
export const REPLICA_COOKIE = "hivemind_http_replica";
const REFUSAL_STATUSES = new Set([401, 403]);
const MAX_SHOWN_ERROR = 200;

/** What one (endpoint, access key) keeps across carriers. */
interface Admission {
  cookie: string | undefined;
  held: boolean;
}

const admissions = new Map<string, Admission>();

function admissionFor(base: string, accessKey: string): Admission {
  const key = `${base}|${toHex(sha256(utf8(accessKey))).slice(0, 32)}`;
  let admission = admissions.get(key);
  if (admission === undefined) {
    admission = { cookie: undefined, held: false };
    admissions.set(key, admission);
  }
  return admission;
}

function hubErrorText(value: unknown): string {
  return (typeof value === "string" ? value : JSON.stringify(value)).slice(0, MAX_SHOWN_ERROR);
}

/** A request that got no answer within its timeout. */
class RequestTimedOut extends CarrierClosed {
  override name = "RequestTimedOut";
}

/** An HTTPS polling session with a hub (spec 4.2). */
export class HTTPSCarrier implements Carrier {
  readonly protocol = "https" as const;
  readonly pinId: string;
  readonly endpoint: string;
  private readonly scheme: string;
  private readonly host: string;
  private readonly urls = new Map<string, string>();
  private readonly baseUrl: URL | undefined;
  private readonly authorization: string;
  private readonly admission: Admission;
  private readonly serial = new Serial();
  private readonly inbox = new Inbox();
  private client: HttpClient | undefined;
  private opened = false;
  private closed = false;
  private unreachable = false;
  private binaryPhase = false;
  private activeUntil = 0;
  private wake: (() => void) | undefined;
  private poller: Promise<void> | undefined;
  private readonly polls = new AbortController();
  private socketOpenMs: number | undefined;

  constructor(
    base: string,
    private readonly options: { accessKey: string; userAgent: string; tls: TlsOptions; sendTimeoutMs?: number },
  ) {
    const trimmed = base.trim();
    this.pinId = httpsPinId(trimmed);
    let parsed: URL | undefined;
    try {
      parsed = new URL(trimmed);
    } catch {
      parsed = undefined;
    }
    this.baseUrl = parsed;
    this.scheme = parsed?.protocol.replace(/:$/, "").toLowerCase() ?? "";
    this.host = parsed?.hostname ?? "";
    this.endpoint = parsed !== undefined ? `${parsed.protocol}//${parsed.host}${parsed.pathname.replace(/\/+$/, "")}` : trimmed;
    this.authorization = authorizationValue(options.userAgent, options.accessKey);
    this.admission = admissionFor(trimmed, options.accessKey);
  }

  get alive(): boolean {
    return this.opened && !this.closed && this.inbox.failed === undefined;
  }

  private get sendTimeoutMs(): number {
    return this.options.sendTimeoutMs ?? SEND_TIMEOUT_MS;
  }

  bindSession(): void {}

  extraInfo(): Record<string, unknown> {
    return { socketOpenMs: this.socketOpenMs, tls: true, verifyTls: this.options.tls.verify, pollIntervalMs: POLL_INTERVAL_MS };
  }

  // ------------------------------------------------------------------ requests

  private url(path: string): string {
    let url = this.urls.get(path);
    if (url === undefined) {
      const base = this.baseUrl as URL;
      const target = new URL(base.href);
      target.pathname = base.pathname.replace(/\/+$/, "") + path;
      target.searchParams.delete("authorization");
      target.searchParams.append("authorization", this.authorization);
      target.hash = "";
      url = target.toString();
      this.urls.set(path, url);
    }
    return url;
  }

  /** `text` without the credential (it is in every URL). */
  private scrub(text: string): string {
    return text.split(this.authorization).join("<redacted>").split(encodeURIComponent(this.authorization)).join("<redacted>");
  }

  private async call(
    method: "GET" | "POST",
    path: string,
    options: { form?: [string, string][]; timeoutMs?: number; alreadyDisconnectedOk?: boolean; signal?: AbortSignal } = {},
  ): Promise<JsonObject> {
    const client = this.client;
    if (client === undefined) throw new CarrierClosed("The HTTPS session is not open.");
    const headers: Record<string, string> = {};
    if (this.admission.cookie) headers.cookie = this.admission.cookie;
    let body: string | undefined;
    if (options.form !== undefined) {
      body = new URLSearchParams(options.form).toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else if (method === "POST") {
      body = "";
      headers["content-type"] = "application/octet-stream";
    }
    const response = await this.serial.run(async () => {
      try {
        const timeoutMs = options.timeoutMs ?? this.sendTimeoutMs;
        return await client.request({ method, url: this.url(path), headers, body, timeoutMs, signal: options.signal });
      } catch (error) {
        if (options.signal?.aborted) throw new CarrierClosed("The HTTPS session is closed.");
        this.unreachable = true;
        if (error instanceof HttpTimeoutError) throw new RequestTimedOut(`The hub did not answer ${path} in time.`);
        throw new CarrierClosed(`HTTPS request ${path} failed: ${this.scrub(String((error as Error).message ?? error))}`);
      }
    });
    this.keepCookie(response);
    return HTTPSCarrier.read(path, response, options.alreadyDisconnectedOk ?? false);
  }

  private keepCookie(response: HttpResponse): void {
    for (const header of response.setCookies) {
      const pair = (header.split(";", 1)[0] ?? "").trim();
      if (pair.startsWith(`${REPLICA_COOKIE}=`)) this.admission.cookie = pair;
    }
  }

  private static read(path: string, response: HttpResponse, alreadyDisconnectedOk: boolean): JsonObject {
    const status = response.status;
    if (status >= 300 && status < 400) {
      throw new CarrierClosed(`The hub answered ${path} with a redirect (HTTP ${status}); redirects are not followed.`, { code: status });
    }
    if (REFUSAL_STATUSES.has(status)) {
      throw new CarrierClosed(`The hub refused ${path} (HTTP ${status}).`, { code: status, refusalSignal: true });
    }
    if (status < 200 || status >= 300) throw new CarrierClosed(`The hub answered ${path} with HTTP ${status}.`, { code: status });
    let data: unknown;
    try {
      data = JSON.parse(fromUtf8(response.body));
    } catch {
      data = undefined;
    }
    if (!isObject(data)) throw new CarrierClosed(`Invalid HiveMind HTTP response to ${path}: not a JSON object.`, { code: status });
    const error = data.error;
    if (error) {
      if (alreadyDisconnectedOk && error === "Already Disconnected") return data;
      throw new CarrierClosed(`The hub answered ${path} with an error: ${hubErrorText(error)}`, { code: status });
    }
    return data;
  }

  // ------------------------------------------------------------------ opening and closing

  async open(timeoutMs: number): Promise<void> {
    if (this.scheme !== "https" || !this.host) {
      throw new CarrierOpenError(
        `Refusing to use the HTTP transport over ${this.scheme || "a schemeless"}:// URL; the hub's endpointBase() must be an https:// URL with a host.`,
      );
    }
    if (this.opened || this.closed) throw new CarrierOpenError("An HTTPS carrier opens once; use a fresh one per connection.");
    const started = performance.now();
    this.client = platform().httpClient(this.options.tls, { maxConnections: 1 });
    if (this.admission.held) {
      try {
        await this.disconnect(Math.min(DISCONNECT_TIMEOUT_MS, timeoutMs));
      } catch (error) {
        if (error instanceof CarrierClosed) {
          throw new CarrierOpenError(`Previous connection cleanup failed (${error.message}); not reconnecting until /disconnect succeeds.`);
        }
        throw error;
      }
    }
    let data: JsonObject;
    try {
      data = await this.call("POST", "/connect", { timeoutMs: Math.max(timeoutMs - (performance.now() - started), 1) });
    } catch (error) {
      if (error instanceof RequestTimedOut) throw new CarrierTimeout(error.message);
      if (error instanceof CarrierClosed) {
        if (error.refusalSignal) throw new CarrierRefused(error.message, error.code ?? 401);
        throw new CarrierOpenError(error.message);
      }
      throw error;
    }
    if ("status" in data && data.status !== "Connected") {
      throw new CarrierOpenError(`The hub answered /connect with status ${JSON.stringify(hubErrorText(data.status))}.`);
    }
    this.admission.held = true;
    this.opened = true;
    this.socketOpenMs = performance.now() - started;
    this.poller = this.pollLoop();
  }

  private async disconnect(timeoutMs: number): Promise<void> {
    await this.call("POST", "/disconnect", { timeoutMs, alreadyDisconnectedOk: true });
    this.admission.held = false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    this.inbox.fail(new CarrierClosed("The HTTPS session is closed."));
    this.polls.abort();
    await this.poller;
    const client = this.client;
    if (client === undefined) return;
    try {
      if (this.admission.held && !this.unreachable) await this.disconnect(Math.min(DISCONNECT_TIMEOUT_MS, this.sendTimeoutMs));
    } catch {
      // closing is best effort; the next connect sends the /disconnect again
    } finally {
      this.client = undefined;
      await client.close().catch(() => undefined);
    }
  }

  // ------------------------------------------------------------------ sending

  async sendText(text: string): Promise<void> {
    await this.send([["message", text]]);
  }

  async sendBinary(data: Uint8Array): Promise<void> {
    this.binaryPhase = true;
    await this.send([
      ["message", toBase64(data)],
      ["binary", "1"],
    ]);
  }

  private async send(form: [string, string][]): Promise<void> {
    const failure = this.inbox.failed;
    if (failure !== undefined) throw failure;
    if (!this.opened || this.closed) throw new CarrierClosed("The HTTPS session is not open.");
    try {
      await this.call("POST", "/send_message", { form });
    } catch (error) {
      if (error instanceof CarrierClosed) this.inbox.fail(error);
      throw error;
    }
    this.activeUntil = performance.now() + ACTIVE_WINDOW_MS;
    this.wake?.();
  }

  // ------------------------------------------------------------------ receiving

  receive(timeoutMs?: number): Promise<CarrierMessage> {
    return this.inbox.next(timeoutMs);
  }

  takeReady(): CarrierMessage | undefined {
    return this.inbox.take();
  }

  private async pollLoop(): Promise<void> {
    try {
      while (!this.closed && this.inbox.failed === undefined) {
        const received = this.inbox.size < MAX_QUEUED ? await this.pollOnce() : false;
        if (!received && !this.closed) await this.idle();
      }
    } catch (error) {
      if (!this.closed) {
        this.inbox.fail(error instanceof CarrierClosed ? error : new CarrierClosed(`The HTTPS poller failed: ${String(error)}`));
      }
    }
  }

  private idle(): Promise<void> {
    const active = performance.now() < this.activeUntil;
    const interval = active ? ACTIVE_POLL_INTERVAL_MS : POLL_INTERVAL_MS;
    return new Promise((resolve) => {
      const timer = setTimeout(done, interval);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  /** One round of polls; true when anything arrived. */
  private async pollOnce(): Promise<boolean> {
    const binaryPhase = this.binaryPhase;
    const signal = this.polls.signal;
    const data = await this.call("GET", "/get_messages", { signal });
    const messages = data.messages ?? [];
    if (!Array.isArray(messages) || !messages.every((m) => typeof m === "string")) {
      throw new CarrierClosed("Invalid HiveMind HTTP response to /get_messages: messages is not a list of strings.");
    }
    for (const message of messages as string[]) this.inbox.push(message);
    let received = messages.length;
    if (binaryPhase && !this.closed) {
      const binary = await this.call("GET", "/get_binary_messages", { signal });
      const encoded = binary.b64_messages ?? [];
      if (!Array.isArray(encoded) || !encoded.every((m) => typeof m === "string")) {
        throw new CarrierClosed("Invalid HiveMind HTTP response to /get_binary_messages: b64_messages is not a list of strings.");
      }
      for (const item of encoded as string[]) {
        const bytes = fromBase64(item);
        if (bytes === undefined) throw new CarrierClosed("Invalid HiveMind HTTP response to /get_binary_messages: an item is not valid base64.");
        this.inbox.push(bytes);
      }
      received += encoded.length;
    }
    return received > 0;
  }
}
