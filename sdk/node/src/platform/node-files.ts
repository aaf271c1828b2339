/**
 * Files on disk for the Node.js host: private (0600) text files, the config file and the Noise
 * state folder of spec 1.8 (created 0700, files written 0600 and atomically, symlinks refused).
 */

import { accessSync, constants, readFileSync, type Stats, statSync } from "node:fs";
import * as fs from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";

import { parse as parseYamlText } from "yaml";

import { ThalovantIdentityError } from "../errors.js";
import { isObject } from "../protocol/bytes.js";
import { LayoutNoiseStore, NoiseStateError, type StateFiles, STORE_FILE } from "../noise-store.js";

export const MAX_CONFIG_BYTES = 1024 * 1024;
const MAX_STATE_FILE_BYTES = 256 * 1024;

/** A user-given path made absolute, `~` expanded. */
export function absolutePath(path: string): string {
  const expanded = path === "~" ? homedir() : path.startsWith("~/") ? join(homedir(), path.slice(2)) : path;
  return resolve(expanded);
}

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code ?? (error instanceof Error ? error.message : String(error));
}

/** A Kubernetes projected secret (a symlink beside a `..data` symlink) is the one exception to 0600. */
async function kubernetesProjectedSecret(path: string): Promise<boolean> {
  if (!process.env.KUBERNETES_SERVICE_HOST) return false;
  try {
    const [file, data] = await Promise.all([fs.lstat(path), fs.lstat(join(dirname(path), "..data"))]);
    return file.isSymbolicLink() && data.isSymbolicLink();
  } catch {
    return false;
  }
}

/** Refuse a file that group or others may access (POSIX only). */
async function checkPrivateFile(path: string): Promise<void> {
  if (process.platform === "win32") return;
  let info: Stats;
  try {
    info = await fs.stat(path);
  } catch (error) {
    throw new ThalovantIdentityError(`Cannot read ${path}: ${reason(error)}.`);
  }
  if (!info.isFile()) throw new ThalovantIdentityError(`${path} is not a regular file.`);
  if (info.mode & 0o077 && !(await kubernetesProjectedSecret(path))) {
    const mode = (info.mode & 0o7777).toString(8).padStart(4, "0");
    throw new ThalovantIdentityError(`Permissions ${mode} on ${path} are too permissive: it holds secrets. Run: chmod 600 ${path}`);
  }
}

function decode(raw: Uint8Array, path: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    throw new ThalovantIdentityError(`${path} is not UTF-8 text.`);
  }
}

