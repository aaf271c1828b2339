/** The WebSocket connection a host provides to the WSS carrier (`ws` in Node.js, native in browsers). */

import type { TlsOptions } from "../platform/types.js";

/** One open WebSocket. Callbacks are set once by the carrier, before any message can arrive. */
export interface WebSocketConnection {
  /** Send one message (text for strings, binary for bytes); rejects when the socket is closed. */
  send(data: string | Uint8Array): Promise<void>;
  /** Close normally (code 1000); resolves once closed (dropping the socket after a bound). */
  close(): Promise<void>;
  terminate(): void;
  readonly open: boolean;
  onMessage: (data: string | Uint8Array) => void;
  /** `code` is undefined when no close frame came (1006); 1005 is a close frame without status. */
  onClose: (code: number | undefined, reason: string) => void;
}

/** Options of one WebSocket connection. */
export interface WebSocketOptions {
  userAgent: string;
  tls: TlsOptions;
  timeoutMs: number;
  maxPayload: number;
}

/**
 * Opens WebSockets. `connect` rejects with `CarrierRefused` (upgrade answered 401/403),
 * `CarrierOpenError` (anything else that fails) or `CarrierTimeout`.
 */
export interface WebSocketFactory {
  connect(url: string, options: WebSocketOptions): Promise<WebSocketConnection>;
}
