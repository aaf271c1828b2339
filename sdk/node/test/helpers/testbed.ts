/**
 * The live platform the integration tests talk to: `python -m peers testbed [--hm5] -- CMD`
 * starts `thalovant-server serve --demo` (and hivemind-core) and names them in the JSON file
 * `THALOVANT_TESTBED`. Without it these tests fail, loudly: they never skip.
 */

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";

import { ThalovantControlPlane, ThalovantIdentity } from "../../src/index.js";

export interface Testbed {
  python: string;
  server_command: string[];
  ca_bundle: string;
  demo: { api_url: string; ca_file: string; data_dir: string; email: string; password: string; hub_slug: string; mqtt_port: number };
  hm5: { identity_file: string; ca_file: string } | null;
}

let loaded: Testbed | undefined;

/** The testbed description; throws when the suite runs outside `python -m peers testbed`. */
export function testbed(): Testbed {
  if (loaded === undefined) {
    const file = process.env.THALOVANT_TESTBED;
    if (!file) {
      throw new Error(
        "THALOVANT_TESTBED is not set: run the suite through `.venv/bin/python -m peers testbed --hm5 -- sdk/node/scripts/test`.",
      );
    }
    loaded = JSON.parse(readFileSync(file, "utf8")) as Testbed;
  }
  return loaded;
}

const folders: string[] = [];
after(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});

/** A fresh private folder, removed when the test file ends. */
export function tempFolder(prefix = "thalovant-node-test-"): string {
  const folder = mkdtempSync(join(tmpdir(), prefix));
  folders.push(folder);
  return folder;
}

/** A control-plane client signed in as the demo user (close it when done). */
export async function signedIn(): Promise<ThalovantControlPlane> {
  const bed = testbed();
  const api = new ThalovantControlPlane({ apiUrl: bed.demo.api_url });
  await api.login(bed.demo.email, bed.demo.password);
  return api;
}

/** A new client identity of the demo hub, saved 0600 as `identity.json` in a fresh folder. */
export async function newIdentity(name: string): Promise<{ identity: ThalovantIdentity; file: string; folder: string; clientId: string }> {
  const api = await signedIn();
  try {
    const hub = await api.getPublicHub(testbed().demo.hub_slug);
    const result = await api.createClientIdentity(hub.id, { name: `${name}-${Date.now().toString(36)}`, preferredProtocols: ["wss", "https", "mqtt"] });
    const folder = tempFolder();
    const file = join(folder, "identity.json");
    await result.identity.save(file);
    return { identity: result.identity, file, folder, clientId: result.clientId as string };
  } finally {
    await api.close();
  }
}

/** Fail the current test file on any unhandled rejection (the SDK must never leave one). */
export function refuseUnhandledRejections(): () => void {
  const seen: unknown[] = [];
  const listener = (reason: unknown): void => {
    seen.push(reason);
  };
  process.on("unhandledRejection", listener);
  return () => {
    process.off("unhandledRejection", listener);
    if (seen.length > 0) throw new Error(`unhandled rejection(s): ${seen.map(String).join("; ")}`);
  };
}
