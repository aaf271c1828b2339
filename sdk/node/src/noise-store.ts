/**
 * The client's Noise state: its static key, the hub pins and the PSK cache (spec 1.8).
 *
 * The layout is the one hivemind-bus-client and the Python SDK use, so one identity and its state
 * work from Python and from Node.js alike:
 *
 * - `_identity.json`: `{"name": ..., "pinned_noise_keys": {pin_id: "<64 hex>"}}` (other keys,
 *   such as `noise_key`, are kept as found);
 * - `<name>_noise.key`: the client's X25519 private key as 64 hex characters, created once;
 * - `<name>_noise_psks.json`: `{"<16 hex of sha256(access_key)>@<node_id>": "<psk hex>"}`, at
 *   most {@link MAX_PSK_ENTRIES} entries.
 *
 * {@link LayoutNoiseStore} implements that layout once, over a small {@link StateFiles} backend:
 * a folder on disk (Node.js), `localStorage` or memory (browsers). Pins are never removed
 * automatically.
 */

import { sha256 } from "@noble/hashes/sha2.js";

import { ThalovantIdentityError } from "./errors.js";
import { fromHex, isObject, type JsonObject, toHex, utf8 } from "./protocol/bytes.js";
import { KeyPair } from "./protocol/noise.js";
import { urlParts } from "./protocols.js";

export const STORE_FILE = "_identity.json";
export const DEFAULT_NODE_NAME = "unnamed-node";
export const MAX_PSK_ENTRIES = 32;
export const MAX_STATE_FILE_BYTES = 256 * 1024;
const DEFAULT_PORTS: Record<string, number> = { wss: 443, https: 443, ws: 80, http: 80, mqtts: 8883, mqtt: 1883 };

/** The Noise state folder or one of its files is unusable (symlink, corrupt, unwritable). */
export class NoiseStateError extends ThalovantIdentityError {
  override name = "NoiseStateError";
}

/** Where a client keeps its Noise key, hub pins and PSK cache. */
export interface NoiseStateStore {
  /** Where the state lives, for messages (a folder, a storage prefix). */
  readonly location: string;
  /** The client's static X25519 key pair, created on first use and never replaced. */
  staticKey(): Promise<KeyPair>;
  /** The hub key pinned for `pinId`, if any. */
  hubPin(pinId: string): Promise<Uint8Array | undefined>;
  /** Record the hub key for `pinId` (trust on first use); an existing pin is left alone. */
  pinHub(pinId: string, publicKey: Uint8Array): Promise<void>;
  /** Forget the pin of `pinId` (an explicit user decision); true when one existed. */
  removePin(pinId: string): Promise<boolean>;
  cachedPsk(accessKey: string, nodeId: string): Promise<Uint8Array | undefined>;
  storePsk(accessKey: string, nodeId: string, psk: Uint8Array): Promise<void>;
  forgetPsk(accessKey: string, nodeId: string): Promise<void>;
}

// ---------------------------------------------------------------- pin ids

/** Pin id of a WSS endpoint: `<scheme>://<host>:<port>` (IPv6 hosts bracketed). */
export function wssPinId(url: string): string {
  const parts = urlParts(url.trim());
  if (parts === undefined || !parts.hostname) throw new NoiseStateError("A WSS endpoint needs a scheme and a host to be pinned.");
  const port = parts.port ? Number(parts.port) : (DEFAULT_PORTS[parts.scheme] ?? 443);
  const host = parts.hostname.includes(":") ? `[${parts.hostname}]` : parts.hostname;
  return `${parts.scheme}://${host}:${port}`;
}

/** Pin id of an HTTPS (and MQTT) hub: the identity's `endpointBase()` itself. */
export function httpsPinId(endpointBase: string): string {
  return endpointBase.replace(/\/+$/, "");
}

/** `<first 16 hex of SHA-256(access_key)>@<node_id>`: the PSK cache entry name. */
export function pskCacheKey(accessKey: string, nodeId: string): string {
  return `${toHex(sha256(utf8(accessKey))).slice(0, 16)}@${nodeId}`;
}

// ---------------------------------------------------------------- the layout over a backend

/**
 * The files of one state folder. `read` returns undefined for a missing file and throws
 * {@link NoiseStateError} for an unusable one; `readPrivate` also returns undefined when the
 * file is too permissive (the PSK cache is then ignored, as spec 1.8 says). `createOnce` writes a
 * file only if it does not exist yet and returns the text that is there afterwards.
 */
export interface StateFiles {
  readonly location: string;
  read(name: string): Promise<string | undefined>;
  readPrivate(name: string): Promise<string | undefined>;
  write(name: string, text: string): Promise<void>;
  createOnce(name: string, text: string): Promise<string>;
  /** Run `change` with the file `name` locked against other writers, where the backend can. */
  locked<T>(name: string, change: () => Promise<T>): Promise<T>;
}

