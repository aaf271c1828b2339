/**
 * The control-plane client: discover hubs and provision client identities (controlplane.md).
 *
 * - API URL: the `apiUrl` option, else `THALOVANT_API_URL`, else the `api_url` key of the config
 *   file, else `https://localhost:8443`. A trailing `/v1` is dropped; requests go to `<base>/v1/...`.
 * - Token: {@link ThalovantControlPlane.login}, the `accessToken` option, or `THALOVANT_API_TOKEN`.
 *   An authenticated call without one throws "Missing Thalovant API access token. ..." before any I/O.
 * - TLS: verified, trusting `NODE_EXTRA_CA_CERTS` and `SSL_CERT_FILE` in Node.js. No redirects
 *   are followed (a 3xx is an error), no cookies are kept, and credentials never go over plain
 *   HTTP except to a loopback host.
 *
 * Hub and client resources come back with camelCase keys (`hub.publicRef`, `hub.dataPlaneEndpoints`);
 * nested objects such as `spec` are kept as the API sent them.
 */

import type { HttpClient, HttpResponse } from "./carriers/http.js";
import { HttpTimeoutError } from "./carriers/http.js";
import {
  apiErrorFromResponse,
  ThalovantAPIError,
  ThalovantAPIUnreachableError,
  ThalovantUnsupportedConnectionTypeError,
} from "./errors.js";
import { DEFAULT_PROTOCOL_PREFERENCE } from "./events.js";
import { ThalovantIdentity } from "./identity.js";
import { platform } from "./platform/current.js";
import { fromUtf8, isObject, type JsonObject, toBase64 } from "./protocol/bytes.js";
import { canonicalProtocol, type Endpoints, type HubProtocol, HubProtocolSettings, readEndpoints, urlParts } from "./protocols.js";

export const DEFAULT_API_URL = "https://localhost:8443";
export const DEFAULT_TIMEOUT_MS = 10_000;
export const MISSING_TOKEN_MESSAGE = "Missing Thalovant API access token. Sign in with login(email, password) or pass accessToken.";
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "::1"]);
const SCRUBBED_KEYS = new Set([
  "initialidentify",
  "initialidentifytoken",
  "apikey",
  "accesskey",
  "password",
  "cryptokey",
  "token",
  "accesstoken",
  "refreshtoken",
  "authorization",
  "clientsecret",
  "privatekey",
  "secret",
  "apisecret",
  "secretkey",
  "credentials",
]);
const CAMEL_HUB_KEYS: Record<string, string> = {
  ownerId: "owner_id",
  runtimeGroupId: "runtime_group_id",
  capacityProfile: "capacity_profile",
  isLocked: "is_locked",
};

function normalisedKey(name: string): string {
  return name.toLowerCase().replace(/[_-]/g, "");
}

/** A deep copy without any key whose normalised name is a known secret (controlplane.md 5.4). */
export function scrubSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrubSecrets);
  if (isObject(value)) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key]) => !SCRUBBED_KEYS.has(normalisedKey(key)))
        .map(([key, item]) => [key, scrubSecrets(item)]),
    );
  }
  return value;
}

/** Trim, drop trailing slashes and one trailing `/v1`, end with `/`. */
export function normalizeApiUrl(url: string | undefined): string {
  let text = (url ?? "").trim().replace(/\/+$/, "");
  if (text.toLowerCase().endsWith("/v1")) text = text.slice(0, -3).replace(/\/+$/, "");
  return `${text || DEFAULT_API_URL}/`;
}

/** The API URL by precedence: argument, `THALOVANT_API_URL`, config file, default. */
export function resolveApiUrl(apiUrl: string | undefined): string {
  if (apiUrl?.trim()) return normalizeApiUrl(apiUrl);
  const env = platform().env("THALOVANT_API_URL")?.trim();
  if (env) return normalizeApiUrl(env);
  return normalizeApiUrl(platform().configApiUrl() ?? DEFAULT_API_URL);
}

/** Random URL-safe text of `bytes` random bytes (Python's `secrets.token_urlsafe`). */
function tokenUrlsafe(bytes: number): string {
  return toBase64(crypto.getRandomValues(new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** controlplane.md 5.1 step 2: trim, `_` to `-`, whitespace runs to `-`; empty gives `thalovant-client-<8 hex>`. */
export function cleanSiteId(value: string | undefined): string {
  const text = (value ?? "").trim().replace(/_/g, "-").replace(/\s+/g, "-");
  return text || `thalovant-client-${randomHex(4)}`;
}

function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_m, ch: string) => ch.toUpperCase());
}

