/**
 * Client identity material (dataplane.md 1.1-1.5): what a client needs to reach its hub.
 *
 * An identity is a JSON object with an access key, a password, a site id, the hub's address and
 * optionally endpoints per carrier, protocol flags, MQTT broker credentials and metadata. Load it
 * with {@link ThalovantIdentity.fromMapping}, `fromFile`, `fromConfig` or `fromEnv`; write it
 * with `save` (0600, atomic). `String(identity)` and `asDict()` hide every secret.
 */

import { selectIdentityMapping } from "./config.js";
import { ThalovantIdentityError, ThalovantUnsupportedProtocolError } from "./errors.js";
import { platform } from "./platform/current.js";
import { isObject, type JsonObject } from "./protocol/bytes.js";
import {
  canonicalProtocol,
  type Endpoints,
  type HubProtocol,
  HubProtocolSettings,
  normalizeEndpoint,
  parseFlag,
  readEndpoints,
  stripUserinfo,
  urlParts,
} from "./protocols.js";

export const DEFAULT_PORT = 5679;
const REDACTED = "<redacted>";
const INSPECT = Symbol.for("nodejs.util.inspect.custom");
const SECRET_WORDS = [
  "password",
  "passwd",
  "secret",
  "token",
  "apikey",
  "accesskey",
  "privatekey",
  "credential",
  "authorization",
  "cryptokey",
  "initialidentify",
];

/** True for a key name that looks like it holds a secret; reference keys (`apiKeyRef`) are not. */
export function isSecretKey(name: string): boolean {
  const normalised = name.toLowerCase().replace(/[_-]/g, "");
  if (normalised.endsWith("ref") || normalised.endsWith("refs")) return false;
  return SECRET_WORDS.some((word) => normalised.includes(word));
}

/** A deep copy of `value` with the values of secret-looking keys replaced by `"<redacted>"`. */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (isObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, isSecretKey(k) ? REDACTED : redactSecrets(v)]));
  }
  return value;
}

function first(source: JsonObject, keys: string[]): unknown {
  for (const key of keys) if (source[key] !== undefined && source[key] !== null) return source[key];
  return undefined;
}

function requiredText(source: JsonObject, keys: string[], what: string, strip = true): string {
  const value = first(source, keys);
  if (value === undefined) {
    const aliases = keys.length > 1 ? ` (also accepted: ${keys.slice(1).join(", ")})` : "";
    throw new ThalovantIdentityError(`The identity is missing ${keys[0]}${aliases}.`);
  }
  if (typeof value !== "string") throw new ThalovantIdentityError(`The identity's ${what} must be a string.`);
  const text = strip ? value.trim() : value;
  if (!text) throw new ThalovantIdentityError(`The identity's ${what} is empty.`);
  return text;
}

function parsePort(value: unknown, what = "default_port"): number {
  if (typeof value === "boolean") throw new ThalovantIdentityError(`The identity's ${what} must be an integer, not a boolean.`);
  const port = typeof value === "number" ? value : typeof value === "string" && /^\s*[-+]?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(port)) throw new ThalovantIdentityError(`The identity's ${what} must be an integer, got ${JSON.stringify(value)}.`);
  if (port < 0 || port > 65535) throw new ThalovantIdentityError(`The identity's ${what} must be between 0 and 65535, got ${port}.`);
  return port;
}

function normalisePath(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") throw new ThalovantIdentityError("The identity's default_path must be a string.");
  const parts = value.trim().split("/").filter(Boolean);
  return parts.length > 0 ? `/${parts.join("/")}` : "";
}

/** The naive check of dataplane.md 1.2: any `:` in the host part (after userinfo). */
function authorityHasPort(url: string): boolean {
  const rest = url.includes("://") ? url.slice(url.indexOf("://") + 3) : url;
  const authority = (rest.split("/", 1)[0] ?? "").split("@").pop() ?? "";
  return authority.includes(":");
}

