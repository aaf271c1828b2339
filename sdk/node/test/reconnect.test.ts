/**
 * A hub that goes away and comes back (a server of the test's own, restarted on the same ports
 * and data folder), once per carrier, under a connected client with auto-reconnect:
 *
 * - while it is down, a waiting ask and a waiting send give up at their own short timeout with a
 *   ThalovantConnectionError that says the link was not back;
 * - an ask made while it is down waits for the link and is answered once the client's reconnect
 *   loop has brought the link back by itself (KK, the pins still good);
 * - over WSS the hub closes the link saying it is going away or restarting (1001/1012): asks made
 *   in a loop through the restart lose none (an unanswered one is sent again, same request id).
 *
 * Every step waits on an event (the client's log lines, the server's exit), never on time.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ThalovantClient, ThalovantConnectionError, ThalovantControlPlane } from "../src/index.js";
import { setLogger } from "../src/runtime/log.js";
import { freePort, OwnServer, refuseUnhandledRejections, tempFolder } from "./helpers/testbed.js";

const JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable.";
const ASK = "Tell me a short clean joke.";
const checkRejections = refuseUnhandledRejections();
let server: OwnServer;
const savedCertFile = process.env.SSL_CERT_FILE;

/** The client's log lines, as events a test can wait for. */
const logWatch = new (class {
  private readonly waits: { pattern: RegExp; resolve: () => void }[] = [];

  line(message: string): void {
    for (const wait of [...this.waits]) {
      if (wait.pattern.test(message)) {
        this.waits.splice(this.waits.indexOf(wait), 1);
        wait.resolve();
      }
    }
  }

  /** Resolves at the next log line that matches `pattern`. */
  next(pattern: RegExp): Promise<void> {
    return new Promise<void>((resolve) => this.waits.push({ pattern, resolve }));
  }
})();

before(async () => {
  server = new OwnServer(await freePort(), await freePort());
  await server.start();
  process.env.SSL_CERT_FILE = server.caFile; // trust this server's development CA too
  setLogger({ info: (message) => logWatch.line(message), warn: (message) => logWatch.line(message), error: (message) => logWatch.line(message) });
});

after(async () => {
  setLogger({ info: () => undefined, warn: (message) => console.warn(`thalovant: ${message}`), error: (message) => console.error(`thalovant: ${message}`) });
  await server?.stop();
  if (savedCertFile === undefined) delete process.env.SSL_CERT_FILE;
  else process.env.SSL_CERT_FILE = savedCertFile;
  checkRejections();
});

/** A ThalovantConnectionError saying the link was not back in the request's time. */
function notBack(error: unknown): boolean {
  return error instanceof ThalovantConnectionError && /not back within the request's/.test(error.message);
}

describe("a hub restart", () => {
  for (const protocol of ["wss", "https", "mqtt"] as const) {
    const loops = protocol === "wss";
    // the timeout only keeps a broken reconnect loop from hanging the suite
    it(`${protocol}: requests made while it is down wait for the reconnect loop${loops ? "; asks in a loop lose none" : ""}`, { timeout: 90_000 }, async () => {
      const api = new ThalovantControlPlane({ apiUrl: server.apiUrl });
      const file = join(tempFolder(), "identity.json");
      try {
        await api.login("demo@example.com", server.password);
        const hub = await api.getPublicHub("joke-garden");
        await (await api.createClientIdentity(hub.id, { name: `node-restart-${protocol}` })).identity.save(file);
      } finally {
        await api.close();
      }
      const client = await ThalovantClient.fromIdentityFile(file, { protocol, connectTimeoutMs: 3000, sendTimeoutMs: 200 });
      try {
        assert.equal((await client.ask(ASK)).text, JOKE);
        assert.equal(client.connectionInfo().noisePattern, "XXpsk2");

        // asks in a loop through the restart (each loop a session of its own: the hub tells its
        // jokes in order per session); generous timeouts bound a slow machine's restart
        let looping = loops;
        const looped = loops
          ? [0, 1].map(async (n) => {
              let answered = 0;
              while (looping) {
                const reply = await client.ask(ASK, { sessionId: `thalovant-session-node-loop-${n}`, timeoutMs: 60_000 });
                assert.ok(reply.text.length > 0);
                answered += 1;
              }
              return answered;
            })
          : [];
        for (const loop of looped) loop.catch(() => undefined); // its error is checked below

        const lost = logWatch.next(/^Hub link lost/);
        await server.stop();
        await lost;
        await assert.rejects(client.ask(ASK, { timeoutMs: 100 }), notBack);
        await assert.rejects(client.emit("thalovant.test.ping"), notBack);

        const waiting = logWatch.next(/^Waiting for the hub link, within the request's 50 s/);
        const whileDown = client.ask(ASK, { sessionId: `thalovant-session-node-down-${protocol}`, timeoutMs: 50_000 });
        await waiting;
        const reconnected = logWatch.next(/^Reconnected to the hub\.$/);
        await server.start();
        await reconnected;
        assert.equal((await whileDown).text, JOKE);
        assert.equal(client.connected, true);
        assert.equal(client.connectionInfo().reconnects, 1);
        assert.equal(client.connectionInfo().noisePattern, "KKpsk0");

        looping = false;
        const counts = await Promise.all(looped);
        for (const count of counts) assert.ok(count >= 2, `a loop answered ${count} asks`);
      } finally {
        await client.close();
      }
    });
  }
});