/** A resource with its top-level keys in camelCase (nested objects as sent). */
function camelResource(value: unknown): JsonObject {
  if (!isObject(value)) return {};
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [camel(key), item]));
}

/** A hub as the API describes it (the fields the guide and the SDK read; others are kept too). */
export interface ThalovantHub {
  id: string;
  slug?: string;
  publicRef?: string;
  name?: string;
  title?: string;
  description?: string;
  visibility?: string;
  active?: boolean;
  domain?: string | null;
  spec?: JsonObject;
  dataPlaneEndpoints?: Endpoints;
  ownerId?: string;
  workspaceId?: string;
  etag?: string;
  createdAt?: string;
  updatedAt?: string;
  [key: string]: unknown;
}

/** A client identity resource (secrets are never part of it). */
export interface ThalovantClientResource {
  id: string;
  hubId?: string;
  name?: string;
  siteId?: string;
  active?: boolean;
  etag?: string;
  spec?: JsonObject;
  [key: string]: unknown;
}

/** One page of a cursor-paged list. */
export interface Page<T> {
  data: T[];
  meta: { count?: number; next?: string | null; [key: string]: unknown };
  links: { next?: string | null; [key: string]: unknown };
}

function page<T>(answer: JsonObject, convert: (item: unknown) => T): Page<T> {
  const data = Array.isArray(answer.data) ? answer.data.map(convert) : [];
  return { data, meta: isObject(answer.meta) ? answer.meta : {}, links: isObject(answer.links) ? answer.links : {} };
}

function domainHost(domain: unknown): string | undefined {
  if (typeof domain !== "string" || !domain.trim()) return undefined;
  const text = domain.trim().replace(/\/+$/, "");
  if (text.includes("://")) {
    const parts = urlParts(text);
    if (parts === undefined) return undefined;
    return parts.port ? `${parts.hostname}:${parts.port}` : parts.hostname;
  }
  return text.split("/", 1)[0] || undefined;
}

/**
 * A hub resource's protocol flags and data-plane endpoints (controlplane.md 4.1, 5.3): given
 * endpoints, plus `https://<domain>` / `wss://<domain>` for enabled protocols that have none.
 */
export function hubEndpoints(hub: JsonObject): [HubProtocolSettings, Endpoints] {
  const flags = HubProtocolSettings.fromMapping(hub);
  const endpoints = readEndpoints(hub);
  const host = domainHost(hub.domain);
  if (host) {
    if (flags.http && !endpoints.https) endpoints.https = `https://${host}`;
    if (flags.wss && !endpoints.wss) endpoints.wss = `wss://${host}`;
  }
  return [flags, endpoints];
}

function originOf(url: string): string | undefined {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*)/.exec(url);
  return match?.[1];
}

/** The carrier a new identity will use first, and its endpoint. */
export interface SelectedHubEndpoint {
  protocol: HubProtocol;
  endpoint: string;
}

/** What {@link ThalovantControlPlane.createClientIdentity} returns. */
export class BootstrapIdentityResult {
  constructor(
    readonly identity: ThalovantIdentity,
    readonly hub: ThalovantHub,
    /** The raw API answer; it may hold secrets (`toJSON()` scrubs them). */
    readonly client: JsonObject,
    readonly endpoint: SelectedHubEndpoint | undefined,
    readonly operation: JsonObject | undefined,
    readonly warnings: string[] = [],
  ) {}

  get selectedProtocol(): HubProtocol | undefined {
    return this.endpoint?.protocol;
  }

  get selectedEndpoint(): string | undefined {
    return this.endpoint?.endpoint;
  }

  get clientId(): string | undefined {
    return typeof this.client.id === "string" ? this.client.id : undefined;
  }

  get connectionType(): string | undefined {
    const spec = this.client.spec;
    return isObject(spec) && typeof spec.connection_type === "string" ? spec.connection_type : undefined;
  }

  /** Everything, with the client's secrets scrubbed unless `includeSecrets`. */
  asDict(includeSecrets = false): JsonObject {
    return {
      identity: this.identity.asDict(includeSecrets),
      hub: this.hub,
      client: includeSecrets ? this.client : (scrubSecrets(this.client) as JsonObject),
      selected_protocol: this.selectedProtocol ?? null,
      selected_endpoint: this.selectedEndpoint ?? null,
      operation: this.operation ?? null,
    };
  }

