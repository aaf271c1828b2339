/**
 * The SDK's errors.
 *
 * Every error the SDK throws on purpose is a {@link ThalovantError}. The class names are those of
 * the Python SDK, so handling code ports unchanged; each message says what happened and what to
 * do next. Messages never carry secrets: control-plane errors show only the server's sentence
 * and code, never echoed request values, which stay reachable in {@link ThalovantAPIError.problem}.
 *
 *     ThalovantError
 *     +-- ThalovantIdentityError
 *     +-- ThalovantUnsupportedProtocolError
 *     +-- ThalovantConnectionError
 *     |   +-- ThalovantHubRefusedError
 *     |   |   +-- ThalovantClientKeyRejectedError
 *     |   +-- ThalovantHubKeyChangedError
 *     |   +-- (ThalovantAPIUnreachableError: `instanceof` both)
 *     +-- ThalovantTimeoutError
 *     +-- ThalovantRuntimeError
 *     |   +-- ThalovantPolicyDeniedError
 *     |   +-- ThalovantUnansweredError
 *     +-- ThalovantAPIError
 *         +-- ThalovantAPIUnreachableError
 *         +-- ThalovantAuthError
 *         +-- ThalovantPlanError
 *         +-- ThalovantAlreadyLinkedError
 *         +-- ThalovantUnsupportedConnectionTypeError
 */

import { isObject, type JsonObject } from "./protocol/bytes.js";

/** Root of every error the SDK throws on purpose. */
export class ThalovantError extends Error {
  override name = "ThalovantError";
}

/** Identity material is missing, malformed, or stored unsafely (fix the file, profile or variables). */
export class ThalovantIdentityError extends ThalovantError {
  override name = "ThalovantIdentityError";
}

/** The requested carrier cannot be used with this identity (no endpoint or credentials). */
export class ThalovantUnsupportedProtocolError extends ThalovantError {
  override name = "ThalovantUnsupportedProtocolError";
}

/** The hub (or the API) could not be reached, or the link broke. */
export class ThalovantConnectionError extends ThalovantError {
  override name = "ThalovantConnectionError";

  /** An unreachable API is a connection error too, as in the Python SDK. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    return this === ThalovantConnectionError && value instanceof ThalovantAPIUnreachableError;
  }
}

/**
 * The hub refused this client: unknown or not-yet-admitted access key, wrong password, or a
 * revoked identity. Check the identity, or create a new one on the control plane.
 */
export class ThalovantHubRefusedError extends ThalovantConnectionError {
  override name = "ThalovantHubRefusedError";
}

/**
 * The hub accepted the handshake but refused this client's Noise key: it has another key pinned
 * for this access key. `keyFolder` is where this client's key lives, when it lives in a folder.
 */
export class ThalovantClientKeyRejectedError extends ThalovantHubRefusedError {
  override name = "ThalovantClientKeyRejectedError";
  keyFolder: string | undefined;
  otherKeyFolder: string | undefined;
}

/** The hub's static Noise key differs from the pinned one. Never cleared automatically. */
export class ThalovantHubKeyChangedError extends ThalovantConnectionError {
  override name = "ThalovantHubKeyChangedError";
}

/** Something did not happen in time (handshake, reply, event, local wait). */
export class ThalovantTimeoutError extends ThalovantError {
  override name = "ThalovantTimeoutError";
}

/** The hub answered a request with a failure event. */
export class ThalovantRuntimeError extends ThalovantError {
  override name = "ThalovantRuntimeError";
}

/** The hub did not understand the request and nothing answered it; `said` is what it heard. */
export class ThalovantUnansweredError extends ThalovantRuntimeError {
  override name = "ThalovantUnansweredError";
  said: string | undefined;
}

/** The quota part of a policy denial. */
export interface PolicyQuota {
  period: string | undefined;
  limit: number;
  used: number;
  resetAfter: unknown;
}

/** What a `hive.policy.denied` event carries (in `data` and `data.data`). */
export interface PolicyDenial {
  deniedType?: string | undefined;
  code?: string | undefined;
  reason?: string | undefined;
  allowed?: string[] | undefined;
  quota?: PolicyQuota | undefined;
  event?: unknown;
}

function textOrUndefined(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
}

/** Quota counts are whole numbers in 0..2**53-1; anything else reads as 0. */
function wholeNumber(value: unknown): number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : 0;
}

/**
 * The hub's policy refused the message (`hive.policy.denied`): a type this identity may not send
 * (`allowed` lists what it may), or a quota (`quota`) that is used up.
 */
