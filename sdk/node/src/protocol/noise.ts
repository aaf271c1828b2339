/**
 * Noise protocol framework, revision 34, for `XXpsk2` and `KKpsk0` (data-plane spec 3.7).
 *
 * Built on audited primitives: SHA-256 and HMAC from `@noble/hashes`, X25519 and the AEADs from
 * {@link primitives} (`@noble` by default, `node:crypto` in Node.js). Both roles, initiator and
 * responder, are supported, and the psk modifier rules apply: every `e` token mixes the
 * ephemeral key into the chaining key as well as into the handshake hash.
 *
 * Contract: every malformed input (wrong length, wrong turn, a message after the end, a bad tag,
 * a missing remote static key, a bad PSK, an unknown pattern or suite) throws
 * {@link HandshakeError}, or its subclass {@link DecryptError} when authentication fails, and
 * nothing else. A handshake that threw once is dead: every later call throws too.
 */

import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

import { concat, toHex, utf8 } from "./bytes.js";
import { DecryptError, HandshakeError } from "./errors.js";
import { type Aead, primitives } from "./primitives.js";

export const PATTERNS = ["XXpsk2", "KKpsk0"] as const;
export const SUITES = ["25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256"] as const;
export type NoisePattern = (typeof PATTERNS)[number];
export type NoiseSuite = (typeof SUITES)[number];

export const DHLEN = 32;
export const HASHLEN = 32;
export const KEYLEN = 32;
export const TAGLEN = 16;
/** Largest Noise message (handshake or transport), in bytes. */
export const MAX_MESSAGE = 65535;

const CHACHA: NoiseSuite = "25519_ChaChaPoly_SHA256";
const MAX_NONCE = 2n ** 64n - 1n; // reserved by the specification: never used to encrypt
const EMPTY = new Uint8Array(0);

type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk";

const MESSAGES: Record<NoisePattern, readonly (readonly Token[])[]> = {
  XXpsk2: [["e"], ["e", "ee", "s", "es", "psk"], ["s", "se"]],
  KKpsk0: [["psk", "e", "es", "ss"], ["e", "ee", "se"]],
};
// Pre-messages: [initiator sends s, responder sends s], hashed initiator first.
const PRE_MESSAGES: Record<NoisePattern, readonly [boolean, boolean]> = {
  XXpsk2: [false, false],
  KKpsk0: [true, true],
};

export function isPattern(value: unknown): value is NoisePattern {
  return typeof value === "string" && (PATTERNS as readonly string[]).includes(value);
}

export function isSuite(value: unknown): value is NoiseSuite {
  return typeof value === "string" && (SUITES as readonly string[]).includes(value);
}

/** The full Noise protocol name, e.g. `Noise_XXpsk2_25519_ChaChaPoly_SHA256`. */
export function protocolName(pattern: string, suite: string): string {
  if (!isPattern(pattern)) throw new HandshakeError(`Unsupported Noise pattern: ${JSON.stringify(pattern)}`);
  if (!isSuite(suite)) throw new HandshakeError(`Unsupported Noise cipher suite: ${JSON.stringify(suite)}`);
  return `Noise_${pattern}_${suite}`;
}

/** An X25519 key pair as raw 32-byte arrays; `public` always belongs to `private`. */
export class KeyPair {
  private constructor(
    readonly privateKey: Uint8Array,
    readonly publicKey: Uint8Array,
  ) {}

  /** A fresh random key pair. */
  static generate(): KeyPair {
    return KeyPair.fromPrivate(primitives().x25519PrivateKey());
  }

  /** The key pair of a raw 32-byte private key. */
  static fromPrivate(privateKey: Uint8Array): KeyPair {
    if (!(privateKey instanceof Uint8Array) || privateKey.length !== DHLEN) {
      throw new HandshakeError("An X25519 private key is 32 bytes");
    }
    const secret = Uint8Array.from(privateKey);
    return new KeyPair(secret, primitives().x25519PublicKey(secret));
  }

  toString(): string {
    return `KeyPair(public=${toHex(this.publicKey)})`;
  }
}

function dh(local: KeyPair, remote: Uint8Array): Uint8Array {
  try {
    return primitives().x25519(local.privateKey, remote);
  } catch {
    throw new HandshakeError("Invalid X25519 public key");
  }
}

