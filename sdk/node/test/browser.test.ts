/**
 * The browser build asks the joke from a page in headless Chromium (Debian's `chromium`, driven
 * by `playwright-core` with `executablePath`; no browser download).
 *
 * The test serves a page and the bundle on 127.0.0.1; the page gets a fresh identity (made with
 * the control plane by the test, as a web app's backend would) and talks to the hub directly.
 * Chromium trusts the server's development CA through a fresh NSS database of its own: HOME
 * points inside the fresh user data folder, where `certutil` made `.pki/nssdb` with that CA
 * trusted for TLS servers. No certificate check is switched off.
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { type BrowserContext, chromium, type Page } from "playwright-core";

import { PACKAGE_ROOT } from "./helpers/paths.js";
import { newIdentity, tempFolder, testbed } from "./helpers/testbed.js";

const JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable.";
const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const PAGE = `<!doctype html><meta charset="utf-8"><title>Thalovant in a page</title>
<script type="module">
  import * as sdk from "/thalovant-sdk.browser.js";
  window.sdk = sdk;
  document.title = "ready";
</script>`;

/** Serve the page and the bundle on 127.0.0.1. */
function servePage(): Promise<{ server: Server; origin: string }> {
  const bundle = readFileSync(join(PACKAGE_ROOT, "dist", "thalovant-sdk.browser.js"));
  const server = createServer((request, response) => {
    if (request.url === "/") {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(PAGE);
    } else if (request.url === "/thalovant-sdk.browser.js") {
      response.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(bundle);
    } else {
      response.writeHead(404).end();
    }
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve({ server, origin: `http://127.0.0.1:${(server.address() as { port: number }).port}` }));
  });
}

/** A fresh user data folder whose NSS database trusts the server's development CA. */
function profileTrustingDevCa(): { userDataDir: string; home: string } {
  const userDataDir = tempFolder("thalovant-chromium-");
  const home = join(userDataDir, "home");
  const nssdb = join(home, ".pki", "nssdb");
  mkdirSync(nssdb, { recursive: true });
  execFileSync("certutil", ["-d", `sql:${nssdb}`, "-N", "--empty-password"]);
  execFileSync("certutil", ["-d", `sql:${nssdb}`, "-A", "-n", "thalovant-dev-ca", "-t", "C,,", "-i", testbed().demo.ca_file]);
  return { userDataDir, home };
}

interface PageResult {
  ok: boolean;
  text?: string;
  patterns?: (string | undefined)[];
  error?: string;
  errorName?: string;
  workers?: number;
}

describe("the browser build in headless Chromium", () => {
  let context: BrowserContext;
  let page: Page;
  let server: Server;

  before(async () => {
    const served = await servePage();
    server = served.server;
    const { userDataDir, home } = profileTrustingDevCa();
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      env: { ...process.env, HOME: home },
    });
    page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${served.origin}/`);
    await page.waitForFunction(() => document.title === "ready");
  });

  after(async () => {
    await context?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  it("asks the joke over WSS from a page: XX (argon2id started in a Web Worker), then KK with the Noise state in localStorage", async () => {
    const { identity } = await newIdentity("node-browser-wss");
    const result = (await page.evaluate(async (identityJson) => {
      const sdk = (window as unknown as { sdk: typeof import("../src/browser.js") }).sdk;
      let workers = 0;
      const PageWorker = window.Worker;
      window.Worker = class extends PageWorker {
        constructor(url: string | URL, options?: WorkerOptions) {
          super(url, options);
          workers += 1;
        }
      };
      try {
        const identity = sdk.ThalovantIdentity.fromMapping(identityJson);
        const patterns: (string | undefined)[] = [];
        let text = "";
        for (let i = 0; i < 2; i++) {
          const client = new sdk.ThalovantClient(identity, { protocol: "wss", noiseStore: new sdk.LocalStorageNoiseStore() });
          try {
            const reply = await client.ask("Tell me a short clean joke.");
            patterns.push(client.connectionInfo().noisePattern);
            text = reply.text;
          } finally {
            await client.close();
          }
        }
        return { ok: true, text, patterns, workers };
      } catch (error) {
        return { ok: false, error: String(error), errorName: (error as Error).name };
      } finally {
        window.Worker = PageWorker;
      }
    }, identity.asDict(true))) as PageResult;
    assert.ok(result.ok, result.error);
    assert.equal(result.text, JOKE);
    assert.deepEqual(result.patterns, ["XXpsk2", "KKpsk0"]);
    assert.equal(result.workers, 1, "the first contact started one PSK worker; the KK reconnect derived nothing");
  });

  it("asks the joke over HTTPS polling from a page (the hub answers CORS): XX, then KK", async () => {
    const { identity } = await newIdentity("node-browser-https");
    const result = (await page.evaluate(async (identityJson) => {
      const sdk = (window as unknown as { sdk: typeof import("../src/browser.js") }).sdk;
      try {
        const identity = sdk.ThalovantIdentity.fromMapping(identityJson);
        const patterns: (string | undefined)[] = [];
        let text = "";
        for (let i = 0; i < 2; i++) {
          const client = new sdk.ThalovantClient(identity, { protocol: "https", noiseStore: new sdk.LocalStorageNoiseStore({ prefix: "https-test/" }) });
          try {
            text = (await client.ask("Tell me a short clean joke.")).text;
            patterns.push(client.connectionInfo().noisePattern);
          } finally {
            await client.close();
          }
        }
        return { ok: true, text, patterns };
      } catch (error) {
        return { ok: false, error: String(error), errorName: (error as Error).name };
      }
    }, identity.asDict(true))) as PageResult;
    assert.ok(result.ok, result.error);
    assert.equal(result.text, JOKE);
    assert.deepEqual(result.patterns, ["XXpsk2", "KKpsk0"]);
  });

  it("reads the public hubs of the control plane from a page, and a wrong password is a typed ThalovantAuthError", async () => {
    const bed = testbed();
    const result = (await page.evaluate(
      async ({ apiUrl, email, slug }) => {
        const sdk = (window as unknown as { sdk: typeof import("../src/browser.js") }).sdk;
        const api = new sdk.ThalovantControlPlane({ apiUrl });
        const hub = await api.getPublicHub(slug);
        const listed = (await api.listPublicHubs({ limit: 12 })).data.some((item) => item.slug === slug);
        let refusal = "";
        try {
          await api.login(email, "not-the-password");
        } catch (error) {
          refusal = (error as Error).name;
        }
        return { title: hub.title, publicRef: hub.publicRef, listed, refusal };
      },
      { apiUrl: bed.demo.api_url, email: bed.demo.email, slug: bed.demo.hub_slug },
    )) as { title: string; publicRef: string; listed: boolean; refusal: string };
    assert.equal(result.title, "Joke Garden");
    assert.match(result.publicRef, /^hub_\w+$/);
    assert.equal(result.listed, true);
    assert.equal(result.refusal, "ThalovantAuthError");
  });
});