function withPort(url: string, port: number): string {
  if (authorityHasPort(url)) return url;
  const at = url.indexOf("://");
  const scheme = at >= 0 ? url.slice(0, at) : "";
  const rest = at >= 0 ? url.slice(at + 3) : url;
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const tail = slash < 0 ? "" : rest.slice(slash);
  const joined = `${authority}:${port}${tail}`;
  return scheme ? `${scheme}://${joined}` : joined;
}

// ---------------------------------------------------------------------------- MQTT

/**
 * Client-scoped MQTT broker credentials (dataplane.md 1.4). `host` and `port` come from the
 * endpoint URL (port 8883 for TLS, else 1883, when the URL names none).
 */
export class MqttBrokerCredentials {
  private constructor(
    readonly endpoint: string,
    readonly username: string,
    readonly password: string,
    readonly topicPrefix: string | undefined,
    readonly qos: 0 | 1,
    readonly tls: boolean,
  ) {}

  /** The block, or undefined when endpoint, username or password is missing. */
  static fromMapping(source: unknown): MqttBrokerCredentials | undefined {
    if (!isObject(source)) return undefined;
    const endpoint = normalizeEndpoint(first(source, ["endpoint", "broker_url", "brokerUrl"]));
    const username = first(source, ["username", "broker_username", "brokerUsername"]);
    const password = first(source, ["password", "broker_password", "brokerPassword"]);
    if (!endpoint || typeof username !== "string" || !username || typeof password !== "string" || !password) return undefined;
    const prefix = first(source, ["topic_prefix", "topicPrefix"]);
    const rawQos = source.qos;
    let qos: 0 | 1 = 1;
    if (rawQos === 0 || rawQos === 1) qos = rawQos;
    if (typeof rawQos === "string" && (rawQos.trim() === "0" || rawQos.trim() === "1")) qos = rawQos.trim() === "0" ? 0 : 1;
    const tlsFlag = "tls" in source ? parseFlag(source.tls) : undefined;
    const tls = tlsFlag ?? endpoint.toLowerCase().startsWith("mqtts://");
    const topicPrefix = typeof prefix === "string" && prefix.trim() ? prefix.trim().replace(/\/+$/, "") : undefined;
    return new MqttBrokerCredentials(endpoint, username, password, topicPrefix, qos, tls);
  }

  private parts(): { scheme: string; hostname: string; port: string } | undefined {
    return urlParts(this.endpoint.includes("://") ? this.endpoint : `mqtt://${this.endpoint}`);
  }

  get host(): string {
    return this.parts()?.hostname ?? "";
  }

  get port(): number {
    const parts = this.parts();
    const explicit = parts?.port ? Number(parts.port) : 0;
    if (explicit) return explicit;
    return this.tls || parts?.scheme === "mqtts" ? 8883 : 1883;
  }

  /** The identity-file form; without secrets only `endpoint` (no userinfo) and `tls`. */
  asDict(includeSecrets = false): JsonObject {
    if (!includeSecrets) return { endpoint: stripUserinfo(this.endpoint), tls: this.tls };
    const result: JsonObject = { endpoint: this.endpoint, tls: this.tls, username: this.username, password: this.password };
    if (this.topicPrefix) result.topic_prefix = this.topicPrefix;
    if (this.qos !== 1) result.qos = this.qos;
    return result;
  }

  toJSON(): JsonObject {
    return this.asDict(false);
  }

  toString(): string {
    return `MqttBrokerCredentials(endpoint=${stripUserinfo(this.endpoint)}, tls=${this.tls}, qos=${this.qos})`;
  }

  [INSPECT](): string {
    return this.toString();
  }
}

// ---------------------------------------------------------------------------- identity

/** Options of {@link ThalovantIdentity.fromConfig}. */
export interface FromConfigOptions {
  profile?: string;
  path?: string;
}

