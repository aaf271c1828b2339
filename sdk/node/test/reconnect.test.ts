/**
 * A hub that goes away and comes back (a server of the test's own, restarted on the same ports
 * and data folder): while it is down an ask gives the typed connection error; once it is back the
 * next ask reconnects at once (KK, the pins still good) and is answered. Over WSS the client is
 * left alone once the hub is back: it comes back by itself, on the failure policy's schedule.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ThalovantClient, ThalovantConnectionError, ThalovantControlPlane } from "../src/index.js";
import { setLogger } from "../src/runtime/log.js";
import { freePort, OwnServer, refuseUnhandledRejections, tempFolder } from "./helpers/testbed.js";

const JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable.";
const checkRejections = refuseUnhandledRejections();
let server: OwnServer;
const savedCertFile = process.env.SSL_CERT_FILE;

before(async () => {
  server = new OwnServer(await freePort(), await freePort());
  await server.start();
  process.env.SSL_CERT_FILE = server.caFile; // trust this server's development CA too
});

after(async () => {
  await server?.stop();
  if (savedCertFile === undefined) delete process.env.SSL_CERT_FILE;
  else process.env.SSL_CERT_FILE = savedCertFile;
  checkRejections();
});

/** Resolves when a client's reconnect loop (not an ask) has brought its link back. */
function reconnectedByItself(): Promise<void> {
  return new Promise<void>((resolve) => {
    setLogger({
      info: (message) => {
        if (message === "Reconnected to the hub.") resolve();
      },
      warn: () => undefined,
      error: () => undefined,
    });
  });
}

function restoreLogger(): void {
  setLogger({ info: () => undefined, warn: (message) => console.warn(`thalovant: ${message}`), error: (message) => console.error(`thalovant: ${message}`) });
}

describe("a hub restart", () => {
  for (const protocol of ["wss", "https", "mqtt"] as const) {
    const alone = protocol === "wss";
    const back = alone ? "comes back by itself" : "gives the joke after a KK reconnect";
    // the timeout only keeps a broken reconnect loop from hanging the suite
    it(`${protocol}: down gives ThalovantConnectionError, back ${back}`, { timeout: 60_000 }, async () => {
      const api = new ThalovantControlPlane({ apiUrl: server.apiUrl });
      const file = join(tempFolder(), "identity.json");
      try {
        await api.login("demo@example.com", server.password);
        const hub = await api.getPublicHub("joke-garden");
        await (await api.createClientIdentity(hub.id, { name: `node-restart-${protocol}` })).identity.save(file);
      } finally {
        await api.close();
      }
      const client = await ThalovantClient.fromIdentityFile(file, { protocol, connectTimeoutMs: 3000 });
      try {
        assert.equal((await client.ask("Tell me a short clean joke.")).text, JOKE);
        assert.equal(client.connectionInfo().noisePattern, "XXpsk2");
        const reconnected = alone ? reconnectedByItself() : undefined;
        await server.stop();
        await assert.rejects(client.ask("Tell me a short clean joke."), ThalovantConnectionError);
        await server.start();
        if (reconnected !== undefined) {
          await reconnected;
          assert.equal(client.connected, true);
          assert.equal(client.connectionInfo().reconnects, 1);
        }
        assert.equal((await client.ask("Tell me a short clean joke.")).text, JOKE);
        assert.equal(client.connectionInfo().noisePattern, "KKpsk0");
      } finally {
        if (alone) restoreLogger();
        await client.close();
      }
    });
  }
});
