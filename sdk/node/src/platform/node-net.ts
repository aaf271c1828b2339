/**
 * Network I/O of the Node.js host: TLS trust, HTTP (undici), WebSockets (`ws`), MQTT (`mqtt`)
 * and the doctor's TLS check. TCP_NODELAY is on for every socket.
 *
 * Trust: certificates are always verified unless a caller opts out (`selfSigned`). The trust
 * store is Node's own (its bundled roots and `NODE_EXTRA_CA_CERTS`) plus the bundle that
 * `SSL_CERT_FILE` names, so a development CA is trusted through either variable. One TLS context
 * is built per bundle and reused by every connection.
 */

import { existsSync, readFileSync, statSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";
import { connect as tlsConnect, createSecureContext, type PeerCertificate, rootCertificates, type SecureContext, type TLSSocket } from "node:tls";

import { connect as mqttConnect, type IClientOptions, type MqttClient } from "mqtt";
import { Agent, request as undiciRequest } from "undici";
import { WebSocket } from "ws";

import { CarrierOpenError, CarrierRefused, CarrierTimeout } from "../carriers/base.js";
import { type HttpClient, HttpNetworkError, type HttpRequest, type HttpResponse, HttpTimeoutError, MAX_RESPONSE_BYTES } from "../carriers/http.js";
import type { MqttConnectOptions, MqttConnector, MqttSession } from "../carriers/mqtt-types.js";
import type { WebSocketConnection, WebSocketFactory, WebSocketOptions } from "../carriers/websocket.js";
import { urlParts } from "../protocols.js";
import type { TlsOptions } from "./types.js";

export const TRUST_VARIABLES = ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"] as const;
const PING_INTERVAL_MS = 20_000;
const PING_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 8000;
/** Bytes queued on a WebSocket above which a send waits for the queue to drain. */
const SEND_HIGH_WATER = 1024 * 1024;

/** The CA bundle files the trust variables name (those that exist). */
export function trustFiles(): string[] {
  return TRUST_VARIABLES.map((variable) => process.env[variable]).filter((value): value is string => Boolean(value) && existsSync(value as string));
}

let cached: { key: string; context: SecureContext | undefined } | undefined;

/** Node's roots plus the bundles of {@link trustFiles}, as one cached TLS context (undefined: Node's default). */
export function trustedContext(): SecureContext | undefined {
  const files = trustFiles();
  const key = files.map((file) => `${file}:${statSync(file).mtimeMs}`).join("|");
  if (cached?.key !== key) {
    const context = files.length === 0 ? undefined : createSecureContext({ ca: [...rootCertificates, ...files.map((file) => readFileSync(file, "utf8"))] });
    cached = { key, context };
  }
  return cached.context;
}

function tlsSettings(tls: TlsOptions): { secureContext?: SecureContext; rejectUnauthorized: boolean } {
  const secureContext = tls.verify ? trustedContext() : undefined;
  return { ...(secureContext !== undefined ? { secureContext } : {}), rejectUnauthorized: tls.verify };
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
  const err = error as NodeJS.ErrnoException & { cause?: unknown };
  if (err?.cause !== undefined && err.cause !== error) return describe(err.cause);
  return err?.code ? `${err.code}${err.message ? `: ${err.message}` : ""}` : String(err?.message ?? error);
}

// ---------------------------------------------------------------- HTTP

function headerRecord(headers: IncomingHttpHeaders): [Record<string, string>, string[]] {
  const out: Record<string, string> = {};
  let cookies: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const key = name.toLowerCase();
    if (key === "set-cookie") cookies = Array.isArray(value) ? value : [value];
    out[key] = Array.isArray(value) ? value.join(", ") : value;
  }
  return [out, cookies];
}

/** HTTP/1.1 over one undici agent (keep-alive, TCP_NODELAY, no redirects, the trust above). */
export class UndiciHttpClient implements HttpClient {
  private readonly agent: Agent;

  constructor(tls: TlsOptions, maxConnections: number) {
    this.agent = new Agent({
      connections: maxConnections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: { ...tlsSettings(tls), noDelay: true },
    });
  }

