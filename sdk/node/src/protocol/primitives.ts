/**
 * The cryptographic primitives under the Noise engine: X25519 and the two AEADs. The default is
 * the audited, dependency-free `@noble` family, which runs anywhere (browsers included); the
 * Node.js entry point swaps in Node's OpenSSL-backed `node:crypto` for speed. Both pass the same
 * reference vectors (conformance/noise-vectors.json).
 */

import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";

/** An AEAD with a 32-byte key, a 12-byte nonce and a 16-byte tag appended to the ciphertext. */
export interface Aead {
  seal(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** The plaintext; throws (anything) when the tag does not verify. */
  open(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
}

export interface NoisePrimitives {
  readonly name: string;
  /** A random X25519 private key. */
  x25519PrivateKey(): Uint8Array;
  x25519PublicKey(privateKey: Uint8Array): Uint8Array;
  /** The shared secret; throws (anything) for a low-order public key. */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  readonly chachaPoly: Aead;
  readonly aesGcm: Aead;
}

/** The `@noble` primitives. */
export const noblePrimitives: NoisePrimitives = {
  name: "noble",
  x25519PrivateKey: () => x25519.utils.randomSecretKey(),
  x25519PublicKey: (privateKey) => x25519.getPublicKey(privateKey),
  x25519: (privateKey, publicKey) => x25519.getSharedSecret(privateKey, publicKey),
  chachaPoly: {
    seal: (key, nonce, ad, plaintext) => chacha20poly1305(key, nonce, ad).encrypt(plaintext),
    open: (key, nonce, ad, ciphertext) => chacha20poly1305(key, nonce, ad).decrypt(ciphertext),
  },
  aesGcm: {
    seal: (key, nonce, ad, plaintext) => gcm(key, nonce, ad).encrypt(plaintext),
    open: (key, nonce, ad, ciphertext) => gcm(key, nonce, ad).decrypt(ciphertext),
  },
};

let current: NoisePrimitives = noblePrimitives;

/** Use `primitives` for every Noise operation from now on (the Node.js entry point does). */
export function useNoisePrimitives(primitives: NoisePrimitives): void {
  current = primitives;
}

/** The primitives in use. */
export function primitives(): NoisePrimitives {
  return current;
}
