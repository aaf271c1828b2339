/**
 * The Node.js host: files, environment, `ws`, `undici`, `mqtt`, and argon2id on the native
 * `@node-rs/argon2` (or `hash-wasm` in a worker thread when the native module cannot load).
 */

import { Worker } from "node:worker_threads";

import { ThalovantError } from "../errors.js";
import { HandshakeError } from "../protocol/errors.js";
import { pskDeriverWith, type PskDerivation } from "../protocol/psk.js";
import { log } from "../runtime/log.js";
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
import { nativeArgon2, type NativeArgon2Loader } from "./node-argon2.js";
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

let fallbackLogged = false;

/**
 * argon2id on the native module when it loads (its import starts with the first derivation, and
 * it computes on libuv's thread pool), else {@link workerDerivation}, warmed as soon as the
 * native module is known to be missing. A failure of the native computation other than a bad
 * input also falls back to the worker. Both give the same bytes (the conformance vectors).
 */
export function nativeDerivation(loader: NativeArgon2Loader = nativeArgon2, fallback: () => PskDerivation = workerDerivation): PskDerivation {
  const native = loader.load();
  let worker: PskDerivation | undefined;
  let cancelled = false;
  const useWorker = (): PskDerivation => {
    if (!fallbackLogged && loader.loadError !== undefined) {
      fallbackLogged = true;
      log.info(`argon2id: the native @node-rs/argon2 is unavailable (${loader.loadError.message}); using hash-wasm.`);
    }
    worker ??= fallback();
    return worker;
  };
  void native.then((argon2) => {
    if (argon2 === undefined && !cancelled) useWorker();
  });
  return {
    async derive(password, nodeId) {
      const argon2 = await native;
      if (argon2 !== undefined && !cancelled) {
        try {
          return await pskDeriverWith(argon2)(password, nodeId);
        } catch (error) {
          if (error instanceof HandshakeError || error instanceof TypeError) throw error;
          log.warn(`argon2id: the native @node-rs/argon2 failed (${String(error)}); using hash-wasm.`);
        }
      }
      if (cancelled) throw new ThalovantError("The PSK derivation was cancelled.");
      return useWorker().derive(password, nodeId);
    },
    cancel() {
      cancelled = true;
      worker?.cancel();
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
  startPskDerivation: () => nativeDerivation(),
  defaultNoiseStore: noiseStoreFor,
  httpClient: (tls, options) => new UndiciHttpClient(tls, options.maxConnections),
  webSocket: nodeWebSockets,
  mqtt: nodeMqtt,
  tlsCheck,
};