  async request(request: HttpRequest): Promise<HttpResponse> {
    const timeout = AbortSignal.timeout(Math.max(1, Math.ceil(request.timeoutMs)));
    const signal = request.signal !== undefined ? AbortSignal.any([timeout, request.signal]) : timeout;
    try {
      const response = await undiciRequest(request.url, {
        dispatcher: this.agent,
        method: request.method,
        headers: request.headers,
        body: request.body === undefined ? undefined : typeof request.body === "string" ? request.body : Buffer.from(request.body),
        signal,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          response.body.destroy();
          throw new HttpNetworkError(`The response is larger than ${MAX_RESPONSE_BYTES} bytes.`);
        }
        chunks.push(chunk);
      }
      const joined = Buffer.concat(chunks);
      const body = new Uint8Array(joined.buffer, joined.byteOffset, joined.byteLength);
      const [headers, setCookies] = headerRecord(response.headers);
      return { status: response.statusCode, headers, setCookies, body };
    } catch (error) {
      if (timeout.aborted) throw new HttpTimeoutError(`No answer within ${request.timeoutMs} ms.`);
      if (error instanceof HttpNetworkError) throw error;
      throw new HttpNetworkError(describe(error));
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

// ---------------------------------------------------------------- WebSocket

class NodeWebSocket implements WebSocketConnection {
  onMessage: (data: string | Uint8Array) => void = () => undefined;
  onClose: (code: number | undefined, reason: string) => void = () => undefined;
  private pinger: ReturnType<typeof setInterval> | undefined;
  private pongDeadline: ReturnType<typeof setTimeout> | undefined;
  private readonly closed: Promise<void>;

  constructor(private readonly socket: WebSocket) {
    this.closed = new Promise<void>((resolve) => {
      socket.on("close", (code: number, reason: Buffer) => {
        this.stopPings();
        // ws reports 1006 when no close frame came, 1005 for a close frame without a status
        this.onClose(code === 1006 ? undefined : code, reason.toString("utf8"));
        resolve();
      });
    });
    socket.on("message", (data: Buffer, isBinary: boolean) => {
      this.onMessage(isBinary ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : data.toString("utf8"));
    });
    socket.on("error", () => undefined); // always followed by "close"
    socket.on("pong", () => {
      if (this.pongDeadline !== undefined) clearTimeout(this.pongDeadline);
      this.pongDeadline = undefined;
    });
    // a PING every 20 s; no PONG within 10 s drops the link
    this.pinger = setInterval(() => {
      if (this.pongDeadline !== undefined) return;
      this.socket.ping();
      this.pongDeadline = setTimeout(() => this.socket.terminate(), PING_TIMEOUT_MS);
      this.pongDeadline.unref();
    }, PING_INTERVAL_MS);
    this.pinger.unref();
  }

  private stopPings(): void {
    if (this.pinger !== undefined) clearInterval(this.pinger);
    if (this.pongDeadline !== undefined) clearTimeout(this.pongDeadline);
    this.pinger = undefined;
    this.pongDeadline = undefined;
  }

  get open(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  /**
   * Queue one message. Like the Python SDK's WebSocket, this does not wait for the bytes to be
   * flushed (a failed write closes the socket, which the link reports); it waits only when more
   * than {@link SEND_HIGH_WATER} bytes are still queued.
   */
  send(data: string | Uint8Array): Promise<void> {
    if (this.socket.readyState !== WebSocket.OPEN) return Promise.reject(new CarrierOpenError("The WebSocket is closed."));
    if (this.socket.bufferedAmount <= SEND_HIGH_WATER) {
      this.socket.send(data, { binary: typeof data !== "string" }, () => undefined);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.socket.send(data, { binary: typeof data !== "string" }, (error) => (error ? reject(error) : resolve()));
    });
  }

  async close(): Promise<void> {
    this.stopPings();
    if (this.socket.readyState === WebSocket.CLOSED) return;
    this.socket.close(1000);
    const timer = setTimeout(() => this.socket.terminate(), CLOSE_TIMEOUT_MS);
    await this.closed;
    clearTimeout(timer);
  }

  terminate(): void {
    this.stopPings();
    this.socket.terminate();
  }
}

/** `ws` client sockets: no compression, the User-Agent header, status-aware upgrade failures. */
export const nodeWebSockets: WebSocketFactory = {
  connect(url: string, options: WebSocketOptions): Promise<WebSocketConnection> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, {
        headers: { "User-Agent": options.userAgent },
        perMessageDeflate: false,
        maxPayload: options.maxPayload,
        handshakeTimeout: options.timeoutMs,
        followRedirects: false,
        ...tlsSettings(options.tls),
      });
      socket.binaryType = "nodebuffer";
      let settled = false;
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        socket.terminate();
        reject(error);
      };
      socket.on("unexpected-response", (_request, response) => {
        const status = response.statusCode ?? 0;
        response.resume();
        if (status === 401 || status === 403) fail(new CarrierRefused(`The hub refused the WebSocket upgrade (HTTP ${status}).`, status));
        else fail(new CarrierOpenError(`The hub answered the WebSocket upgrade with HTTP ${status}.`));
      });
      socket.on("error", (error: Error) => {
        if (/timed out/i.test(error.message)) fail(new CarrierTimeout("The WebSocket opening handshake timed out."));
        else fail(new CarrierOpenError(`Cannot open the WebSocket: ${describe(error)}`));
      });
      socket.on("close", () => fail(new CarrierOpenError("The WebSocket closed while opening.")));
      socket.on("open", () => {
        if (settled) return;
        settled = true;
        socket.removeAllListeners("error");
        socket.removeAllListeners("close");
        socket.removeAllListeners("unexpected-response");
        resolve(new NodeWebSocket(socket));
      });
    });
  },
};