function parseKeyHex(value: unknown): Uint8Array | undefined {
  if (typeof value !== "string") return undefined;
  const raw = fromHex(value.trim());
  return raw !== undefined && raw.length === 32 ? raw : undefined;
}

function sortedJson(value: JsonObject): string {
  const sort = (item: unknown): unknown =>
    isObject(item) ? Object.fromEntries(Object.keys(item).sort().map((key) => [key, sort(item[key])])) : item;
  return `${JSON.stringify(sort(value), null, 2)}\n`;
}

/** The spec 1.8 layout over any {@link StateFiles} backend. */
export class LayoutNoiseStore implements NoiseStateStore {
  constructor(readonly files: StateFiles) {}

  get location(): string {
    return this.files.location;
  }

  private async document(): Promise<JsonObject> {
    const text = await this.files.read(STORE_FILE);
    if (text === undefined || text.trim() === "") return {};
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new NoiseStateError(`Noise state file ${STORE_FILE} is not valid JSON`);
    }
    if (!isObject(value)) throw new NoiseStateError(`Noise state file ${STORE_FILE} is not a JSON object`);
    return value;
  }

  private static nameOf(document: JsonObject): string {
    let candidate = DEFAULT_NODE_NAME;
    if (typeof document.name === "string" && document.name.trim()) candidate = document.name.trim();
    else if (typeof document.key === "string" && document.key.trim()) candidate = document.key.trim().split("/").pop() ?? DEFAULT_NODE_NAME;
    if (candidate.includes("/") || candidate === "." || candidate === ".." || candidate.includes("\0")) {
      throw new NoiseStateError("The Noise store name is not a plain file name.");
    }
    return candidate;
  }

  /** The node name that prefixes the key and PSK files. */
  async name(): Promise<string> {
    return LayoutNoiseStore.nameOf(await this.document());
  }

  /** The key file's name in the folder (a configured `noise_key`, else `<name>_noise.key`). */
  async keyFile(): Promise<string> {
    const document = await this.document();
    const configured = document.noise_key;
    if (typeof configured === "string" && configured.trim()) return configured.trim();
    return `${LayoutNoiseStore.nameOf(document)}_noise.key`;
  }

  private async pskFile(): Promise<string> {
    return `${await this.name()}_noise_psks.json`;
  }

  async staticKey(): Promise<KeyPair> {
    const file = await this.keyFile();
    const existing = await this.files.read(file);
    const text = existing ?? (await this.files.createOnce(file, `${toHex(KeyPair.generate().privateKey)}\n`));
    const raw = parseKeyHex(text);
    if (raw === undefined) throw new NoiseStateError(`Noise key file ${file} does not hold 32 bytes of hex`);
    if (existing === undefined && (await this.files.read(STORE_FILE)) === undefined) {
      await this.writeDocument({ name: await this.name(), pinned_noise_keys: {} });
    }
    return KeyPair.fromPrivate(raw);
  }

  /** Every readable pin: pin id to 32-byte hub public key. */
  async pins(): Promise<Map<string, Uint8Array>> {
    const raw = (await this.document()).pinned_noise_keys;
    const pins = new Map<string, Uint8Array>();
    if (isObject(raw)) {
      for (const [pinId, value] of Object.entries(raw)) {
        const key = parseKeyHex(value);
        if (key !== undefined) pins.set(pinId, key);
      }
    }
    return pins;
  }

  async hubPin(pinId: string): Promise<Uint8Array | undefined> {
    return (await this.pins()).get(pinId);
  }

  async pinHub(pinId: string, publicKey: Uint8Array): Promise<void> {
    if (publicKey.length !== 32) throw new NoiseStateError("A hub Noise key is 32 bytes.");
    await this.updatePins((pins) => {
      if (!(pinId in pins)) pins[pinId] = toHex(publicKey);
      return true;
    });
  }

  async removePin(pinId: string): Promise<boolean> {
    return this.updatePins((pins) => {
      const existed = pinId in pins;
      delete pins[pinId];
      return existed;
    });
  }

  private async updatePins(change: (pins: JsonObject) => boolean): Promise<boolean> {
    return this.files.locked(STORE_FILE, async () => {
      const document = await this.document();
      const pins = isObject(document.pinned_noise_keys) ? document.pinned_noise_keys : {};
      const result = change(pins);
      document.pinned_noise_keys = pins;
      if (document.name === undefined) document.name = LayoutNoiseStore.nameOf(document);
      await this.writeDocument(document);
      return result;
    });
  }

  private async writeDocument(document: JsonObject): Promise<void> {
    await this.files.write(STORE_FILE, sortedJson(document));
  }

  private async pskEntries(file: string): Promise<Map<string, string>> {
    let text: string | undefined;
    try {
      text = await this.files.readPrivate(file);
    } catch (error) {
      if (error instanceof NoiseStateError) return new Map();
      throw error;
    }
    if (text === undefined || text.length > MAX_STATE_FILE_BYTES) return new Map();
    try {
      const value: unknown = JSON.parse(text);
      if (!isObject(value)) return new Map();
      return new Map(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
    } catch {
      return new Map();
    }
  }

  async cachedPsk(accessKey: string, nodeId: string): Promise<Uint8Array | undefined> {
    return parseKeyHex((await this.pskEntries(await this.pskFile())).get(pskCacheKey(accessKey, nodeId)));
  }

  async storePsk(accessKey: string, nodeId: string, psk: Uint8Array): Promise<void> {
    const file = await this.pskFile();
    await this.files.locked(file, async () => {
      const entries = await this.pskEntries(file);
      const key = pskCacheKey(accessKey, nodeId);
      entries.delete(key);
      entries.set(key, toHex(psk));
      while (entries.size > MAX_PSK_ENTRIES) entries.delete(entries.keys().next().value as string);
      await this.files.write(file, `${JSON.stringify(Object.fromEntries(entries), null, 2)}\n`);
    });
  }

  async forgetPsk(accessKey: string, nodeId: string): Promise<void> {
    const file = await this.pskFile();
    await this.files.locked(file, async () => {
      const entries = await this.pskEntries(file);
      if (entries.delete(pskCacheKey(accessKey, nodeId))) {
        await this.files.write(file, `${JSON.stringify(Object.fromEntries(entries), null, 2)}\n`);
      }
    });
  }
}