function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(sha256, key, data);
}

function hkdf(chainingKey: Uint8Array, material: Uint8Array, outputs: 2 | 3): Uint8Array[] {
  const temp = hmacSha256(chainingKey, material);
  const out1 = hmacSha256(temp, Uint8Array.of(1));
  const out2 = hmacSha256(temp, concat(out1, Uint8Array.of(2)));
  if (outputs === 2) return [out1, out2];
  return [out1, out2, hmacSha256(temp, concat(out2, Uint8Array.of(3)))];
}

/**
 * One AEAD key with its nonce counter (Noise section 5.1).
 *
 * `encrypt` and `decrypt` use strictly sequential nonces (4 zero bytes and the 64-bit counter,
 * little-endian for ChaChaPoly, big-endian for AESGCM). A failed decryption throws
 * {@link DecryptError} and leaves the counter where it was.
 */
export class CipherState {
  counter = 0n;
  private readonly key: Uint8Array;
  private readonly littleEndian: boolean;
  private readonly nonce = new Uint8Array(12);
  private readonly nonceView = new DataView(this.nonce.buffer);

  constructor(
    readonly suite: NoiseSuite,
    key: Uint8Array,
  ) {
    if (!isSuite(suite)) throw new HandshakeError(`Unsupported Noise cipher suite: ${String(suite)}`);
    if (!(key instanceof Uint8Array) || key.length !== KEYLEN) throw new HandshakeError("A Noise cipher key is 32 bytes");
    this.key = Uint8Array.from(key);
    this.littleEndian = suite === CHACHA;
  }

  private nonceFor(counter: bigint): Uint8Array {
    if (counter >= MAX_NONCE) throw new HandshakeError("Noise nonce counter exhausted");
    this.nonceView.setBigUint64(4, counter, this.littleEndian);
    return this.nonce;
  }

  private aead(): Aead {
    return this.littleEndian ? primitives().chachaPoly : primitives().aesGcm;
  }

  /** Ciphertext and tag of `plaintext` at the current nonce; advances the counter. */
  encrypt(plaintext: Uint8Array, ad: Uint8Array = EMPTY): Uint8Array {
    const ciphertext = this.aead().seal(this.key, this.nonceFor(this.counter), ad, plaintext);
    this.counter += 1n;
    return ciphertext;
  }

  /** Plaintext of `ciphertext` at the current nonce; advances the counter on success only. */
  decrypt(ciphertext: Uint8Array, ad: Uint8Array = EMPTY): Uint8Array {
    const nonce = this.nonceFor(this.counter);
    if (ciphertext.length < TAGLEN) throw new DecryptError("Noise message is not a valid ciphertext");
    let plaintext: Uint8Array;
    try {
      plaintext = this.aead().open(this.key, nonce, ad, ciphertext);
    } catch {
      throw new DecryptError("Noise message failed to authenticate");
    }
    this.counter += 1n;
    return plaintext;
  }
}

/** Chaining key, handshake hash and the handshake's cipher (Noise section 5.2). */
class SymmetricState {
  h: Uint8Array;
  ck: Uint8Array;
  private cipher: CipherState | undefined;

  constructor(
    name: string,
    private readonly suite: NoiseSuite,
  ) {
    const raw = utf8(name);
    if (raw.length <= HASHLEN) {
      this.h = new Uint8Array(HASHLEN);
      this.h.set(raw);
    } else {
      this.h = sha256(raw);
    }
    this.ck = this.h;
  }

  get hasKey(): boolean {
    return this.cipher !== undefined;
  }

  mixKey(material: Uint8Array): void {
    const [ck, key] = hkdf(this.ck, material, 2) as [Uint8Array, Uint8Array];
    this.ck = ck;
    this.cipher = new CipherState(this.suite, key);
  }

  mixHash(data: Uint8Array): void {
    this.h = sha256(concat(this.h, data));
  }

  mixKeyAndHash(material: Uint8Array): void {
    const [ck, tempH, key] = hkdf(this.ck, material, 3) as [Uint8Array, Uint8Array, Uint8Array];
    this.ck = ck;
    this.mixHash(tempH);
    this.cipher = new CipherState(this.suite, key);
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.cipher === undefined ? Uint8Array.from(plaintext) : this.cipher.encrypt(plaintext, this.h);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.cipher === undefined ? ciphertext : this.cipher.decrypt(ciphertext, this.h);
    this.mixHash(ciphertext);
    return plaintext;
  }

  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf(this.ck, EMPTY, 2) as [Uint8Array, Uint8Array];
    return [new CipherState(this.suite, k1), new CipherState(this.suite, k2)];
  }
}