// ---------------------------------------------------------------- MQTT

class NodeMqttSession implements MqttSession {
  onMessage: (topic: string, payload: Uint8Array) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;
  private ended = false;

  constructor(private readonly client: MqttClient) {
    client.on("message", (topic, payload) => this.onMessage(topic, new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength)));
    client.on("close", () => {
      if (!this.ended) this.onClose("connection closed");
      this.ended = true;
    });
    client.on("error", () => undefined); // followed by "close"
  }

  get connected(): boolean {
    return this.client.connected;
  }

  async subscribe(topic: string, qos: 0 | 1): Promise<number[]> {
    const grants = await this.client.subscribeAsync(topic, { qos });
    return grants.map((grant) => grant.qos);
  }

  publish(topic: string, payload: Uint8Array, qos: 0 | 1, retain: boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the broker did not acknowledge a publish within ${timeoutMs / 1000} s`)), timeoutMs);
      this.client.publish(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos, retain }, (error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      });
    });
  }

  end(timeoutMs: number): Promise<void> {
    this.ended = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.client.end(true);
        resolve();
      }, timeoutMs);
      this.client.end(false, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  destroy(): void {
    this.client.end(true);
  }
}

/** MQTT 3.1.1 over TLS with the `mqtt` package: no reconnect, clean session, TCP_NODELAY. */
export const nodeMqtt: MqttConnector = {
  connect(options: MqttConnectOptions): Promise<MqttSession> {
    return new Promise((resolve, reject) => {
      const settings: IClientOptions = {
        protocol: "mqtts",
        host: options.host,
        port: options.port,
        ...(isIP(options.host) === 0 ? { servername: options.host } : {}),
        clientId: options.clientId,
        username: options.username,
        password: options.password,
        protocolVersion: 4,
        clean: true,
        keepalive: options.keepaliveSeconds,
        reconnectPeriod: 0,
        connectTimeout: options.timeoutMs,
        resubscribe: false,
        will: { ...options.will, payload: Buffer.from(options.will.payload) },
        ...tlsSettings(options.tls),
      };
      const client = mqttConnect(settings);
      let settled = false;
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        client.end(true);
        reject(error);
      };
      const timer = setTimeout(() => fail(new CarrierTimeout("The MQTT broker did not answer in time.")), options.timeoutMs);
      client.once("connect", () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.removeAllListeners("error");
        const stream = (client as unknown as { stream?: { setNoDelay?: (on: boolean) => void } }).stream;
        stream?.setNoDelay?.(true);
        resolve(new NodeMqttSession(client));
      });
      client.on("error", (error) => {
        clearTimeout(timer);
        fail(new CarrierOpenError(`Cannot reach the MQTT broker: ${describe(error)}`));
      });
      client.on("close", () => {
        clearTimeout(timer);
        fail(new CarrierOpenError("The MQTT broker closed the connection."));
      });
    });
  },
};

// ---------------------------------------------------------------- the doctor's TLS check

/** Open TLS to the endpoint's host and report the version, issuer and trust store. */
export function tlsCheck(url: string, timeoutMs: number, verify: boolean): Promise<{ ok: boolean; detail: string }> {
  const parts = urlParts(url);
  const host = parts?.hostname ?? "";
  const port = parts?.port ? Number(parts.port) : parts?.scheme === "mqtts" ? 8883 : 443;
  const files = trustFiles();
  const store = files.length > 0 ? `Node's roots + ${files.join(" + ")}` : "Node's default store";
  return new Promise((resolve) => {
    const socket: TLSSocket = tlsConnect({ host, port, ...(isIP(host) === 0 ? { servername: host } : {}), ...tlsSettings({ verify }) });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, detail: `cannot open TLS to ${host}:${port}: timed out` });
    }, timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const cert: PeerCertificate = socket.getPeerCertificate();
      const issuer = cert?.issuer?.CN ?? cert?.issuer?.O;
      resolve({
        ok: true,
        detail: `${socket.getProtocol() ?? "?"} to ${host}:${port}, certificate verified against ${store}${issuer ? `, issued by ${issuer}` : ""}`,
      });
      socket.end();
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const verifying = /CERT|SELF_SIGNED|VERIFY|ISSUER/i.test(error.code ?? "");
      resolve({
        ok: false,
        detail: verifying
          ? `certificate of ${host}:${port} does not verify against ${store}: ${error.message}`
          : `cannot open TLS to ${host}:${port}: ${describe(error)}`,
      });
    });
  });
}
