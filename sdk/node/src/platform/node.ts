/** The Node.js host: files, environment, `ws`, `undici`, `mqtt` and argon2id in a worker thread. */

import { Worker } from "node:worker_threads";

import { ThalovantError } from "../errors.js";
import { HandshakeError } from "../protocol/errors.js";
import { VERSION } from "../version.js";
import {
  absolutePath,
  configApiUrl,
  defaultConfigPath,
  exists,
  noiseStoreFor,
  parseYaml,
  readPrivateText,
  writePrivateText,
} from "./node-files.js";
import { nodeMqtt, nodeWebSockets, tlsCheck, UndiciHttpClient } from "./node-net.js";
import type { Platform } from "./types.js";

/** argon2id in a worker thread, so the event loop keeps serving other links meanwhile. */
export function deriveInWorker(password: string, nodeId: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./psk-worker.js", import.meta.url), { workerData: { password, nodeId } });
    let settled = false;
    worker.once("message", (message: { psk?: Uint8Array; error?: { name: string; message: string } }) => {
      settled = true;
      if (message.psk !== undefined) resolve(new Uint8Array(message.psk));
      else if (message.error?.name === "HandshakeError") reject(new HandshakeError(message.error.message));
      else reject(new ThalovantError(`The PSK derivation failed: ${message.error?.message ?? "unknown error"}`));
      void worker.terminate();
    });
    worker.once("error", (error) => {
      if (!settled) reject(new ThalovantError(`The PSK derivation failed: ${error.message}`));
      settled = true;
    });
    worker.once("exit", (code) => {
      if (!settled) reject(new ThalovantError(`The PSK derivation worker exited (${code}).`));
      settled = true;
    });
  });
}

export const nodePlatform: Platform = {
  name: "node",
  userAgent: `ThalovantNodeSDK/${VERSION}`,
  env: (name) => process.env[name],
  absolutePath,
  readPrivateText,
  writePrivateText,
  exists,
  defaultConfigPath,
  parseYaml,
  configApiUrl,
  derivePsk: deriveInWorker,
  defaultNoiseStore: noiseStoreFor,
  httpClient: (tls, options) => new UndiciHttpClient(tls, options.maxConnections),
  webSocket: nodeWebSockets,
  mqtt: nodeMqtt,
  tlsCheck,
};