export class ThalovantPolicyDeniedError extends ThalovantRuntimeError {
  override name = "ThalovantPolicyDeniedError";
  readonly deniedType: string | undefined;
  readonly code: string | undefined;
  readonly reason: string | undefined;
  readonly allowed: string[] | undefined;
  readonly quota: PolicyQuota | undefined;
  readonly event: unknown;

  constructor(message: string, denial: PolicyDenial = {}) {
    super(message);
    this.deniedType = denial.deniedType;
    this.code = denial.code;
    this.reason = denial.reason;
    this.allowed = denial.allowed;
    this.quota = denial.quota;
    this.event = denial.event;
  }

  /** Read a `hive.policy.denied` event's data (fields in `data` and `data.data`). */
  static fromEventData(data: JsonObject, event?: unknown): ThalovantPolicyDeniedError {
    const inner = isObject(data.data) ? data.data : {};
    const pick = (key: string): unknown => data[key] ?? inner[key];
    const deniedType = textOrUndefined(pick("denied_type"));
    const code = textOrUndefined(pick("code"));
    const reason = textOrUndefined(pick("reason"));
    const rawAllowed = pick("allowed");
    const allowed = Array.isArray(rawAllowed) ? rawAllowed.map((item) => String(item)) : undefined;
    let quota: PolicyQuota | undefined;
    if ("limit" in inner || "used" in inner || "period" in inner) {
      quota = {
        period: textOrUndefined(inner.period),
        limit: wholeNumber(inner.limit),
        used: wholeNumber(inner.used),
        resetAfter: inner.reset_after,
      };
    }
    let message = `The hub's policy refused this ${deniedType ?? "message"}`;
    if (reason) message += `: ${reason}`;
    if (code) message += ` (${code})`;
    if (allowed !== undefined) message += `. Allowed types: ${allowed.join(", ") || "none"}`;
    message += ". Ask the hub's owner to change the identity's permissions or plan.";
    return new ThalovantPolicyDeniedError(message, { deniedType, code, reason, allowed, quota, event });
  }
}

// ---------------------------------------------------------------------------- control plane

const CODE_PATTERN = /^[A-Za-z0-9_.:-]{1,80}$/;
const SENTENCE_LIMIT = 200;

/** The typed fields of a control-plane error. */
export interface APIErrorFields {
  statusCode?: number | undefined;
  code?: string | undefined;
  detail?: string | undefined;
  problem?: JsonObject | undefined;
  retryAfterSeconds?: number | undefined;
}

/**
 * A control-plane request failed, or its answer was unusable. `statusCode` is the HTTP status
 * (undefined for a local refusal or an unusable answer); `problem` the whole error body when it
 * was a JSON object; `code` and `detail` as controlplane.md 12.2 reads them; `retryAfterSeconds`
 * for 429 answers.
 */
export class ThalovantAPIError extends ThalovantError {
  override name = "ThalovantAPIError";
  readonly statusCode: number | undefined;
  readonly code: string | undefined;
  readonly detail: string | undefined;
  readonly problem: JsonObject | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(message: string, fields: APIErrorFields = {}) {
    super(message);
    this.statusCode = fields.statusCode;
    this.code = fields.code;
    this.detail = fields.detail;
    this.problem = fields.problem;
    this.retryAfterSeconds = fields.retryAfterSeconds;
  }

  /** Alias of {@link statusCode}. */
  get status(): number | undefined {
    return this.statusCode;
  }
}

/**
 * The API could not be reached (DNS, TCP, TLS, proxy or timeout). Check the API URL, the
 * network, and the CA bundle (`NODE_EXTRA_CA_CERTS` or `SSL_CERT_FILE`) for a private server.
 */
export class ThalovantAPIUnreachableError extends ThalovantAPIError {
  override name = "ThalovantAPIUnreachableError";

  constructor(message = "Could not reach the Thalovant API.") {
    super(message);
  }
}

/** Not signed in, wrong credentials, a locked account, or a token without the scope. */
export class ThalovantAuthError extends ThalovantAPIError {
  override name = "ThalovantAuthError";
}

/** The account's plan does not allow this (402, or 403 `plan_limit`). */
export class ThalovantPlanError extends ThalovantAPIError {
  override name = "ThalovantPlanError";
}

/** The hub already has a connection of this single-instance kind; `clientId` names it. */
export class ThalovantAlreadyLinkedError extends ThalovantAPIError {
  override name = "ThalovantAlreadyLinkedError";
  clientId: string | undefined;
}

