/**
 * The WSS carrier: one WebSocket per session (spec 4.1).
 *
 * - URL: `identity.endpointFor("wss")` (`ws://` allowed when the identity names it), with an
 *   `authorization` query item = URL-encoded base64 of `"<useragent>:<access_key>"`;
 * - `User-Agent` header (Node.js), no subprotocol, no compression, TCP_NODELAY;
 * - negotiation in TEXT messages, Noise transport messages in BINARY messages;
 * - a close with 1000, 1005 or 1008 is the hub's refusal signal; no close frame is a drop.
 */

import { toBase64, utf8 } from "../protocol/bytes.js";
import { wssPinId } from "../noise-store.js";
import { platform } from "../platform/current.js";
import type { TlsOptions } from "../platform/types.js";
import { type Carrier, CarrierClosed, CarrierOpenError, type CarrierMessage, Inbox } from "./base.js";
import type { WebSocketConnection } from "./websocket.js";

export const REFUSAL_CLOSE_CODES: ReadonlySet<number> = new Set([1000, 1005, 1008]);
/** Largest WebSocket message accepted: one Noise transport message and some slack. */
export const MAX_WS_MESSAGE = 256 * 1024 + 1024;

/** Base64 (standard, padded) of `"<useragent>:<access_key>"`; URL-encoding happens later. */
export function authorizationValue(userAgent: string, accessKey: string): string {
  return toBase64(utf8(`${userAgent}:${accessKey}`));
}

/** The endpoint with any `authorization` query item replaced by this client's. */
export function authorizedUrl(endpoint: string, userAgent: string, accessKey: string): string {
  const url = new URL(endpoint);
  url.searchParams.delete("authorization");
  url.searchParams.append("authorization", authorizationValue(userAgent, accessKey));
  url.hash = "";
  return url.toString();
}

/** A WebSocket session with a hub's WSS endpoint. */
export class WSSCarrier implements Carrier {
  readonly protocol = "wss" as const;
  readonly pinId: string;
  private readonly url: string;
  private readonly inbox = new Inbox();
  private socket: WebSocketConnection | undefined;
  private socketOpenMs: number | undefined;

  constructor(
    readonly endpoint: string,
    private readonly options: { accessKey: string; userAgent: string; tls: TlsOptions },
  ) {
    const scheme = /^([a-z]+):\/\//i.exec(endpoint)?.[1]?.toLowerCase();
    if (scheme !== "ws" && scheme !== "wss") throw new CarrierOpenError("The WSS endpoint must be a ws:// or wss:// URL with a host.");
    this.pinId = wssPinId(endpoint);
    this.url = authorizedUrl(endpoint, options.userAgent, options.accessKey);
  }

  get alive(): boolean {
    return this.socket !== undefined && this.socket.open && this.inbox.failed === undefined;
  }

  bindSession(): void {}

  async open(timeoutMs: number): Promise<void> {
    const started = performance.now();
    const socket = await platform().webSocket.connect(this.url, {
      userAgent: this.options.userAgent,
      tls: this.options.tls,
      timeoutMs,
      maxPayload: MAX_WS_MESSAGE,
    });
    socket.onMessage = (data) => this.inbox.push(data);
    socket.onClose = (code) => {
      const shown = code ?? 1006;
      this.inbox.fail(
        new CarrierClosed(`The hub closed the WebSocket (${shown}).`, {
          code,
          refusalSignal: code !== undefined && REFUSAL_CLOSE_CODES.has(code),
        }),
      );
    };
    this.socket = socket;
    this.socketOpenMs = performance.now() - started;
  }

  private connection(): WebSocketConnection {
    if (this.socket === undefined) throw new CarrierClosed("The WebSocket is not open.");
    const failure = this.inbox.failed;
    if (failure !== undefined) throw failure;
    return this.socket;
  }

  async sendText(text: string): Promise<void> {
    await this.connection().send(text);
  }

  async sendBinary(data: Uint8Array): Promise<void> {
    await this.connection().send(data);
  }

  receive(timeoutMs?: number): Promise<CarrierMessage> {
    return this.inbox.next(timeoutMs);
  }

  takeReady(): CarrierMessage | undefined {
    return this.inbox.take();
  }

  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    this.inbox.fail(new CarrierClosed("The WebSocket was closed by this client."));
    if (socket !== undefined) await socket.close();
  }

  extraInfo(): Record<string, unknown> {
    return { socketOpenMs: this.socketOpenMs, tls: this.endpoint.toLowerCase().startsWith("wss:"), verifyTls: this.options.tls.verify };
  }
}