/** Options of {@link ThalovantIdentity.fromEnv}. */
export interface FromEnvOptions {
  prefix?: string;
  env?: Record<string, string | undefined>;
}

/** A client's identity on one hub. See the module comment and dataplane.md 1.1. */
export class ThalovantIdentity {
  /** The absolute path of the file the identity was read from (it decides where Noise state lives). */
  sourcePath: string | undefined;

  private constructor(
    readonly accessKey: string,
    readonly password: string,
    readonly siteId: string,
    readonly defaultMaster: string,
    readonly defaultPort: number,
    readonly defaultPath: string,
    readonly dataPlaneEndpoints: Endpoints,
    readonly protocols: HubProtocolSettings,
    readonly mqtt: MqttBrokerCredentials | undefined,
    readonly metadata: JsonObject,
    sourcePath: string | undefined,
  ) {
    this.sourcePath = sourcePath;
  }

  // -- loading

  /** Build an identity from an object, accepting the aliases of dataplane.md 1.1. */
  static fromMapping(data: unknown, options: { sourcePath?: string } = {}): ThalovantIdentity {
    if (!isObject(data)) throw new ThalovantIdentityError("Identity material must be a JSON object.");
    const accessKey = requiredText(data, ["access_key", "key", "api_key", "apiKey"], "access key");
    const password = requiredText(data, ["password"], "password", false);
    const master = requiredText(
      data,
      ["default_master", "defaultMaster", "host", "hub_http_host", "hubHttpHost", "master"],
      "default_master",
    ).replace(/\/+$/, "");
    if (!master) throw new ThalovantIdentityError("The identity's default_master is empty.");
    const siteId = requiredText(data, ["site_id", "siteId", "site", "client_id", "clientId"], "site id");
    const portValue = first(data, ["default_port", "port", "hub_http_port"]);
    const port = portValue === undefined ? DEFAULT_PORT : parsePort(portValue);
    const path = normalisePath(first(data, ["default_path", "defaultPath", "hub_http_path", "path", "uri_path"]));
    const metadata = data.metadata;
    if (metadata !== undefined && metadata !== null && !isObject(metadata)) {
      throw new ThalovantIdentityError("The identity's metadata must be a mapping.");
    }
    return new ThalovantIdentity(
      accessKey,
      password,
      siteId,
      master,
      port,
      path,
      readEndpoints(data),
      HubProtocolSettings.fromMapping(data),
      MqttBrokerCredentials.fromMapping(data.mqtt),
      { ...(metadata ?? {}) },
      options.sourcePath,
    );
  }

