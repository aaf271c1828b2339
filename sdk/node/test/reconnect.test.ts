/**
 * A hub that goes away and comes back (a server of the test's own, restarted on the same ports
 * and data folder): while it is down an ask gives the typed connection error; once it is back the
 * next ask reconnects at once (KK, the pins still good) and is answered.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ThalovantClient, ThalovantConnectionError, ThalovantControlPlane } from "../src/index.js";
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

describe("a hub restart", () => {
  for (const protocol of ["wss", "https", "mqtt"] as const) {
    it(`${protocol}: down gives ThalovantConnectionError, back gives the joke after a KK reconnect`, async () => {
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
        await server.stop();
        await assert.rejects(client.ask("Tell me a short clean joke."), ThalovantConnectionError);
        await server.start();
        assert.equal((await client.ask("Tell me a short clean joke.")).text, JOKE);
        assert.equal(client.connectionInfo().noisePattern, "KKpsk0");
      } finally {
        await client.close();
      }
    });
  }
});
