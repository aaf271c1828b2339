/**
 * The pre-shared key of a client identity (data-plane spec 3.5).
 *
 * argon2id(UTF-8 password, salt = SHA-256(UTF-8 node_id), t=3, m=64 MiB, p=1) -> 32 bytes. One
 * derivation costs a few hundred milliseconds of CPU and 64 MiB: derive once per (access key,
 * node_id) and cache it.
 *
 * The argon2id itself is pluggable ({@link Argon2id}): {@link pskDeriverWith} wraps any
 * implementation in the checks and the salt of the spec, so this module needs no host. The
 * default, {@link wasmArgon2id}, is `hash-wasm` (WebAssembly; browsers, and the fallback in
 * Node.js, where it runs in a worker thread); the Node.js host prefers a native one
 * (`platform/node-argon2.ts`). `hash-wasm` refuses an empty password, which argon2id allows: that
 * one case (never minted by a control plane, but part of the reference vectors) goes to
 * `@noble/hashes`, slower but the same function.
 */

import { argon2idAsync } from "@noble/hashes/argon2.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { argon2id } from "hash-wasm";

import { utf8 } from "./bytes.js";
import { HandshakeError } from "./errors.js";

export const PSK_LENGTH = 32;
export const ARGON2_ITERATIONS = 3;
export const ARGON2_MEMORY_KIB = 65536;
export const ARGON2_LANES = 1;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A function that derives the PSK of a password for a hub's node id. */
export type PskDeriver = (password: string, nodeId: string) => Promise<Uint8Array>;

/**
 * One argon2id implementation: argon2id(secret, salt) with the parameters of the spec
 * ({@link ARGON2_ITERATIONS}, {@link ARGON2_MEMORY_KIB}, {@link ARGON2_LANES}, version 0x13)
 * -> {@link PSK_LENGTH} bytes.
 */
export type Argon2id = (secret: Uint8Array, salt: Uint8Array) => Promise<Uint8Array>;

/**
 * One derivation, started before its inputs are known (a host may warm a worker meanwhile):
 * `derive` once, or `cancel` when the PSK turned out to be cached.
 */
export interface PskDerivation {
  derive(password: string, nodeId: string): Promise<Uint8Array>;
  cancel(): void;
}

/** A derivation that runs `deriver` when asked (nothing to warm). */
export function directDerivation(deriver: PskDeriver): PskDerivation {
  return { derive: deriver, cancel: () => undefined };
}

/** Compile and instantiate the argon2 WebAssembly ahead of a derivation (a tiny argon2id run). */
export async function warmPsk(): Promise<void> {
  await argon2id({ password: "warm", salt: new Uint8Array(8), iterations: 1, memorySize: 8, parallelism: 1, hashLength: 32, outputType: "binary" });
}

/** argon2id on `hash-wasm` (the empty secret on `@noble/hashes`, see above). */
export const wasmArgon2id: Argon2id = (secret, salt) => {
  if (secret.length === 0) {
    return argon2idAsync(secret, salt, { t: ARGON2_ITERATIONS, m: ARGON2_MEMORY_KIB, p: ARGON2_LANES, dkLen: PSK_LENGTH });
  }
  return argon2id({
    password: secret,
    salt,
    iterations: ARGON2_ITERATIONS,
    memorySize: ARGON2_MEMORY_KIB,
    parallelism: ARGON2_LANES,
    hashLength: PSK_LENGTH,
    outputType: "binary",
  });
};

/**
 * The PSK deriver on `argon2`: argon2id(password, sha256(nodeId)) as above. Strings with lone
 * surrogates, which no peer could encode the same way, throw {@link HandshakeError}.
 */
export function pskDeriverWith(argon2: Argon2id): PskDeriver {
  return async (password, nodeId) => {
    if (typeof password !== "string" || typeof nodeId !== "string") {
      throw new TypeError("derivePsk takes the password and the node_id as strings");
    }
    if (LONE_SURROGATE.test(password) || LONE_SURROGATE.test(nodeId)) {
      throw new HandshakeError("The password and node_id must be valid Unicode");
    }
    const psk = await argon2(utf8(password), sha256(utf8(nodeId)));
    if (psk.length !== PSK_LENGTH) throw new HandshakeError(`argon2id returned ${psk.length} bytes, not ${PSK_LENGTH}`);
    return psk;
  };
}

/** The PSK on `hash-wasm` ({@link wasmArgon2id}); see {@link pskDeriverWith}. */
export const derivePsk: PskDeriver = pskDeriverWith(wasmArgon2id);