/** The UTF-8 text of a private file (after the 0600 check), at most 1 MiB. */
export async function readPrivateText(path: string): Promise<string> {
  await checkPrivateFile(path);
  let raw: Buffer;
  try {
    const handle = await fs.open(path, "r");
    try {
      const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      raw = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new ThalovantIdentityError(`Cannot read ${path}: ${reason(error)}.`);
  }
  if (raw.length > MAX_CONFIG_BYTES) throw new ThalovantIdentityError(`${path} is larger than ${MAX_CONFIG_BYTES} bytes; it is not an identity file.`);
  return decode(raw, path);
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Math.random().toString(16).slice(2)}.tmp`);
  const handle = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(text, "utf8");
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.unlink(temp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await fs.rename(temp, path);
  } catch (error) {
    await fs.unlink(temp).catch(() => undefined);
    throw error;
  }
}

/** Write a secrets file atomically with mode 0600; its absolute path. */
export async function writePrivateText(path: string, text: string): Promise<string> {
  const target = absolutePath(path);
  try {
    await fs.mkdir(dirname(target), { recursive: true });
    await writeAtomic(target, text);
  } catch (error) {
    throw new ThalovantIdentityError(`Cannot write ${target}: ${reason(error)}.`);
  }
  return target;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fs.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** `$XDG_CONFIG_HOME/thalovant/config.yaml`, else `%APPDATA%/Thalovant/config.yaml` on Windows, else `~/.config/...`. */
export function defaultConfigPath(): string {
  const xdg = (process.env.XDG_CONFIG_HOME ?? "").trim();
  if (xdg) return join(xdg, "thalovant", "config.yaml");
  if (process.platform === "win32" && (process.env.APPDATA ?? "").trim()) return join(process.env.APPDATA as string, "Thalovant", "config.yaml");
  return join(homedir(), ".config", "thalovant", "config.yaml");
}

/** Parse one YAML document (the `yaml` package; aliases bounded, duplicate keys refused). */
export function parseYaml(text: string): unknown {
  return parseYamlText(text, { uniqueKeys: true, maxAliasCount: 16 });
}

/** The top-level `api_url` of the config file (read without the 0600 rule: a URL is no secret). */
export function configApiUrl(): string | undefined {
  let text: string;
  try {
    text = readFileSync(defaultConfigPath(), "utf8").slice(0, MAX_CONFIG_BYTES);
  } catch {
    return undefined;
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ThalovantIdentityError(`Cannot parse ${defaultConfigPath()}: ${(error as Error).message}. Fix the YAML.`);
  }
  const value = isObject(document) ? document.api_url : undefined;
  return typeof value === "string" && value.trim() ? value.trim() : undefined;
}

// ---------------------------------------------------------------- the Noise state folder

async function refuseSymlink(path: string): Promise<void> {
  try {
    if ((await fs.lstat(path)).isSymbolicLink()) throw new NoiseStateError(`Refusing to use a symlink for Noise state: ${basename(path)}`);
  } catch (error) {
    if (error instanceof NoiseStateError) throw error;
  }
}

/** The state files of one folder on disk. */
export class FolderStateFiles implements StateFiles {
  constructor(readonly location: string) {}

  private path(name: string): string {
    return isAbsolute(name) ? name : join(this.location, name);
  }

  private async ensureFolder(): Promise<void> {
    await refuseSymlink(this.location);
    try {
      await fs.mkdir(this.location, { recursive: true, mode: 0o700 });
      const info = await fs.stat(this.location);
      if (info.mode & 0o077) await fs.chmod(this.location, 0o700);
    } catch (error) {
      throw new NoiseStateError(`Cannot create the Noise state directory: ${reason(error)}`);
    }
  }

  private async readWith(name: string, requirePrivate: boolean): Promise<string | undefined> {
    const path = this.path(name);
    await refuseSymlink(path);
    let info: Stats;
    try {
      info = await fs.stat(path);
    } catch {
      return undefined;
    }
    if (info.size > MAX_STATE_FILE_BYTES) throw new NoiseStateError(`Noise state file is too large: ${basename(path)}`);
    if (requirePrivate && info.mode & 0o077) return undefined;
    try {
      return decode(await fs.readFile(path), path);
    } catch {
      throw new NoiseStateError(`Cannot read Noise state file ${basename(path)}`);
    }
  }

  read(name: string): Promise<string | undefined> {
    return this.readWith(name, false);
  }

  readPrivate(name: string): Promise<string | undefined> {
    return this.readWith(name, true);
  }

  async write(name: string, text: string): Promise<void> {
    await this.ensureFolder();
    const path = this.path(name);
    await refuseSymlink(path);
    try {
      await writeAtomic(path, text);
    } catch (error) {
      throw new NoiseStateError(`Cannot write Noise state file ${basename(path)}: ${reason(error)}`);
    }
  }

  /** Write the file unless it exists (a hard link to a finished temporary file: no torn reads, no lock). */
  async createOnce(name: string, text: string): Promise<string> {
    await this.ensureFolder();
    const path = this.path(name);
    await refuseSymlink(path);
    const temp = `${path}.${process.pid}.${Math.random().toString(16).slice(2)}.new`;
    try {
      await writeAtomic(temp, text);
      try {
        await fs.link(temp, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
    } catch (error) {
      throw new NoiseStateError(`Cannot create Noise state file ${basename(path)}: ${reason(error)}`);
    } finally {
      await fs.unlink(temp).catch(() => undefined);
    }
    const created = await this.read(name);
    if (created === undefined) throw new NoiseStateError(`Noise state file ${basename(path)} vanished`);
    return created;
  }

  /**
   * Writes are atomic renames, so readers never see a torn file; Node.js has no `flock`, so two
   * processes updating pins at the same instant may lose one update (never the key file).
   */
  async locked<T>(_name: string, change: () => Promise<T>): Promise<T> {
    return change();
  }
}

/** `$XDG_CONFIG_HOME/hivemind`, else `~/.config/hivemind`. */
export function defaultNoiseDir(): string {
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "hivemind");
}

/** Copy (never move) a legacy key and its pins into a new folder once, when a legacy pin names this hub host. */
async function copyLegacyState(store: LayoutNoiseStore, legacyDir: string, hubHost: string): Promise<void> {
  const target = store.files as FolderStateFiles;
  if ((await exists(join(target.location, STORE_FILE))) || resolve(legacyDir) === resolve(target.location)) return;
  try {
    const legacy = new LayoutNoiseStore(new FolderStateFiles(legacyDir));
    const pins = await legacy.pins();
    const host = hubHost.toLowerCase();
    const named = [...pins.keys()].some((pin) => /^[a-z]+:\/\/\[?([^\]/:]+)/i.exec(pin)?.[1]?.toLowerCase() === host);
    if (!named) return;
    const keyText = await legacy.files.read(await legacy.keyFile());
    if (keyText === undefined) return;
    const name = await legacy.name();
    await target.createOnce(`${name}_noise.key`, keyText);
    const pinned = Object.fromEntries([...pins].map(([id, key]) => [id, Buffer.from(key).toString("hex")]));
    await target.write(STORE_FILE, `${JSON.stringify({ name, pinned_noise_keys: pinned }, null, 2)}\n`);
  } catch {
    // a legacy folder we cannot read is simply not migrated
  }
}

/** A folder's Noise state (spec 1.8 layout). */
export class FileNoiseStore extends LayoutNoiseStore {
  constructor(directory: string) {
    super(new FolderStateFiles(absolutePath(directory)));
  }

  get directory(): string {
    return this.location;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isWritable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A folder's Noise state beside an identity file: `hivemind` beside it when that folder exists
 * or can be created, else the default folder; on first use, a one-time copy of legacy state.
 */
class IdentityNoiseStore extends FileNoiseStore {
  private ready: Promise<void> | undefined;

  constructor(
    directory: string,
    private readonly legacy: string,
    private readonly hubHost: string | undefined,
  ) {
    super(directory);
  }

  private prepare(): Promise<void> {
    this.ready ??= (async () => {
      if (resolve(this.location) !== resolve(this.legacy) && this.hubHost) await copyLegacyState(this, this.legacy, this.hubHost);
    })();
    return this.ready;
  }

  override async staticKey(): ReturnType<FileNoiseStore["staticKey"]> {
    await this.prepare();
    return super.staticKey();
  }

  override async hubPin(pinId: string): Promise<Uint8Array | undefined> {
    await this.prepare();
    return super.hubPin(pinId);
  }
}

/** The store a client uses (spec 1.8): `directory` when given, else beside the identity file, else the default folder. */
export function noiseStoreFor(options: { directory?: string | undefined; sourcePath?: string | undefined; hubHost?: string | undefined }): FileNoiseStore {
  if (options.directory !== undefined) return new FileNoiseStore(options.directory);
  const legacy = defaultNoiseDir();
  if (options.sourcePath) {
    const beside = join(dirname(resolve(options.sourcePath)), "hivemind");
    if (isDirectory(beside) || (isDirectory(dirname(beside)) && isWritable(dirname(beside)))) {
      return new IdentityNoiseStore(beside, legacy, options.hubHost);
    }
  }
  return new FileNoiseStore(legacy);
}
