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

/** A `serve --demo` of a test's own (restart, down), on fixed ports and data folder. */
export class OwnServer {
  readonly folder = tempFolder("thalovant-node-server-");
  readonly password = `own-${Math.random().toString(36).slice(2)}`;
  private child: import("node:child_process").ChildProcess | undefined;

  constructor(
    readonly port: number,
    readonly mqttPort: number,
  ) {}

  get apiUrl(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get caFile(): string {
    return join(this.folder, "data", "ca.pem");
  }

  /** Start and resolve once it prints its API URL. */
  async start(): Promise<void> {
    const { spawn } = await import("node:child_process");
    const [command, ...args] = testbed().server_command as [string, ...string[]];
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("THALOVANT_")));
    const child = spawn(command, [...args, "serve", "--data-dir", join(this.folder, "data"), "--host", "127.0.0.1", "--port", String(this.port), "--mqtt-port", String(this.mqttPort), "--demo"], {
      env: { ...env, THALOVANT_DEMO_PASSWORD: this.password },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    child.stderr?.resume();
    await new Promise<void>((ready, fail) => {
      let seen = "";
      child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
        seen += chunk;
        if (seen.includes("Thalovant API: ")) ready();
      });
      child.once("exit", (code) => fail(new Error(`the server exited (${code}) before it was ready:\n${seen}`)));
    });
    child.stdout?.resume();
  }

  /** SIGTERM, and resolve once it has exited. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGTERM");
    await exited;
  }
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}