  toJSON(): JsonObject {
    return this.asDict(false);
  }
}

function mentionsConnectionType(error: ThalovantAPIError): boolean {
  const mentions = (value: unknown): boolean => typeof value === "string" && (value.includes("connection_type") || value.includes("connectionType"));
  if (mentions(error.detail) || mentions(error.code)) return true;
  const problem = error.problem ?? {};
  const entries: unknown[] = [];
  for (const key of ["errors", "detail"]) if (Array.isArray(problem[key])) entries.push(...(problem[key] as unknown[]));
  return entries.some((entry) => isObject(entry) && (mentions(entry.msg) || (Array.isArray(entry.loc) && entry.loc.some(mentions))));
}

/** Options of the control-plane client. */
export interface ControlPlaneOptions {
  apiUrl?: string;
  accessToken?: string;
  timeoutMs?: number;
  userAgent?: string;
  /** Turn TLS certificate verification off (development only). */
  selfSigned?: boolean;
}

/** Options of {@link ThalovantControlPlane.request}. */
export interface RequestOptions {
  auth?: boolean;
  params?: Record<string, string | number | boolean | undefined | null>;
  json?: JsonObject;
  headers?: Record<string, string>;
}

/** Options of {@link ThalovantControlPlane.createClientIdentity}. */
export interface CreateClientIdentityOptions {
  name: string;
  siteId?: string;
  spec?: JsonObject;
  ownerId?: string;
  active?: boolean;
  preferredProtocols?: readonly string[];
  idempotencyKey?: string;
  connectionType?: string;
}

/** The control-plane client of the guide. Call {@link close} when done (it keeps connections open). */
export class ThalovantControlPlane {
  readonly apiUrl: string;
  accessToken: string | undefined;
  tokenId: string | undefined;
  readonly timeoutMs: number;
  readonly userAgent: string;
  private readonly selfSigned: boolean;
  private http: HttpClient | undefined;

  constructor(options: ControlPlaneOptions | string = {}) {
    const settings = typeof options === "string" ? { apiUrl: options } : options;
    this.apiUrl = resolveApiUrl(settings.apiUrl);
    const parts = urlParts(this.apiUrl);
    if (parts === undefined || (parts.scheme !== "http" && parts.scheme !== "https") || !parts.hostname) {
      throw new ThalovantAPIError(`The Thalovant API URL must be http(s):// with a host, got ${JSON.stringify(this.apiUrl)}.`);
    }
    if (/^[a-z]+:\/\/[^/]*@/i.test(this.apiUrl)) throw new ThalovantAPIError("The Thalovant API URL must not carry credentials (user:password@).");
    const token = settings.accessToken ?? platform().env("THALOVANT_API_TOKEN") ?? "";
    this.accessToken = token.trim() || undefined;
    this.tokenId = undefined;
    this.timeoutMs = settings.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.userAgent = settings.userAgent ?? platform().userAgent;
    this.selfSigned = settings.selfSigned ?? false;
  }

  toString(): string {
    return `ThalovantControlPlane(api_url=${this.apiUrl}, signed_in=${this.accessToken ? "yes" : "no"})`;
  }

  /** Close the HTTP connections (the token is kept). */
  async close(): Promise<void> {
    const http = this.http;
    this.http = undefined;
    await http?.close();
  }

  private client(): HttpClient {
    this.http ??= platform().httpClient({ verify: !this.selfSigned }, { maxConnections: 4 });
    return this.http;
  }