// ---------------------------------------------------------------- browser-friendly backends

/** State files kept in a `Map` (lost when the page or process ends). */
export class MemoryStateFiles implements StateFiles {
  readonly location = "memory";
  private readonly items = new Map<string, string>();

  async read(name: string): Promise<string | undefined> {
    return this.items.get(name);
  }

  async readPrivate(name: string): Promise<string | undefined> {
    return this.items.get(name);
  }

  async write(name: string, text: string): Promise<void> {
    this.items.set(name, text);
  }

  async createOnce(name: string, text: string): Promise<string> {
    if (!this.items.has(name)) this.items.set(name, text);
    return this.items.get(name) as string;
  }

  async locked<T>(_name: string, change: () => Promise<T>): Promise<T> {
    return change();
  }
}

/** The part of the Web Storage API the localStorage backend uses. */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** State files as entries of a Web Storage object (`localStorage`), under a key prefix. */
export class StorageStateFiles implements StateFiles {
  readonly location: string;

  constructor(
    private readonly storage: KeyValueStorage,
    private readonly prefix = "thalovant.noise/",
  ) {
    this.location = `storage:${prefix}`;
  }

  private key(name: string): string {
    return this.prefix + name;
  }

  async read(name: string): Promise<string | undefined> {
    return this.storage.getItem(this.key(name)) ?? undefined;
  }

  async readPrivate(name: string): Promise<string | undefined> {
    return this.read(name);
  }

  async write(name: string, text: string): Promise<void> {
    try {
      this.storage.setItem(this.key(name), text);
    } catch (error) {
      throw new NoiseStateError(`Cannot store Noise state ${name}: ${String(error)}`);
    }
  }

  async createOnce(name: string, text: string): Promise<string> {
    const existing = await this.read(name);
    if (existing !== undefined) return existing;
    await this.write(name, text);
    return text;
  }

  async locked<T>(_name: string, change: () => Promise<T>): Promise<T> {
    return change();
  }
}

/** Noise state in memory: a new key per store object (for tests and short-lived pages). */
export class MemoryNoiseStore extends LayoutNoiseStore {
  constructor() {
    super(new MemoryStateFiles());
  }
}

/**
 * Noise state in a Web Storage object, by default the page's `localStorage`, so a page keeps the
 * key its hub pinned across reloads. `prefix` separates several identities on one origin.
 */
export class LocalStorageNoiseStore extends LayoutNoiseStore {
  constructor(options: { storage?: KeyValueStorage; prefix?: string } = {}) {
    const storage = options.storage ?? (globalThis as { localStorage?: KeyValueStorage }).localStorage;
    if (storage === undefined) throw new NoiseStateError("No localStorage here: pass { storage } or use MemoryNoiseStore.");
    super(new StorageStateFiles(storage, options.prefix));
  }
}
