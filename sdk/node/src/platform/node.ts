/** The Node.js host: files, environment, `ws`, `undici`, `mqtt` and argon2id in a worker thread. */

import { Worker } from "node:worker_threads";

import { ThalovantError } from "../errors.js";
import { HandshakeError } from "../protocol/errors.js";
import type { PskDerivation } from "../protocol/psk.js";
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

/**
 * argon2id in a worker thread, so the event loop keeps serving other links meanwhile. The worker
 * starts (and loads its WebAssembly) as soon as the derivation is created, while the carrier
 * opens and the hub says HELLO; it gets the password only when the offer has arrived.
 */
export function workerDerivation(): PskDerivation {
  const worker = new Worker(new URL("./psk-worker.js", import.meta.url));
  worker.unref();
  let outcome: Promise<Uint8Array> | undefined;
  let failure: Error | undefined;
  worker.once("error", (error) => {
    failure = new ThalovantError(`The PSK derivation failed: ${error.message}`);
  });
  return {
    derive(password, nodeId) {
      outcome ??= new Promise<Uint8Array>((resolve, reject) => {
        if (failure !== undefined) {
          reject(failure);
          return;
        }
        worker.once("message", (message: { psk?: Uint8Array; error?: { name: string; message: string } }) => {
          if (message.psk !== undefined) resolve(new Uint8Array(message.psk));
          else if (message.error?.name === "HandshakeError") reject(new HandshakeError(message.error.message));
          else reject(new ThalovantError(`The PSK derivation failed: ${message.error?.message ?? "unknown error"}`));
          void worker.terminate();
        });
        worker.once("error", (error) => reject(new ThalovantError(`The PSK derivation failed: ${error.message}`)));
        worker.once("exit", (code) => reject(new ThalovantError(`The PSK derivation worker exited (${code}).`)));
        worker.ref();
        worker.postMessage({ password, nodeId });
      });
      return outcome;
    },
    cancel() {
      void worker.terminate();
    },
  };
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
  startPskDerivation: workerDerivation,
  defaultNoiseStore: noiseStoreFor,
  httpClient: (tls, options) => new UndiciHttpClient(tls, options.maxConnections),
  webSocket: nodeWebSockets,
  mqtt: nodeMqtt,
  tlsCheck,
  yieldToIo: () => new Promise((resolve) => setImmediate(resolve)),
};
