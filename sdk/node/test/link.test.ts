/**
 * The Node.js SDK against the testbed's `serve --demo` on every carrier: XX first, KK on
 * reconnect; one identity file and its Noise state shared with the Python SDK; and the typed
 * error of each bad input (tampered hub key, wrong password, revoked identity, missing token,
 * server down), never an unhandled rejection.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { after, describe, it } from "node:test";

import {
  MemoryNoiseStore,
  ThalovantAPIError,
  ThalovantAPIUnreachableError,
  ThalovantClient,
  ThalovantConnectionError,
  ThalovantControlPlane,
  ThalovantHubKeyChangedError,
  ThalovantHubRefusedError,
  ThalovantIdentity,
} from "../src/index.js";
import { httpsPinId, wssPinId } from "../src/noise-store.js";
import { refuseUnhandledRejections, newIdentity, signedIn, testbed } from "./helpers/testbed.js";

const PROTOCOLS = ["wss", "https", "mqtt"] as const;
const JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable.";
const checkRejections = refuseUnhandledRejections();
after(checkRejections);

async function connectedPattern(client: ThalovantClient): Promise<string | undefined> {
  try {
    await client.connect();
    return client.connectionInfo().noisePattern;
  } finally {
    await client.close();
  }
}

/** Run a snippet with the repository's Python SDK (the testbed's interpreter); its stdout. */
function python(code: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(testbed().python, ["-c", code, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`python exited ${code}: ${err}`))));
  });
}

const PYTHON_ASK = `
import sys
from thalovant import ThalovantClient
with ThalovantClient.from_identity_file(sys.argv[1], protocol=sys.argv[2]) as client:
    reply = client.ask("Tell me a short clean joke.")
    print(client.connection_info().noise_pattern)
    print(reply.text)
`;

/** The hub node id a store's PSK cache holds a derivation for (entries are `<key hash>@<node id>`). */
async function cachedNodeId(store: MemoryNoiseStore): Promise<string> {
  const text = await store.files.read(`${await store.name()}_noise_psks.json`);
  const [entry] = Object.keys(JSON.parse(text ?? "{}") as Record<string, string>);
  assert.ok(entry, "the first connect cached its PSK");
  return entry.slice(entry.indexOf("@") + 1);
}

