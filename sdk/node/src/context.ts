/**
 * Caller context for bus messages (dataplane.md 6.1).
 *
 * {@link buildClientContext} builds the plain context keys a client may attach to a request
 * (`client.ask(text, { context })`): who the user is, where the request comes from, locale,
 * device, trace metadata and the session. The hub may read them; the client adds its own keys
 * (`source`, `platform`, `destination`, `session`) only where these are missing.
 */

import { isObject, type JsonObject } from "./protocol/bytes.js";

/** The fields {@link buildClientContext} sets; each one left undefined changes nothing. */
export interface ClientContextOptions {
  userId?: string;
  userName?: string;
  roles?: string | string[];
  authToken?: string;
  authProvider?: string;
  authClaims?: JsonObject;
  source?: string;
  destination?: string;
  platform?: string;
  locale?: string;
  channel?: string;
  deviceId?: string;
  devicePlatform?: string;
  metadata?: JsonObject;
  sessionId?: string;
  /** Any other keys, set as given. */
  extra?: JsonObject;
}

function mergeInto(target: JsonObject, key: string, values: JsonObject): void {
  if (Object.keys(values).length === 0) return;
  const current = target[key];
  target[key] = { ...(isObject(current) ? current : {}), ...values };
}

function defined(entries: [string, unknown][]): JsonObject {
  return Object.fromEntries(entries.filter(([, value]) => value !== undefined));
}

/**
 * A context object: a deep copy of `base` with the given fields set.
 *
 * - `user = {id, name, roles}` plus top-level `user_id`, `user_name`, `roles`;
 * - `auth = {token, provider, claims}` plus top-level `auth_token`;
 * - `platform`, `source`, `destination`, `channel`, `locale` at the top level;
 * - `device = {id, platform}` (the device platform defaults to `platform`);
 * - `metadata` merged into the base's metadata (the new keys win);
 * - `session_id` at the top level and in `session.session_id`;
 * - `extra`: any other keys, set as given.
 *
 * Contexts compose: `buildClientContext(buildClientContext({}, { userId: "u" }), { locale: "en-US" })`.
 */
export function buildClientContext(base: JsonObject | null | undefined = {}, options: ClientContextOptions = {}): JsonObject {
  if (base !== null && base !== undefined && !isObject(base)) throw new TypeError("base must be a plain object or null");
  const context: JsonObject = base ? structuredClone(base) : {};
  const roles = options.roles === undefined ? undefined : (typeof options.roles === "string" ? [options.roles] : options.roles).map(String);

  mergeInto(context, "user", defined([["id", options.userId], ["name", options.userName], ["roles", roles]]));
  for (const [key, value] of [["user_id", options.userId], ["user_name", options.userName], ["roles", roles]] as const) {
    if (value !== undefined) context[key] = value;
  }

  const claims = options.authClaims !== undefined ? { ...options.authClaims } : undefined;
  mergeInto(context, "auth", defined([["token", options.authToken], ["provider", options.authProvider], ["claims", claims]]));
  if (options.authToken !== undefined) context.auth_token = options.authToken;

  for (const key of ["platform", "source", "destination", "channel", "locale"] as const) {
    const value = options[key];
    if (value !== undefined) context[key] = value;
  }

  const devicePlatform = options.devicePlatform ?? (options.deviceId !== undefined ? options.platform : undefined);
  mergeInto(context, "device", defined([["id", options.deviceId], ["platform", devicePlatform]]));

  if (options.metadata !== undefined) {
    if (!isObject(options.metadata)) throw new TypeError("metadata must be a plain object");
    mergeInto(context, "metadata", structuredClone(options.metadata));
  }
  if (options.sessionId !== undefined) {
    context.session_id = options.sessionId;
    mergeInto(context, "session", { session_id: options.sessionId });
  }
  for (const [key, value] of Object.entries(options.extra ?? {})) context[key] = structuredClone(value);
  return context;
}
