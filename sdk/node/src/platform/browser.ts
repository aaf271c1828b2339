/**
 * The browser host: native WebSocket and fetch, no files and no environment. Identities are
 * passed in (`ThalovantIdentity.fromMapping`), Noise state lives in `localStorage` by default
 * (or any {@link NoiseStateStore} given to the client), and the TLS trust is the browser's.
 */

import { CarrierOpenError, CarrierTimeout } from "../carriers/base.js";
import { type HttpClient, HttpNetworkError, type HttpRequest, type HttpResponse, HttpTimeoutError, MAX_RESPONSE_BYTES } from "../carriers/http.js";
import type { WebSocketConnection, WebSocketFactory, WebSocketOptions } from "../carriers/websocket.js";
import { ThalovantIdentityError } from "../errors.js";
import { LocalStorageNoiseStore, MemoryNoiseStore } from "../noise-store.js";
import { ThalovantError } from "../errors.js";
import { HandshakeError } from "../protocol/errors.js";
import { derivePsk, directDerivation, type PskDerivation } from "../protocol/psk.js";
import { VERSION } from "../version.js";
import type { Platform } from "./types.js";

const CLOSE_TIMEOUT_MS = 8000;

function noFiles(): never {
  throw new ThalovantIdentityError(
    "The browser build has no files: pass the identity in with ThalovantIdentity.fromMapping(...) or fromJson(...).",
  );
}

class BrowserWebSocket implements WebSocketConnection {
  onMessage: (data: string | Uint8Array) => void = () => undefined;
  onClose: (code: number | undefined, reason: string) => void = () => undefined;
  private readonly closed: Promise<void>;

  constructor(private readonly socket: WebSocket) {
    socket.onmessage = (event: MessageEvent) => {
      const data: unknown = event.data;
      this.onMessage(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer));
    };
    this.closed = new Promise<void>((resolve) => {
      socket.onclose = (event: CloseEvent) => {
        // browsers report 1006 when no close frame came, 1005 for a close frame without a status
        this.onClose(event.code === 1006 ? undefined : event.code, event.reason);
        resolve();
      };
    });
  }

  get open(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  async send(data: string | Uint8Array): Promise<void> {
    if (this.socket.readyState !== WebSocket.OPEN) throw new CarrierOpenError("The WebSocket is closed.");
    this.socket.send(data);
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    this.socket.close(1000);
    await Promise.race([this.closed, new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS))]);
  }

  terminate(): void {
    this.socket.close();
  }
}

/** Native browser WebSockets. A failed upgrade shows no status to a page: it is a plain open error. */
const browserWebSockets: WebSocketFactory = {
  connect(url: string, options: WebSocketOptions): Promise<WebSocketConnection> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.binaryType = "arraybuffer";
      const timer = setTimeout(() => {
        socket.close();
        reject(new CarrierTimeout("The WebSocket opening handshake timed out."));
      }, options.timeoutMs);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve(new BrowserWebSocket(socket));
      };
      socket.onclose = () => {
        clearTimeout(timer);
        reject(new CarrierOpenError("Cannot open the WebSocket (the browser shows no reason: TLS, refusal or network)."));
      };
    });
  },
};

/** fetch without redirects or cookies; Set-Cookie is invisible to pages, so no replica cookie. */
class FetchHttpClient implements HttpClient {
  async request(request: HttpRequest): Promise<HttpResponse> {
    const timeout = AbortSignal.timeout(Math.max(1, Math.ceil(request.timeoutMs)));
    const signal = request.signal !== undefined ? AbortSignal.any([timeout, request.signal]) : timeout;
    const headers = Object.fromEntries(
      Object.entries(request.headers ?? {}).filter(([name]) => !["cookie", "user-agent"].includes(name.toLowerCase())),
    );
    try {
      const response = await fetch(request.url, {
        method: request.method,
        headers,
        body: request.body === undefined || request.method === "GET" ? undefined : (request.body as BodyInit),
        redirect: "manual",
        credentials: "omit",
        cache: "no-store",
        signal,
      });
      const declared = Number(response.headers.get("content-length") ?? "0");
      if (declared > MAX_RESPONSE_BYTES) throw new HttpNetworkError(`The response is larger than ${MAX_RESPONSE_BYTES} bytes.`);
      const body = new Uint8Array(await response.arrayBuffer());
      if (body.length > MAX_RESPONSE_BYTES) throw new HttpNetworkError(`The response is larger than ${MAX_RESPONSE_BYTES} bytes.`);
      const out: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        out[name.toLowerCase()] = value;
      });
      // an opaque redirect has status 0: report it as the redirect it is
      const status = response.type === "opaqueredirect" ? 302 : response.status;
      return { status, headers: out, setCookies: [], body };
    } catch (error) {
      if (timeout.aborted) throw new HttpTimeoutError(`No answer within ${request.timeoutMs} ms.`);
      if (error instanceof HttpNetworkError) throw error;
      throw new HttpNetworkError(`${(error as Error).message} (network, TLS or CORS: the browser shows no more)`);
    }
  }

  async close(): Promise<void> {}
}

/** The PSK worker's code, put in by the one-file browser bundle; undefined in other builds. */
declare const THALOVANT_PSK_WORKER_SOURCE: string | undefined;

function workerSource(): string | undefined {
  return typeof THALOVANT_PSK_WORKER_SOURCE === "string" ? THALOVANT_PSK_WORKER_SOURCE : undefined;
}

/**
 * argon2id in a Web Worker started from the bundle's own code (a Blob URL), so the page stays
 * responsive; on the main thread when the build carries no worker or the page forbids it (CSP).
 */
function browserDerivation(): PskDerivation {
  const source = workerSource();
  let worker: Worker | undefined;
  if (source !== undefined && typeof Worker !== "undefined" && typeof Blob !== "undefined") {
    try {
      const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
      worker = new Worker(url, { type: "module" });
      URL.revokeObjectURL(url);
    } catch {
      worker = undefined;
    }
  }
  if (worker === undefined) return directDerivation(derivePsk);
  const running = worker;
  return {
    derive(password, nodeId) {
      return new Promise<Uint8Array>((resolve, reject) => {
        running.onmessage = (event: MessageEvent) => {
          const message = event.data as { psk?: Uint8Array; error?: { name: string; message: string } };
          running.terminate();
          if (message.psk !== undefined) resolve(new Uint8Array(message.psk));
          else if (message.error?.name === "HandshakeError") reject(new HandshakeError(message.error.message));
          else reject(new ThalovantError(`The PSK derivation failed: ${message.error?.message ?? "unknown error"}`));
        };
        running.onerror = () => {
          running.terminate();
          derivePsk(password, nodeId).then(resolve, reject); // a worker the page could not run
        };
        running.postMessage({ password, nodeId });
      });
    },
    cancel() {
      running.terminate();
    },
  };
}

export const browserPlatform: Platform = {
  name: "browser",
  userAgent: `ThalovantBrowserSDK/${VERSION}`,
  env: () => undefined,
  absolutePath: (path) => path,
  readPrivateText: async () => noFiles(),
  writePrivateText: async () => noFiles(),
  exists: async () => false,
  defaultConfigPath: () => noFiles(),
  parseYaml: () => noFiles(),
  configApiUrl: () => undefined,
  startPskDerivation: browserDerivation,
  defaultNoiseStore: () =>
    (globalThis as { localStorage?: unknown }).localStorage !== undefined ? new LocalStorageNoiseStore() : new MemoryNoiseStore(),
  httpClient: () => new FetchHttpClient(),
  webSocket: browserWebSockets,
  mqtt: undefined,
};