  /**
   * Send one request and return its JSON object (`{}` for an empty 2xx body). Throws the typed
   * errors of controlplane.md 12, and "Missing Thalovant API access token." before any I/O when
   * `auth` (the default) and no token.
   */
  async request(method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE", path: string, options: RequestOptions = {}): Promise<JsonObject> {
    const auth = options.auth ?? true;
    const headers: Record<string, string> = { accept: "application/json", "user-agent": this.userAgent, ...(options.headers ?? {}) };
    if (auth) {
      if (!this.accessToken) throw new ThalovantAPIError(MISSING_TOKEN_MESSAGE);
      headers.authorization = `Bearer ${this.accessToken}`;
    }
    const url = new URL(path.replace(/^\/+/, ""), this.apiUrl);
    for (const [key, value] of Object.entries(options.params ?? {})) {
      if (value === undefined || value === null || value === false || value === "") continue;
      url.searchParams.append(key, value === true ? "true" : String(value));
    }
    const credentialBearing = auth || options.json !== undefined;
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (credentialBearing && url.protocol !== "https:" && !LOOPBACK_HOSTS.has(host)) {
      throw new ThalovantAPIError("Refusing to send credentials over plain HTTP to a non-loopback host; use an https:// API URL.");
    }
    let body: string | undefined;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers["content-type"] = "application/json";
    }
    let response: HttpResponse;
    try {
      response = await this.client().request({ method, url: url.toString(), headers, body, timeoutMs: this.timeoutMs });
    } catch (error) {
      if (error instanceof HttpTimeoutError) throw new ThalovantAPIUnreachableError();
      throw new ThalovantAPIUnreachableError(`Could not reach the Thalovant API (${(error as Error).message}).`);
    }
    return ThalovantControlPlane.interpret(response);
  }

  private static interpret(response: HttpResponse): JsonObject {
    const status = response.status;
    const text = fromUtf8Lenient(response.body);
    if (status < 200 || status >= 300) throw apiErrorFromResponse(status, text, response.headers);
    if (!text.trim()) return {};
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new ThalovantAPIError(`Thalovant API returned a non-JSON response (HTTP ${status}).`, { statusCode: status });
    }
    if (!isObject(body)) {
      throw new ThalovantAPIError(`Thalovant API returned an unexpected response shape (HTTP ${status}): expected a JSON object.`, {
        statusCode: status,
      });
    }
    return body;
  }

  // -- auth and account

  /** Sign in with a password (POST /v1/auth/token); keeps the token in memory and returns the answer. */
  async login(email: string, password: string, scope?: string, options: { otpCode?: string; recoveryCode?: string } = {}): Promise<JsonObject> {
    const body: JsonObject = { email, password };
    if (scope !== undefined) body.scope = scope;
    if (options.otpCode !== undefined) body.otp_code = options.otpCode;
    if (options.recoveryCode !== undefined) body.recovery_code = options.recoveryCode;
    const answer = await this.request("POST", "/v1/auth/token", { auth: false, json: body });
    const token = answer.access_token;
    if (typeof token !== "string" || !token.trim()) throw new ThalovantAPIError("Thalovant API token response did not include access_token.");
    this.accessToken = token;
    this.tokenId = typeof answer.token_id === "string" && answer.token_id ? answer.token_id : undefined;
    return answer;
  }

  /** The signed-in user's profile (`id`, `email`, `display_name`, `role`). */
  async getProfile(): Promise<JsonObject> {
    const answer = await this.request("GET", "/v1/users/profile");
    return isObject(answer.data) ? answer.data : answer;
  }

  /** Revoke an API token (default: the one this client signed in with, which is then forgotten). */
  async revokeApiToken(tokenId?: string): Promise<void> {
    const target = tokenId ?? this.tokenId;
    if (!target) {
      throw new ThalovantAPIError("No API token id to revoke: pass a token id (password sign-ins return session tokens without one).");
    }
    await this.request("DELETE", `/v1/auth/api-tokens/${encodeURIComponent(target)}`);
    if (target === this.tokenId) {
      this.accessToken = undefined;
      this.tokenId = undefined;
    }
  }

  // -- hubs

  /** Public, active hubs (no sign-in): `{ data, meta, links }`. */
  async listPublicHubs(options: { limit?: number; cursor?: string } = {}): Promise<Page<ThalovantHub>> {
    const answer = await this.request("GET", "/v1/public/hubs", { auth: false, params: { limit: options.limit ?? 24, cursor: options.cursor } });
    return page(answer, (item) => camelResource(item) as ThalovantHub);
  }

  /** One public hub by slug, public ref or id (no sign-in). */
  async getPublicHub(ref: string): Promise<ThalovantHub> {
    return camelResource(await this.request("GET", `/v1/public/hubs/${encodeURIComponent(ref)}`, { auth: false })) as ThalovantHub;
  }

  /** The hubs visible to the signed-in user. */
  async listHubs(options: { limit?: number; cursor?: string; ownerId?: string } = {}): Promise<Page<ThalovantHub>> {
    const params = { limit: options.limit ?? 100, cursor: options.cursor, owner_id: options.ownerId };
    return page(await this.request("GET", "/v1/hubs", { params }), (item) => camelResource(item) as ThalovantHub);
  }

  /** One hub (with its `etag`). */
  async getHub(hubId: string): Promise<ThalovantHub> {
    return camelResource(await this.request("GET", `/v1/hubs/${encodeURIComponent(hubId)}`)) as ThalovantHub;
  }

  /** Create a hub (`name` and `spec` with `version` are required). */
  async createHub(payload: JsonObject, idempotencyKey?: string): Promise<ThalovantHub> {
    const body = Object.fromEntries(Object.entries(payload).map(([k, v]) => [CAMEL_HUB_KEYS[k] ?? k, v]));
    const headers = { "Idempotency-Key": idempotencyKey ?? crypto.randomUUID() };
    return camelResource(await this.request("POST", "/v1/hubs", { json: body, headers })) as ThalovantHub;
  }

  private async etagOf(path: string): Promise<string> {
    const etag = (await this.request("GET", path)).etag;
    if (typeof etag !== "string" || !etag) throw new ThalovantAPIError("The resource has no etag; cannot update or delete it safely.");
    return etag;
  }

  /** Patch a hub with `If-Match` (the current etag is read first when not given). */
  async updateHub(hubId: string, payload: JsonObject, etag?: string): Promise<ThalovantHub> {
    const path = `/v1/hubs/${encodeURIComponent(hubId)}`;
    const body = Object.fromEntries(Object.entries(payload).map(([k, v]) => [CAMEL_HUB_KEYS[k] ?? k, v]));
    const tag = etag ?? (await this.etagOf(path));
    return camelResource(await this.request("PATCH", path, { json: body, headers: { "If-Match": tag } })) as ThalovantHub;
  }

  /** Delete a hub with `If-Match` (the current etag is read first when not given). */
  async deleteHub(hubId: string, etag?: string): Promise<void> {
    const path = `/v1/hubs/${encodeURIComponent(hubId)}`;
    await this.request("DELETE", path, { headers: { "If-Match": etag ?? (await this.etagOf(path)) } });
  }

  // -- clients

  /** POST /v1/clients with the payload as given; the raw answer (it may carry `initial_identify`). */
  async createClient(payload: JsonObject, idempotencyKey?: string): Promise<JsonObject> {
    return this.request("POST", "/v1/clients", { json: payload, headers: { "Idempotency-Key": idempotencyKey ?? crypto.randomUUID() } });
  }

  async getClient(clientId: string): Promise<ThalovantClientResource> {
    return camelResource(await this.request("GET", `/v1/clients/${encodeURIComponent(clientId)}`)) as ThalovantClientResource;
  }

  /** Client identities, filtered by hub and owner. */
  async listClients(
    options: { hubId?: string; limit?: number; cursor?: string; ownerId?: string; includeSpec?: boolean } = {},
  ): Promise<Page<ThalovantClientResource>> {
    const params = {
      limit: options.limit ?? 100,
      hub_id: options.hubId,
      cursor: options.cursor,
      owner_id: options.ownerId,
      include_spec: options.includeSpec === false ? "false" : undefined,
    };
    return page(await this.request("GET", "/v1/clients", { params }), (item) => camelResource(item) as ThalovantClientResource);
  }

  /** Delete a client identity; reads the etag when not given, retries once after a 412, treats 404 as done. */
  async deleteClient(clientId: string, etag?: string): Promise<void> {
    const path = `/v1/clients/${encodeURIComponent(clientId)}`;
    let tag = etag;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.request("DELETE", path, { headers: { "If-Match": tag ?? (await this.etagOf(path)) } });
        return;
      } catch (error) {
        if (error instanceof ThalovantAPIError && error.statusCode === 404) return;
        if (error instanceof ThalovantAPIError && error.statusCode === 412 && attempt === 0) {
          tag = undefined;
          continue;
        }
        throw error;
      }
    }
  }

  async getOperation(operationId: string): Promise<JsonObject> {
    return this.request("GET", `/v1/operations/${encodeURIComponent(operationId)}`);
  }

  /**
   * Create a client identity on a hub (controlplane.md 5.1-5.4) and return it ready to use.
   * `hub` is a hub id (read with GET /v1/hubs/{id}) or a hub resource.
   */
  async createClientIdentity(hub: string | ThalovantHub | JsonObject, options: CreateClientIdentityOptions): Promise<BootstrapIdentityResult> {
    const name = options?.name;
    if (typeof name !== "string" || !name.trim()) throw new TypeError("createClientIdentity needs { name }: a non-empty string.");
    const hubResource: ThalovantHub = typeof hub === "string" ? await this.getHub(hub) : (camelResource(hub) as ThalovantHub);
    const hubId = hubResource.id;
    if (typeof hubId !== "string" || !hubId) throw new ThalovantAPIError("Hub resource is missing id.");
    const site = cleanSiteId(options.siteId ?? name);
    const accessKey = tokenUrlsafe(32);
    const password = tokenUrlsafe(32);
    const clientSpec: JsonObject = {};
    for (const [key, value] of Object.entries(options.spec ?? {})) if (normalisedKey(key) !== "cryptokey") clientSpec[key] = structuredClone(value);
    clientSpec.version ??= "1";
    if (options.connectionType !== undefined) clientSpec.connection_type = options.connectionType;
    Object.assign(clientSpec, { apiKey: accessKey, password, siteId: site });
    const body: JsonObject = { hub_id: hubId, name, spec: clientSpec, active: options.active ?? true };
    if (options.ownerId !== undefined) body.owner_id = options.ownerId;
    let client: JsonObject;
    try {
      client = await this.createClient(body, options.idempotencyKey);
    } catch (error) {
      if (error instanceof ThalovantAPIError && error.statusCode === 422 && options.connectionType !== undefined && mentionsConnectionType(error)) {
        throw new ThalovantUnsupportedConnectionTypeError(
          `The API does not support connection_type ${JSON.stringify(options.connectionType)}: ${error.detail ?? error.message}`,
          { statusCode: error.statusCode, code: error.code, detail: error.detail, problem: error.problem },
        );
      }
      throw error;
    }
    if (options.connectionType !== undefined) {
      const echoed = isObject(client.spec) ? client.spec.connection_type : undefined;
      if (echoed !== options.connectionType) {
        if (typeof client.id === "string" && client.id) {
          await this.deleteClient(client.id, typeof client.etag === "string" && client.etag ? client.etag : undefined);
        }
        throw new ThalovantUnsupportedConnectionTypeError(
          `The API did not confirm connection_type ${JSON.stringify(options.connectionType)}; the new client was deleted.`,
        );
      }
    }

    const [flags, endpoints] = hubEndpoints(hubResource);
    let selected: SelectedHubEndpoint | undefined;
    for (const wanted of options.preferredProtocols ?? DEFAULT_PROTOCOL_PREFERENCE) {
      const protocol = canonicalProtocol(wanted);
      const endpoint = protocol !== undefined ? endpoints[protocol] : undefined;
      if (protocol !== undefined && flags.isEnabled(protocol) && endpoint) {
        selected = { protocol, endpoint };
        break;
      }
    }

    let material: JsonObject;
    const initial = client.initial_identify;
    if (isObject(initial)) {
      material = Object.fromEntries(Object.entries(initial).filter(([key]) => !["spec", "protocols", "network"].includes(key)));
      material.data_plane_endpoints = { ...readEndpoints(initial), ...endpoints };
      material.protocols = flags.asDict();
    } else {
      let master: string | undefined;
      if (endpoints.https) master = originOf(endpoints.https);
      else if (domainHost(hubResource.domain)) master = `https://${domainHost(hubResource.domain)}`;
      else if (selected !== undefined) master = originOf(selected.endpoint);
      if (master === undefined) throw new ThalovantAPIError("Hub resource does not expose a usable data-plane endpoint.");
      material = {
        access_key: accessKey,
        password,
        site_id: site,
        default_master: master,
        default_port: 443,
        default_path: "",
        data_plane_endpoints: endpoints,
        protocols: flags.asDict(),
      };
    }
    const identity = ThalovantIdentity.fromMapping(material);
    const operation = isObject(client.operation) && client.operation.id ? client.operation : undefined;
    return new BootstrapIdentityResult(identity, hubResource, client, selected, operation);
  }
}

function fromUtf8Lenient(bytes: Uint8Array): string {
  try {
    return fromUtf8(bytes);
  } catch {
    return new TextDecoder().decode(bytes);
  }
}