export interface HandshakeOptions {
  initiator: boolean;
  prologue: Uint8Array;
  psk: Uint8Array;
  staticKey: KeyPair;
  /** Required for KKpsk0 (both roles know the peer's key in advance); ignored for XXpsk2. */
  remoteStatic?: Uint8Array | undefined;
  /** Fixes the ephemeral key (tests only). */
  ephemeral?: KeyPair | undefined;
}

/**
 * One side of a Noise handshake (Noise section 5.3) for `XXpsk2` or `KKpsk0`.
 *
 * The two sides alternate `writeMessage` and `readMessage` in the pattern's order, the
 * initiator writing first. After the last message `finished` is true, `remoteStatic` holds the
 * peer's static key and `split()` returns `[send, recv]` cipher states for this side's role.
 */
export class HandshakeState {
  readonly initiator: boolean;
  private readonly psk: Uint8Array;
  private readonly s: KeyPair;
  private e: KeyPair | undefined;
  private rs: Uint8Array | undefined;
  private re: Uint8Array | undefined;
  private readonly messages: readonly (readonly Token[])[];
  private index = 0;
  private failed = false;
  private splitPair: [CipherState, CipherState] | undefined;
  private readonly ss: SymmetricState;

  constructor(
    readonly pattern: NoisePattern,
    readonly suite: NoiseSuite,
    options: HandshakeOptions,
  ) {
    const name = protocolName(pattern, suite);
    const { initiator, prologue, psk, staticKey, remoteStatic, ephemeral } = options;
    if (!(psk instanceof Uint8Array) || psk.length !== 32) throw new HandshakeError("The Noise pre-shared key is 32 bytes");
    if (!(staticKey instanceof KeyPair) || (ephemeral !== undefined && !(ephemeral instanceof KeyPair))) {
      throw new HandshakeError("Noise keys must be KeyPair objects");
    }
    if (!(prologue instanceof Uint8Array)) throw new HandshakeError("The Noise prologue is bytes");
    if (remoteStatic !== undefined && (!(remoteStatic instanceof Uint8Array) || remoteStatic.length !== DHLEN)) {
      throw new HandshakeError("A remote static key is 32 bytes");
    }
    const [preInitiator, preResponder] = PRE_MESSAGES[pattern];
    const needsRemote = initiator ? preResponder : preInitiator;
    if (needsRemote && remoteStatic === undefined) throw new HandshakeError(`${pattern} needs the remote static key`);
    this.initiator = initiator;
    this.psk = Uint8Array.from(psk);
    this.s = staticKey;
    this.e = ephemeral;
    this.rs = remoteStatic !== undefined ? Uint8Array.from(remoteStatic) : undefined;
    this.messages = MESSAGES[pattern];
    this.ss = new SymmetricState(name, suite);
    this.ss.mixHash(prologue);
    if (preInitiator) this.ss.mixHash(initiator ? staticKey.publicKey : (this.rs as Uint8Array));
    if (preResponder) this.ss.mixHash(initiator ? (this.rs as Uint8Array) : staticKey.publicKey);
  }

  /** True once every handshake message has been written or read. */
  get finished(): boolean {
    return this.index >= this.messages.length;
  }

  /** The peer's static public key (known in advance for KK, learned during XX). */
  get remoteStatic(): Uint8Array | undefined {
    return this.rs;
  }

  /** The handshake hash `h` (channel binding once finished). */
  get handshakeHash(): Uint8Array {
    return this.ss.h;
  }

  private checkTurn(writing: boolean): void {
    if (this.failed) throw new HandshakeError("The Noise handshake already failed");
    if (this.finished) throw new HandshakeError("The Noise handshake is already finished");
    if ((this.index % 2 === 0) === this.initiator ? !writing : writing) {
      throw new HandshakeError(`Not this side's turn to ${writing ? "write" : "read"} a Noise handshake message`);
    }
  }

