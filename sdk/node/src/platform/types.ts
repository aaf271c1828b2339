/**
 * What the SDK needs from the JavaScript host it runs on. The Node.js entry point installs the
 * Node.js host (files, environment, `ws`, `undici`, `mqtt`, worker threads); the browser entry
 * point installs the browser host (no files; native WebSocket and fetch). Everything else in the
 * SDK is shared and platform-neutral.
 */

import type { HttpClient } from "../carriers/http.js";
import type { WebSocketFactory } from "../carriers/websocket.js";
import type { MqttConnector } from "../carriers/mqtt-types.js";
import type { NoiseStateStore } from "../noise-store.js";
import type { PskDerivation } from "../protocol/psk.js";

/** Options every network connection of one client shares. */
export interface TlsOptions {
  /** Verify certificates (default true; false is a development-only opt-out). */
  verify: boolean;
}

export interface Platform {
  readonly name: "node" | "browser";
  /** The default user agent of this build, e.g. `ThalovantNodeSDK/0.1.0`. */
  readonly userAgent: string;
  /** One environment variable (the browser has none). */
  env(name: string): string | undefined;

  // -- files (Node.js only) -----------------------------------------------------------------
  /** The absolute form of a user-given path (`~` expanded). */
  absolutePath(path: string): string;
  /** The text of a file that holds secrets: refused when group or others may access it. */
  readPrivateText(path: string): Promise<string>;
  /** Write a secrets file atomically with mode 0600; returns its absolute path. */
  writePrivateText(path: string, text: string): Promise<string>;
  /** Whether a file exists. */
  exists(path: string): Promise<boolean>;
  /** The per-user config file path. */
  defaultConfigPath(): string;
  /** Parse a YAML document (the config file). */
  parseYaml(text: string): unknown;
  /** The top-level `api_url` of the config file, if any (no 0600 rule: a URL is no secret). */
  configApiUrl(): string | undefined;

  // -- data plane ---------------------------------------------------------------------------
  /** argon2id, started at the beginning of a first contact (off the event loop where the host allows it). */
  startPskDerivation(): PskDerivation;
  /**
   * The Noise state a client uses when none is given: `directory` when set, else the host's
   * default for an identity read from `sourcePath` whose hub is `hubHost` (spec 1.8).
   */
  defaultNoiseStore(options: { directory?: string | undefined; sourcePath?: string | undefined; hubHost?: string | undefined }): NoiseStateStore;
  /** HTTP requests (control plane and the HTTPS carrier). */
  httpClient(tls: TlsOptions, options: { maxConnections: number }): HttpClient;
  /** WebSocket connections (the WSS carrier). */
  readonly webSocket: WebSocketFactory;
  /** MQTT connections (Node.js only). */
  readonly mqtt: MqttConnector | undefined;
  /** The doctor's TLS check of `url` (undefined: the host cannot check TLS on its own). */
  tlsCheck?(url: string, timeoutMs: number, verify: boolean): Promise<{ ok: boolean; detail: string }>;
}