/** A TCP port on 127.0.0.1 with nothing listening. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

for (const protocol of PROTOCOLS) {
  describe(`${protocol}: handshakes`, () => {
    it("XX on first contact, then KK on reconnect", async () => {
      const { file } = await newIdentity(`node-kk-${protocol}`);
      assert.equal(await connectedPattern(await ThalovantClient.fromIdentityFile(file, { protocol })), "XXpsk2");
      const again = await ThalovantClient.fromIdentityFile(file, { protocol });
      try {
        await again.connect();
        assert.equal(again.connectionInfo().noisePattern, "KKpsk0");
        assert.equal((await again.ask("Tell me a short clean joke.")).text, JOKE);
      } finally {
        await again.close();
      }
    });

    it("a stale PSK in the cache: KK fails, the same connect retries at once with XX and succeeds", async () => {
      const { identity } = await newIdentity(`node-stale-${protocol}`);
      const store = new MemoryNoiseStore();
      const first = new ThalovantClient(identity, { protocol, noiseStore: store });
      assert.equal(await connectedPattern(first), "XXpsk2");
      const nodeId = await cachedNodeId(store);
      await store.storePsk(identity.accessKey, nodeId, new Uint8Array(32).fill(7));
      const again = new ThalovantClient(identity, { protocol, noiseStore: store });
      try {
        await again.connect();
        const info = again.connectionInfo();
        assert.equal(info.noisePattern, "XXpsk2");
        assert.equal(info.attempts, 2);
        assert.notDeepEqual(await store.cachedPsk(identity.accessKey, nodeId), new Uint8Array(32).fill(7));
        assert.equal((await again.ask("Tell me a short clean joke.")).text, JOKE);
      } finally {
        await again.close();
      }
    });

    it("one identity file and its Noise state, Python first then Node.js then Python: KK, no pin conflict", async () => {
      const { file } = await newIdentity(`node-python-${protocol}`);
      assert.deepEqual((await python(PYTHON_ASK, [file, protocol])).split("\n"), ["XXpsk2", JOKE]);
      const client = await ThalovantClient.fromIdentityFile(file, { protocol });
      try {
        await client.connect();
        assert.equal(client.connectionInfo().noisePattern, "KKpsk0");
        assert.equal((await client.ask("Tell me a short clean joke.")).text, JOKE);
      } finally {
        await client.close();
      }
      assert.deepEqual((await python(PYTHON_ASK, [file, protocol])).split("\n"), ["KKpsk0", JOKE]);
    });

    it("one identity file and its Noise state, Node.js first then Python: KK", async () => {
      const { file } = await newIdentity(`node-first-${protocol}`);
      assert.equal(await connectedPattern(await ThalovantClient.fromIdentityFile(file, { protocol })), "XXpsk2");
      assert.deepEqual((await python(PYTHON_ASK, [file, protocol])).split("\n"), ["KKpsk0", JOKE]);
    });
  });

  describe(`${protocol}: bad input gives the typed error`, () => {
    it("a tampered hub key: ThalovantHubKeyChangedError", async () => {
      const { identity } = await newIdentity(`node-tamper-${protocol}`);
      const store = new MemoryNoiseStore();
      const client = new ThalovantClient(identity, { protocol, noiseStore: store });
      assert.equal(await connectedPattern(client), "XXpsk2");
      const pinId = protocol === "wss" ? wssPinId(identity.endpointFor("wss") as string) : httpsPinId(identity.endpointBase());
      assert.ok(await store.hubPin(pinId));
      await store.removePin(pinId);
      await store.pinHub(pinId, crypto.getRandomValues(new Uint8Array(32)));
      const again = new ThalovantClient(identity, { protocol, noiseStore: store, autoReconnect: false });
      await assert.rejects(again.connect(), ThalovantHubKeyChangedError);
      await again.close();
    });

    it("a wrong password: ThalovantHubRefusedError", async () => {
      const { identity } = await newIdentity(`node-wrongpw-${protocol}`);
      const wrong = ThalovantIdentity.fromMapping({ ...identity.asDict(true), password: "not-the-password" });
      const client = new ThalovantClient(wrong, { protocol, noiseStore: new MemoryNoiseStore(), autoReconnect: false });
      await assert.rejects(client.connect(), ThalovantHubRefusedError);
      await client.close();
    });

    it("a revoked identity: refused (on MQTT the broker refuses the account: a connection error)", async () => {
      const { identity, clientId } = await newIdentity(`node-revoked-${protocol}`);
      const store = new MemoryNoiseStore();
      assert.equal(await connectedPattern(new ThalovantClient(identity, { protocol, noiseStore: store })), "XXpsk2");
      const api = await signedIn();
      try {
        await api.deleteClient(clientId);
      } finally {
        await api.close();
      }
      const client = new ThalovantClient(identity, { protocol, noiseStore: store, autoReconnect: false, connectTimeoutMs: 4000 });
      await assert.rejects(client.connect(), protocol === "mqtt" ? ThalovantConnectionError : ThalovantHubRefusedError);
      await client.close();
    });

    it("a server that is down: ThalovantConnectionError", async () => {
      const { identity } = await newIdentity(`node-down-${protocol}`);
      const port = await closedPort();
      const data = identity.asDict(true) as Record<string, unknown>;
      const endpoints = data.data_plane_endpoints as Record<string, string>;
      const moved = Object.fromEntries(Object.entries(endpoints).map(([key, url]) => [key, url.replace(/:\d+(?=\/|$)/, `:${port}`)]));
      const mqtt = { ...(data.mqtt as Record<string, unknown>), endpoint: moved.mqtt };
      const down = ThalovantIdentity.fromMapping({ ...data, data_plane_endpoints: moved, mqtt });
      const client = new ThalovantClient(down, { protocol, noiseStore: new MemoryNoiseStore(), autoReconnect: false });
      await assert.rejects(client.connect(), ThalovantConnectionError);
      const health = await client.healthcheck();
      assert.equal(health.ok, false);
      assert.match(health.lastError ?? "", /ThalovantConnectionError/);
      await client.close();
    });
  });
}

describe("control plane: bad input gives the typed error", () => {
  it("a missing token: ThalovantAPIError before any request", async () => {
    const api = new ThalovantControlPlane({ apiUrl: testbed().demo.api_url, accessToken: "" });
    const saved = process.env.THALOVANT_API_TOKEN;
    delete process.env.THALOVANT_API_TOKEN;
    try {
      await assert.rejects(api.createClientIdentity("hub-id", { name: "no-token" }), (error: unknown) => {
        assert.ok(error instanceof ThalovantAPIError);
        assert.match(error.message, /^Missing Thalovant API access token/);
        assert.equal(error.statusCode, undefined);
        return true;
      });
      await assert.rejects(api.listHubs({ limit: 25 }), /Missing Thalovant API access token/);
    } finally {
      if (saved !== undefined) process.env.THALOVANT_API_TOKEN = saved;
      await api.close();
    }
  });

  it("a wrong password: ThalovantAuthError with the server's sentence", async () => {
    const api = new ThalovantControlPlane({ apiUrl: testbed().demo.api_url });
    await assert.rejects(api.login(testbed().demo.email, "wrong-password"), (error: unknown) => {
      assert.ok(error instanceof ThalovantAPIError);
      assert.equal(error.name, "ThalovantAuthError");
      assert.equal(error.statusCode, 401);
      assert.ok(!error.message.includes("wrong-password"));
      return true;
    });
    await api.close();
  });

  it("a server that is down: ThalovantAPIUnreachableError, which is a ThalovantConnectionError", async () => {
    const api = new ThalovantControlPlane({ apiUrl: `https://127.0.0.1:${await closedPort()}` });
    await assert.rejects(api.listPublicHubs(), (error: unknown) => {
      assert.ok(error instanceof ThalovantAPIUnreachableError);
      assert.ok(error instanceof ThalovantConnectionError);
      assert.ok(error instanceof ThalovantAPIError);
      return true;
    });
    await api.close();
  });

  it("an unknown hub: a plain ThalovantAPIError 404 with the detail", async () => {
    const api = await signedIn();
    try {
      await assert.rejects(api.getHub("no-such-hub"), (error: unknown) => {
        assert.ok(error instanceof ThalovantAPIError);
        assert.equal(error.statusCode, 404);
        assert.equal(error.detail, "Hub not found");
        return true;
      });
    } finally {
      await api.close();
    }
  });
});
