/**
 * `doctor()`: step-by-step diagnostics of a client's identity and link (spec 9).
 *
 * Checks, in order, each stopping the later ones only when they cannot run:
 *
 * 1. `identity`: the identity has a site id, an access key and a password;
 * 2. `endpoint`: the chosen protocol and the endpoint it dials;
 * 3. `tls`: the hub certificate verifies against the trust store in force (skipped for ws://);
 * 4. `handshake`: a full connect (carrier, Noise handshake, encrypted HELLO);
 * 5. `round trip`: the link is alive after connect plus a healthcheck, with their time.
 */

import type { ThalovantClient } from "../client.js";
import { ThalovantError } from "../errors.js";
import { type ThalovantDoctorCheck, ThalovantDoctorReport } from "../models.js";
import { platform } from "../platform/current.js";

function check(name: string, ok: boolean, detail: string): ThalovantDoctorCheck {
  return { name, ok, detail };
}

/** Run the checks and return the report (never throws for a failed check). */
export async function runDoctor(client: ThalovantClient, endpointOf: () => string): Promise<ThalovantDoctorReport> {
  const identity = client.identity;
  const checks: ThalovantDoctorCheck[] = [];
  const missing = (["siteId", "accessKey", "password"] as const).filter((name) => !identity[name]);
  checks.push(missing.length > 0 ? check("identity", false, `missing ${missing.join(", ")}`) : check("identity", true, `site_id=${identity.siteId}`));

  let endpoint: string | undefined;
  try {
    endpoint = endpointOf();
    const master = identity.defaultMaster;
    const note = master && !/^https?:\/\//i.test(master) ? ` (note: default_master ${master} is not http(s)://)` : "";
    checks.push(check("endpoint", true, `${client.protocol} ${endpoint}${note}`));
  } catch (error) {
    checks.push(check("endpoint", false, `${client.protocol}: ${error instanceof Error ? error.message : String(error)}`));
  }

  if (endpoint !== undefined) {
    const scheme = (/^([a-z]+):/i.exec(endpoint)?.[1] ?? "").toLowerCase();
    if (scheme === "wss" || scheme === "https" || scheme === "mqtts") {
      const tlsCheck = platform().tlsCheck;
      if (client.selfSigned) {
        checks.push(check("tls", true, "certificate verification is OFF (selfSigned: true, development only)"));
      } else if (tlsCheck !== undefined) {
        const result = await tlsCheck(endpoint, client.connectTimeoutMs, true);
        checks.push(check("tls", result.ok, result.detail));
      } else {
        checks.push(check("tls", true, "checked by the browser when the connection opens"));
      }
    } else {
      checks.push(check("tls", true, `not used: ${scheme}:// is plain text`));
    }
  }

  if (!checks.every((c) => c.ok)) {
    checks.push(check("handshake", false, "skipped: fix the checks above first"));
    return new ThalovantDoctorReport(checks);
  }

  const started = performance.now();
  try {
    await client.connect();
  } catch (error) {
    if (!(error instanceof ThalovantError)) throw error;
    checks.push(check("handshake", false, `${error.name}: ${error.message}`));
    checks.push(check("round trip", false, "skipped: not connected"));
    return new ThalovantDoctorReport(checks);
  }
  const info = client.connectionInfo();
  const connectMs = info.connectMs ?? performance.now() - started;
  checks.push(check("handshake", true, `Noise ${info.noisePattern ?? "?"} in ${connectMs.toFixed(0)} ms (session ${info.sessionId ?? "?"})`));
  const health = await client.healthcheck();
  const totalMs = performance.now() - started;
  checks.push(
    health.ok
      ? check("round trip", true, `link alive; connect + healthcheck ${totalMs.toFixed(0)} ms`)
      : check("round trip", false, `link not healthy: ${health.lastError ?? "transport down"}`),
  );
  return new ThalovantDoctorReport(checks);
}