  /** Bytes a message adds around its payload (keys and tags), computed before writing. */
  private overhead(tokens: readonly Token[]): number {
    let hasKey = this.ss.hasKey;
    let size = 0;
    for (const token of tokens) {
      if (token === "e") {
        size += DHLEN;
        hasKey = true; // psk modifier: e does MixKey
      } else if (token === "s") {
        size += DHLEN + (hasKey ? TAGLEN : 0);
      } else {
        hasKey = true;
      }
    }
    return size + (hasKey ? TAGLEN : 0);
  }

  /** The next handshake message carrying `payload` (encrypted once a key exists). */
  writeMessage(payload: Uint8Array = EMPTY): Uint8Array {
    this.checkTurn(true);
    if (!(payload instanceof Uint8Array)) throw new HandshakeError("A Noise handshake payload is bytes");
    const tokens = this.messages[this.index] as readonly Token[];
    if (this.overhead(tokens) + payload.length > MAX_MESSAGE) {
      throw new HandshakeError("Noise handshake message would exceed 65535 bytes");
    }
    try {
      const parts: Uint8Array[] = [];
      for (const token of tokens) {
        if (token === "e") {
          if (this.e === undefined) this.e = KeyPair.generate();
          const pub = this.e.publicKey;
          parts.push(pub);
          this.ss.mixHash(pub);
          this.ss.mixKey(pub);
        } else if (token === "s") {
          parts.push(this.ss.encryptAndHash(this.s.publicKey));
        } else if (token === "psk") {
          this.ss.mixKeyAndHash(this.psk);
        } else {
          this.ss.mixKey(this.dhToken(token));
        }
      }
      parts.push(this.ss.encryptAndHash(payload));
      this.index += 1;
      return concat(...parts);
    } catch (error) {
      this.failed = true;
      throw error instanceof HandshakeError ? error : new HandshakeError(`Noise handshake failed: ${String(error)}`);
    }
  }

  /** Process the peer's next handshake message; return its payload. */
  readMessage(message: Uint8Array): Uint8Array {
    this.checkTurn(false);
    if (!(message instanceof Uint8Array)) {
      this.failed = true;
      throw new HandshakeError("A Noise handshake message is bytes");
    }
    const tokens = this.messages[this.index] as readonly Token[];
    if (message.length > MAX_MESSAGE || message.length < this.overhead(tokens)) {
      this.failed = true;
      throw new HandshakeError(`Noise handshake message of ${message.length} bytes has the wrong length`);
    }
    try {
      let pos = 0;
      for (const token of tokens) {
        if (token === "e") {
          const remote = message.slice(pos, pos + DHLEN);
          pos += DHLEN;
          this.re = remote;
          this.ss.mixHash(remote);
          this.ss.mixKey(remote);
        } else if (token === "s") {
          const size = DHLEN + (this.ss.hasKey ? TAGLEN : 0);
          this.rs = this.ss.decryptAndHash(message.slice(pos, pos + size));
          pos += size;
        } else if (token === "psk") {
          this.ss.mixKeyAndHash(this.psk);
        } else {
          this.ss.mixKey(this.dhToken(token));
        }
      }
      const payload = this.ss.decryptAndHash(message.slice(pos));
      this.index += 1;
      return payload;
    } catch (error) {
      this.failed = true;
      throw error instanceof HandshakeError ? error : new HandshakeError(`Noise handshake failed: ${String(error)}`);
    }
  }

  private dhToken(token: Token): Uint8Array {
    // ee, es, se, ss: the first letter names the initiator's key, the second the responder's.
    const mine = this.initiator ? token[0] : token[1];
    const theirs = this.initiator ? token[1] : token[0];
    const local = mine === "e" ? this.e : this.s;
    const remote = theirs === "e" ? this.re : this.rs;
    if (local === undefined || remote === undefined) throw new HandshakeError("Noise handshake state is missing a key");
    return dh(local, remote);
  }

  /** `[send, recv]` transport cipher states for this side (the same pair on every call). */
  split(): [CipherState, CipherState] {
    if (this.failed) throw new HandshakeError("The Noise handshake already failed");
    if (!this.finished) throw new HandshakeError("The Noise handshake is not finished");
    if (this.splitPair === undefined) {
      const [c1, c2] = this.ss.split();
      this.splitPair = this.initiator ? [c1, c2] : [c2, c1];
    }
    return this.splitPair;
  }
}