  /** Parse identity JSON text. */
  static fromJson(text: string): ThalovantIdentity {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new ThalovantIdentityError(`Identity JSON is not valid: ${(error as Error).message}.`);
    }
    return ThalovantIdentity.fromMapping(data);
  }

  /** Read an identity JSON file; it must be private (0600), see dataplane.md 1.5. Node.js only. */
  static async fromFile(path: string): Promise<ThalovantIdentity> {
    const host = platform();
    const target = host.absolutePath(path);
    const text = await host.readPrivateText(target);
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new ThalovantIdentityError(`${target} is not valid JSON (${(error as Error).message}).`);
    }
    if (!isObject(data)) throw new ThalovantIdentityError(`${target} must hold a JSON object.`);
    return ThalovantIdentity.fromMapping(data, { sourcePath: target });
  }

  /**
   * Read the identity of a profile from the YAML config file (default
   * `$XDG_CONFIG_HOME/thalovant/config.yaml`, else `~/.config/thalovant/config.yaml`). Node.js only.
   */
  static async fromConfig(options: FromConfigOptions = {}): Promise<ThalovantIdentity> {
    const host = platform();
    const target = options.path !== undefined ? host.absolutePath(options.path) : host.defaultConfigPath();
    if (!(await host.exists(target))) {
      throw new ThalovantIdentityError(`No Thalovant config file at ${target}. Create it (mode 0600) or pass { path }.`);
    }
    const text = await host.readPrivateText(target);
    let document: unknown;
    try {
      document = host.parseYaml(text);
    } catch (error) {
      throw new ThalovantIdentityError(`Cannot parse ${target}: ${(error as Error).message}. Fix the YAML.`);
    }
    const mapping = selectIdentityMapping(document, options.profile, `config file ${target}`);
    return ThalovantIdentity.fromMapping(mapping, { sourcePath: target });
  }

  /** Build an identity from `THALOVANT_*` environment variables (dataplane.md 1.5). */
  static fromEnv(options: FromEnvOptions = {}): ThalovantIdentity {
    const prefix = options.prefix ?? "THALOVANT_";
    const read = options.env !== undefined ? (name: string) => options.env?.[name] : (name: string) => platform().env(name);
    const get = (...names: string[]): string | undefined => {
      for (const name of names) {
        const value = read(prefix + name);
        if (value !== undefined && value.trim() !== "") return value.trim();
      }
      return undefined;
    };
    const data: JsonObject = {};
    const fields: [string, string[]][] = [
      ["access_key", ["ACCESS_KEY"]],
      ["password", ["PASSWORD"]],
      ["site_id", ["SITE_ID"]],
      ["default_master", ["HUB_HTTP_HOST", "DEFAULT_MASTER"]],
      ["default_port", ["HUB_HTTP_PORT", "DEFAULT_PORT"]],
      ["default_path", ["HUB_HTTP_PATH", "DEFAULT_PATH"]],
    ];
    for (const [key, names] of fields) {
      const value = get(...names);
      if (value !== undefined) data[key] = value;
    }
    const required: [string, string][] = [
      ["access_key", "ACCESS_KEY"],
      ["password", "PASSWORD"],
      ["site_id", "SITE_ID"],
      ["default_master", "HUB_HTTP_HOST"],
    ];
    const missing = required.filter(([key]) => !(key in data)).map(([, name]) => prefix + name);
    if (missing.length > 0) {
      throw new ThalovantIdentityError(`No identity in the environment: set ${missing.join(", ")} (or pass an identity file).`);
    }
    const endpoints: JsonObject = {};
    const endpointVariables: [string, string[]][] = [
      ["https", ["HUB_HTTPS_HOST", "HUB_HTTP_HOST"]],
      ["wss", ["HUB_WSS_HOST", "HUB_WEBSOCKET_HOST"]],
      ["mqtt", ["HUB_MQTT_HOST"]],
    ];
    for (const [key, names] of endpointVariables) {
      const value = get(...names);
      if (value !== undefined) endpoints[key] = value;
    }
    if (Object.keys(endpoints).length > 0) data.data_plane_endpoints = endpoints;
    const mqtt: JsonObject = {};
    const mqttVariables: [string, string[]][] = [
      ["endpoint", ["MQTT_ENDPOINT", "HUB_MQTT_HOST"]],
      ["username", ["MQTT_USERNAME"]],
      ["password", ["MQTT_PASSWORD"]],
      ["topic_prefix", ["MQTT_TOPIC_PREFIX"]],
      ["qos", ["MQTT_QOS"]],
    ];
    for (const [key, names] of mqttVariables) {
      const value = get(...names);
      if (value !== undefined) mqtt[key] = value;
    }
    if (Object.keys(mqtt).length > 0) data.mqtt = mqtt;
    return ThalovantIdentity.fromMapping(data);
  }

  // -- protocols and endpoints

  /** The enabled protocols, in the order wss, https, mqtt. */
  enabledProtocols(): HubProtocol[] {
    return this.protocols.enabled();
  }

  /** The protocol's flag (`https` and `http` share one). */
  supportsProtocol(protocol: string): boolean {
    return this.protocols.isEnabled(protocol);
  }

  /**
   * The HTTPS base (never empty), with the port rule of dataplane.md 1.2: the https endpoint
   * with `defaultPort` when it names no port; else `defaultMaster` (ws schemes rewritten to http
   * ones) with the port and `defaultPath`.
   */
  endpointBase(): string {
    const https = this.dataPlaneEndpoints.https;
    if (https) return withPort(https, this.defaultPort);
    let master = this.defaultMaster;
    const lowered = master.toLowerCase();
    if (lowered.startsWith("wss://")) master = `https://${master.slice(6)}`;
    else if (lowered.startsWith("ws://")) master = `http://${master.slice(5)}`;
    else if (!master.includes("://")) master = `https://${master}`;
    return withPort(master, this.defaultPort) + this.defaultPath;
  }

  /** The endpoint for `wss`, `https` (aliases `ws`, `http`) or `mqtt`; undefined when there is none. */
  endpointFor(protocol: string): string | undefined {
    switch (canonicalProtocol(protocol)) {
      case "https":
        return this.endpointBase();
      case "wss": {
        if (this.dataPlaneEndpoints.wss) return this.dataPlaneEndpoints.wss;
        const lowered = this.defaultMaster.toLowerCase();
        return lowered.startsWith("wss://") || lowered.startsWith("ws://") ? this.defaultMaster : undefined;
      }
      case "mqtt":
        return this.dataPlaneEndpoints.mqtt;
      default:
        throw new ThalovantUnsupportedProtocolError(`Unknown protocol ${JSON.stringify(protocol)}; use one of wss, https, mqtt.`);
    }
  }

  // -- output

  /**
   * The identity-file form. Without `includeSecrets` the access key, the password, the MQTT
   * credentials and URL userinfo are left out and secret-looking metadata values read `<redacted>`.
   */
  asDict(includeSecrets = false): JsonObject {
    const url = (value: string): string => (includeSecrets ? value : stripUserinfo(value));
    const result: JsonObject = {
      site_id: this.siteId,
      default_master: url(this.defaultMaster),
      default_port: this.defaultPort,
      default_path: this.defaultPath,
    };
    const endpoints = Object.entries(this.dataPlaneEndpoints);
    if (endpoints.length > 0) result.data_plane_endpoints = Object.fromEntries(endpoints.map(([k, v]) => [k, url(v)]));
    if (includeSecrets) {
      result.access_key = this.accessKey;
      result.password = this.password;
    }
    if (this.mqtt !== undefined) result.mqtt = this.mqtt.asDict(includeSecrets);
    result.protocols = this.protocols.asDict();
    if (Object.keys(this.metadata).length > 0) {
      result.metadata = includeSecrets ? { ...this.metadata } : (redactSecrets(this.metadata) as JsonObject);
    }
    return result;
  }

  /** `JSON.stringify(identity)` never carries secrets; use `asDict(true)` for the file form. */
  toJSON(): JsonObject {
    return this.asDict(false);
  }

  toJsonText(includeSecrets = false): string {
    return `${JSON.stringify(this.asDict(includeSecrets), null, 2)}\n`;
  }

  /** Write the identity file (with secrets) atomically, mode 0600; sets {@link sourcePath}. Node.js only. */
  async save(path: string): Promise<string> {
    const target = await platform().writePrivateText(path, this.toJsonText(true));
    this.sourcePath = target;
    return target;
  }

  toString(): string {
    const endpoints = Object.fromEntries(Object.entries(this.dataPlaneEndpoints).map(([k, v]) => [k, stripUserinfo(v)]));
    return (
      `ThalovantIdentity(site_id=${this.siteId}, default_master=${stripUserinfo(this.defaultMaster)}, ` +
      `default_port=${this.defaultPort}, endpoints=${JSON.stringify(endpoints)}, protocols=${JSON.stringify(this.enabledProtocols())}, ` +
      `mqtt=${this.mqtt ? "yes" : "no"}, access_key=<redacted>, password=<redacted>)`
    );
  }

  [INSPECT](): string {
    return this.toString();
  }
}