/** The API does not support the requested `connection_type`. */
export class ThalovantUnsupportedConnectionTypeError extends ThalovantAPIError {
  override name = "ThalovantUnsupportedConnectionTypeError";
}

function sentence(problem: JsonObject | undefined): string | undefined {
  if (problem === undefined) return undefined;
  for (const key of ["detail", "message", "error"]) {
    const value = problem[key];
    if (typeof value === "string" && value.trim() !== "") {
      let text = value.trim().split(/\s+/).join(" ");
      if (text.length > SENTENCE_LIMIT) text = `${text.slice(0, SENTENCE_LIMIT)}...`;
      return text;
    }
  }
  return undefined;
}

/** The top-level string `key` if non-blank, else the one inside an object `detail`. */
function readMember(problem: JsonObject | undefined, key: string): string | undefined {
  if (problem === undefined) return undefined;
  const value = problem[key];
  if (typeof value === "string" && value.trim() !== "") return value;
  const nested = problem.detail;
  if (isObject(nested)) {
    const inner = nested[key];
    if (typeof inner === "string" && inner.trim() !== "") return inner;
  }
  return undefined;
}

function retryAfter(problem: JsonObject | undefined, headers: Record<string, string> | undefined): number | undefined {
  const number = (value: unknown): number | undefined =>
    typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
  if (problem !== undefined) {
    const found = number(problem.retry_after_seconds) ?? (isObject(problem.detail) ? number(problem.detail.retry_after_seconds) : undefined);
    if (found !== undefined) return found;
  }
  if (headers !== undefined) {
    const lowered = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)]));
    for (const name of ["retry-after", "ratelimit-reset"]) {
      const raw = (lowered.get(name) ?? "").trim();
      if (/^\d+$/.test(raw)) return Number(raw);
    }
  }
  return undefined;
}

/** The display message of controlplane.md 12.3: only the sentence and a well-formed code. */
export function displayMessage(status: number | undefined, problem: JsonObject | undefined): string {
  const text = sentence(problem);
  const code = problem?.code;
  const suffix = typeof code === "string" && CODE_PATTERN.test(code) && code !== text ? `(${code})` : "";
  const prefix = `Thalovant API request failed with HTTP ${status}`;
  if (text && suffix) return `${prefix}: ${text} ${suffix}`;
  if (text) return `${prefix}: ${text}`;
  if (suffix) return `${prefix}: ${suffix}`;
  return `${prefix}.`;
}

/** The body parsed, exactly when it is a JSON object. */
export function parseProblem(body: string | undefined): JsonObject | undefined {
  if (body === undefined || body.trim() === "") return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    return isObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function linkedClientId(problem: JsonObject): string | undefined {
  const places = [problem, ...(isObject(problem.detail) ? [problem.detail] : [])];
  for (const place of places) {
    for (const key of ["client_id", "existing_client_id", "connection_id"]) {
      const value = place[key];
      if (typeof value === "string" && value !== "") return value;
    }
  }
  return undefined;
}

/** The typed error for a non-2xx answer (controlplane.md 12.2-12.5). */
export function apiErrorFromResponse(status: number, body: string | undefined, headers?: Record<string, string>): ThalovantAPIError {
  const problem = parseProblem(body);
  const code = readMember(problem, "code");
  const detail = readMember(problem, "detail");
  let message = displayMessage(status, problem);
  let make = (text: string, fields: APIErrorFields): ThalovantAPIError => new ThalovantAPIError(text, fields);
  if (status === 401 || status === 423 || (status === 403 && detail === "Insufficient scopes")) {
    make = (text, fields) => new ThalovantAuthError(text, fields);
    if (status === 423) message += " The account is locked; wait, or ask an administrator to unlock it.";
    else if (status === 401) message += " Sign in again with login(email, password) or pass a valid accessToken.";
    else message += " Use a token with the scope this call needs.";
  } else if (status === 402 || (status === 403 && code === "plan_limit")) {
    make = (text, fields) => new ThalovantPlanError(text, fields);
  } else if (status === 409 && code === "home_assistant_already_linked") {
    make = (text, fields) => {
      const error = new ThalovantAlreadyLinkedError(text, fields);
      error.clientId = problem !== undefined ? linkedClientId(problem) : undefined;
      return error;
    };
  } else if (status >= 300 && status < 400) {
    message += " Thalovant API redirected the request; redirects are disabled.";
  }
  return make(message, { statusCode: status, code, detail, problem, retryAfterSeconds: retryAfter(problem, headers) });
}
