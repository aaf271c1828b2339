/**
 * Data-plane protocol names, protocol flags and endpoint normalisation (dataplane.md 1.1-1.3),
 * shared by identities and the control plane's hub resources.
 */

import { isObject, type JsonObject } from "./protocol/bytes.js";

/** A carrier as the guide names it. */
export type HubProtocol = "wss" | "https" | "mqtt";

export const PROTOCOLS: readonly HubProtocol[] = ["wss", "https", "mqtt"];
export const ENDPOINT_SCHEMES: ReadonlySet<string> = new Set(["http", "https", "ws", "wss", "mqtt", "mqtts"]);

const ALIASES: ReadonlyMap<string, HubProtocol> = new Map([
  ["wss", "wss"],
  ["ws", "wss"],
  ["websocket", "wss"],
  ["https", "https"],
  ["http", "https"],
  ["mqtt", "mqtt"],
  ["mqtts", "mqtt"],
]);
const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off"]);

/** `wss`, `https` or `mqtt` for a protocol name or alias; undefined when unknown. */
export function canonicalProtocol(protocol: unknown): HubProtocol | undefined {
  return typeof protocol === "string" ? ALIASES.get(protocol.trim().toLowerCase()) : undefined;
}

/** A protocol flag: a boolean, a bool-string, or an object with `enabled`; undefined when unusable. */
export function parseFlag(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (typeof value === "string") {
    const lowered = value.trim().toLowerCase();
    if (TRUE.has(lowered)) return true;
    if (FALSE.has(lowered)) return false;
    return undefined;
  }
  if (isObject(value)) return parseFlag(value.enabled);
  return undefined;
}

/** Scheme and host of an absolute URL, or undefined when it does not parse. */
export function urlParts(url: string): { scheme: string; hostname: string; port: string } | undefined {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (match === null) return undefined;
  try {
    // WHATWG URL parsing differs per scheme; parse every URL as http to read its authority.
    const parsed = new URL(`http://${url.slice(match[0].length)}`);
    let hostname = parsed.hostname;
    if (hostname.startsWith("[") && hostname.endsWith("]")) hostname = hostname.slice(1, -1);
    return { scheme: (match[1] as string).toLowerCase(), hostname, port: explicitPort(url) ?? "" };
  } catch {
    return undefined;
  }
}

/** The port written in a URL's authority, if any (URL parsers drop default ports). */
function explicitPort(url: string): string | undefined {
  const rest = url.includes("://") ? url.slice(url.indexOf("://") + 3) : url;
  const authority = (rest.split(/[/?#]/, 1)[0] ?? "").split("@").pop() ?? "";
  const match = /:(\d+)$/.exec(authority.startsWith("[") ? authority.slice(authority.indexOf("]") + 1) : authority);
  return match ? match[1] : undefined;
}

/**
 * An endpoint URL trimmed of whitespace and trailing `/`; an object gives its
 * `endpoint`/`broker_url`/`brokerUrl`. A URL with a scheme outside http, https, ws, wss, mqtt,
 * mqtts, or without a host, is dropped (undefined).
 */
export function normalizeEndpoint(value: unknown): string | undefined {
  if (isObject(value)) {
    for (const key of ["endpoint", "broker_url", "brokerUrl"]) {
      if (typeof value[key] === "string") return normalizeEndpoint(value[key]);
    }
    return undefined;
  }
  if (typeof value !== "string") return undefined;
  const raw = value.trim();
  const text = raw.replace(/\/+$/, "");
  if (!text) return undefined;
  if (raw.includes("://")) {
    const parts = urlParts(text);
    if (parts === undefined || !ENDPOINT_SCHEMES.has(parts.scheme) || !parts.hostname) return undefined;
  }
  return text;
}

/** Data-plane endpoints per carrier. */
export type Endpoints = Partial<Record<HubProtocol, string>>;

/**
 * The `https`/`wss`/`mqtt` endpoints of an object: from its `data_plane_endpoints` (or
 * `dataPlaneEndpoints`, `endpoints`) object, else from its own top level.
 */
export function readEndpoints(source: JsonObject): Endpoints {
  let container: JsonObject = source;
  for (const key of ["data_plane_endpoints", "dataPlaneEndpoints", "endpoints"]) {
    const found = source[key];
    if (isObject(found)) {
      container = found;
      break;
    }
  }
  const result: Endpoints = {};
  const groups: [HubProtocol, string[]][] = [
    ["https", ["https", "http"]],
    ["wss", ["wss", "ws"]],
    ["mqtt", ["mqtt", "mqtts"]],
  ];
  for (const [protocol, keys] of groups) {
    for (const key of keys) {
      if (container[key] !== undefined && container[key] !== null) {
        const endpoint = normalizeEndpoint(container[key]);
        if (endpoint) result[protocol] = endpoint;
        break;
      }
    }
  }
  return result;
}

/** The URL without `user:password@` in its authority. */
export function stripUserinfo(url: string): string {
  const at = url.indexOf("://");
  if (at < 0) return url;
  const scheme = url.slice(0, at);
  const rest = url.slice(at + 3);
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const tail = slash < 0 ? "" : rest.slice(slash);
  const host = authority.includes("@") ? authority.slice(authority.lastIndexOf("@") + 1) : authority;
  return `${scheme}://${host}${tail}`;
}

/** Which carriers a hub (or an identity) enables. Defaults: wss on, http off, mqtt off. */
export class HubProtocolSettings {
  constructor(
    readonly wss = true,
    readonly http = false,
    readonly mqtt = false,
  ) {}

  /**
   * Read `spec.protocols` (else `spec.network`) when a `spec` object exists, else the top-level
   * `protocols` (else `network`). A non-empty `protocols` wins.
   */
  static fromMapping(source: unknown): HubProtocolSettings {
    if (!isObject(source)) return new HubProtocolSettings();
    const holder = isObject(source.spec) ? source.spec : source;
    let flags: JsonObject | undefined;
    for (const key of ["protocols", "network"]) {
      const candidate = holder[key];
      if (isObject(candidate) && Object.keys(candidate).length > 0) {
        flags = candidate;
        break;
      }
    }
    if (flags === undefined) return new HubProtocolSettings();
    const values = { wss: true, http: false, mqtt: false };
    const groups: ["wss" | "http" | "mqtt", string[]][] = [
      ["wss", ["wss", "websocket"]],
      ["http", ["http", "https"]],
      ["mqtt", ["mqtt"]],
    ];
    for (const [name, keys] of groups) {
      for (const key of keys) {
        if (key in flags) {
          const parsed = parseFlag(flags[key]);
          if (parsed !== undefined) values[name] = parsed;
          break;
        }
      }
    }
    return new HubProtocolSettings(values.wss, values.http, values.mqtt);
  }

  isEnabled(protocol: string): boolean {
    switch (canonicalProtocol(protocol)) {
      case "wss":
        return this.wss;
      case "https":
        return this.http;
      case "mqtt":
        return this.mqtt;
      default:
        return false;
    }
  }

  /** The enabled protocols in the fixed order wss, https, mqtt. */
  enabled(): HubProtocol[] {
    return PROTOCOLS.filter((protocol) => this.isEnabled(protocol));
  }

  asDict(): Record<"wss" | "http" | "mqtt", { enabled: boolean }> {
    return { wss: { enabled: this.wss }, http: { enabled: this.http }, mqtt: { enabled: this.mqtt } };
  }
}
