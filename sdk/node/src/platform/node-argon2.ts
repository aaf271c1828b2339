/**
 * argon2id on the native `@node-rs/argon2` (Rust, prebuilt per platform through its optional
 * dependencies): about twice as fast as the WebAssembly one, and it runs on libuv's thread pool,
 * so the event loop keeps running without a worker thread of our own. The module is imported the
 * first time a derivation starts; when it cannot load (no binary for this platform, a failed
 * optional install), the Node.js host falls back to `hash-wasm` in a worker thread.
 */

import { ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB, PSK_LENGTH, type Argon2id } from "../protocol/psk.js";

/** The one function of `@node-rs/argon2` this uses. */
export interface NativeArgon2Module {
  hashRaw(password: Uint8Array, options: Record<string, unknown>): Promise<Uint8Array>;
}

/** `Algorithm.Argon2id` and `Version.V0x13` of `@node-rs/argon2` (const enums in its typings). */
const ALGORITHM_ARGON2ID = 2;
const VERSION_0X13 = 1;

/** argon2id with the spec's parameters on `native`. */
export function nativeArgon2idOn(native: NativeArgon2Module): Argon2id {
  return async (secret, salt) => {
    const out = await native.hashRaw(secret, {
      salt,
      timeCost: ARGON2_ITERATIONS,
      memoryCost: ARGON2_MEMORY_KIB,
      parallelism: ARGON2_LANES,
      outputLen: PSK_LENGTH,
      algorithm: ALGORITHM_ARGON2ID,
      version: VERSION_0X13,
    });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength).slice();
  };
}

/**
 * Loads the native argon2id once: resolves to it, or to undefined when the module cannot load
 * (the reason is kept in {@link loadError}).
 */
export class NativeArgon2Loader {
  private loading: Promise<Argon2id | undefined> | undefined;
  loadError: Error | undefined;

  constructor(private readonly importModule: () => Promise<NativeArgon2Module> = importNodeRsArgon2) {}

  load(): Promise<Argon2id | undefined> {
    this.loading ??= this.importModule().then(
      (native) => {
        if (typeof native.hashRaw !== "function") throw new Error("@node-rs/argon2 has no hashRaw");
        return nativeArgon2idOn(native);
      },
    ).catch((error: unknown) => {
      this.loadError = error instanceof Error ? error : new Error(String(error));
      return undefined;
    });
    return this.loading;
  }
}

async function importNodeRsArgon2(): Promise<NativeArgon2Module> {
  const loaded = (await import("@node-rs/argon2")) as unknown as NativeArgon2Module & { default?: NativeArgon2Module };
  return typeof loaded.hashRaw === "function" ? loaded : (loaded.default ?? loaded);
}

/** The process-wide loader of the Node.js host. */
export const nativeArgon2 = new NativeArgon2Loader();
