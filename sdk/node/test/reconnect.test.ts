/**
 * A hub that goes away and comes back (a server of the test's own, restarted on the same ports
 * and data folder), once per carrier, under connected clients with auto-reconnect:
 *
 * - while it is down, a waiting ask and a waiting send give up at their own short timeout with a
 *   ThalovantConnectionError that says the link was not back;
 * - an ask made while it is down waits for the link and is answered once the client's reconnect
 *   loop has brought the link back by itself (KK, the pins still good);
 * - over WSS the hub closes its links saying it is going away or restarting (1001/1012): an ask
 *   it never read (a proxy holds it back until the hub's close frame) is sent again, same request
 *   id, and answered; a second client asking in a loop through the restart loses no ask;
 * - a client without auto-reconnect, and one whose link was never up, make one connect attempt of
 *   their own while it is down and fail at once with its error (not the waiting one).
 *
 * Every step waits on an event (the clients' log lines, the server's exit), never on time.
 */

import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ThalovantClient, ThalovantConnectionError, ThalovantControlPlane, type ThalovantReply } from "../src/index.js";
import { setLogger } from "../src/runtime/log.js";
import { freePort, OwnServer, refuseUnhandledRejections, tempFolder } from "./helpers/testbed.js";

const JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable.";
const ASK = "Tell me a short clean joke.";
const checkRejections = refuseUnhandledRejections();
let server: OwnServer;
/** The identity files of the tests, made in one control-plane session (a login is slow). */
const identityFiles = new Map<string, string>();
const savedCertFile = process.env.SSL_CERT_FILE;

/** The client's log lines, as events a test can wait for. */
const logWatch = new (class {
  private readonly waits: { pattern: RegExp; left: number; resolve: () => void }[] = [];

  line(message: string): void {
    for (const wait of [...this.waits]) {
      if (wait.pattern.test(message) && --wait.left === 0) {
        this.waits.splice(this.waits.indexOf(wait), 1);
        wait.resolve();
      }
    }
  }

  /** Resolves once `count` more log lines (of any client) have matched `pattern`. */
  next(pattern: RegExp, count = 1): Promise<void> {
    return new Promise<void>((resolve) => this.waits.push({ pattern, left: count, resolve }));
  }
})();

before(async () => {
  server = new OwnServer(await freePort(), await freePort());
  await server.start();
  process.env.SSL_CERT_FILE = server.caFile; // trust this server's development CA too
  const api = new ThalovantControlPlane({ apiUrl: server.apiUrl });
  try {
    await api.login("demo@example.com", server.password);
    const hub = await api.getPublicHub("joke-garden");
    for (const name of ["wss", "https", "mqtt", "loop", "alone"]) {
      const file = join(tempFolder(), "identity.json");
      await (await api.createClientIdentity(hub.id, { name: `node-restart-${name}` })).identity.save(file);
      identityFiles.set(name, file);
    }
  } finally {
    await api.close();
  }
  setLogger({ info: (message) => logWatch.line(message), warn: (message) => logWatch.line(message), error: (message) => logWatch.line(message) });
});

after(async () => {
  setLogger({ info: () => undefined, warn: (message) => console.warn(`thalovant: ${message}`), error: (message) => console.error(`thalovant: ${message}`) });
  await server?.stop();
  if (savedCertFile === undefined) delete process.env.SSL_CERT_FILE;
  else process.env.SSL_CERT_FILE = savedCertFile;
  checkRejections();
});

/**
 * Forwards TCP connections to `port` until close. After {@link hold}, what clients send on the
 * connections open then is held back until the hub next sends something on that connection (for
 * a hub shutting down: its close frame), and only then passed on: the hub said it was going away
 * before it could read what was held. `held` resolves when the first bytes are held back.
 */
class HoldingProxy {
  private readonly server: Server;
  private readonly pairs: { client: Socket; hub: Socket; holding: boolean; buffer: Buffer[] }[] = [];
  private markHeld!: () => void;
  readonly held = new Promise<void>((resolve) => {
    this.markHeld = resolve;
  });

  constructor(private readonly port: number) {
    this.server = createServer((client) => {
      const hub = tcpConnect(this.port, "127.0.0.1");
      const pair = { client, hub, holding: false, buffer: [] as Buffer[] };
      this.pairs.push(pair);
      client.on("data", (data: Buffer) => {
        if (!pair.holding) hub.write(data);
        else {
          pair.buffer.push(data);
          this.markHeld();
        }
      });
      hub.on("data", (data: Buffer) => {
        client.write(data);
        if (pair.holding) {
          pair.holding = false;
          for (const part of pair.buffer.splice(0)) hub.write(part);
        }
      });
      for (const [from, to] of [[client, hub], [hub, client]] as const) {
        from.on("error", () => to.destroy());
        from.on("close", () => to.destroy());
      }
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return (this.server.address() as { port: number }).port;
  }

  /** Start holding back what clients send on the connections open now. */
  hold(): void {
    for (const pair of this.pairs) pair.holding = true;
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.hub.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The identity file made for `name` in `before`. */
function identityFile(name: string): string {
  const file = identityFiles.get(name);
  assert.ok(file !== undefined, `no identity for ${name}`);
  return file;
}

/** Point the WSS endpoint of the identity in `file` at `port` instead of the server's. */
async function throughPort(file: string, port: number): Promise<void> {
  const data = JSON.parse(await readFile(file, "utf8")) as { data_plane_endpoints?: Record<string, string> };
  const wss = data.data_plane_endpoints?.wss;
  assert.ok(wss !== undefined && wss.includes(`:${server.port}/`), `the WSS endpoint ${wss} is on the server's port`);
  data.data_plane_endpoints = { ...data.data_plane_endpoints, wss: wss.replace(`:${server.port}/`, `:${port}/`) };
  await writeFile(file, JSON.stringify(data), { mode: 0o600 });
}

/** How many asks `client` sent again after a restart close (a private count of the client). */
function resentAsks(client: ThalovantClient): number {
  return (client as unknown as { resent: number }).resent;
}

/** A ThalovantConnectionError saying the link was not back in the request's time. */
function notBack(error: unknown): boolean {
  return error instanceof ThalovantConnectionError && /not back within the request's/.test(error.message);
}

describe("a hub restart", () => {
  for (const protocol of ["wss", "https", "mqtt"] as const) {
    const wss = protocol === "wss";
    const title = wss ? "; an ask it never read is sent again; asks in a loop lose none" : "";
    // the timeout only keeps a broken reconnect loop from hanging the suite
    it(`${protocol}: requests made while it is down wait for the reconnect loop${title}`, { timeout: 90_000 }, async () => {
      const file = identityFile(protocol);
      const proxy = wss ? new HoldingProxy(server.port) : undefined;
      if (proxy !== undefined) await throughPort(file, await proxy.listen());
      const client = await ThalovantClient.fromIdentityFile(file, { protocol, connectTimeoutMs: 3000, sendTimeoutMs: 50 });
      const loopFile = wss ? identityFile("loop") : undefined;
      const looper = loopFile !== undefined ? await ThalovantClient.fromIdentityFile(loopFile, { protocol }) : undefined;
      const unsupervised = wss ? await ThalovantClient.fromIdentityFile(identityFile("alone"), { protocol, autoReconnect: false }) : undefined;
      const neverUp = loopFile !== undefined ? await ThalovantClient.fromIdentityFile(loopFile, { protocol }) : undefined;
      try {
        assert.equal((await client.ask(ASK)).text, JOKE);
        assert.equal(client.connectionInfo().noisePattern, "XXpsk2");
        await unsupervised?.connect();

        // a second client asks in a loop through the restart (generous timeouts bound a slow
        // machine's restart); an ask it loses rejects `looped`
        let looping = looper !== undefined;
        const looped = (async () => {
          let answered = 0;
          while (looping && looper !== undefined) {
            assert.ok((await looper.ask(ASK, { timeoutMs: 60_000 })).text.length > 0);
            answered += 1;
          }
          return answered;
        })();
        looped.catch(() => undefined); // checked below
        if (looper !== undefined) await looper.connect();

        // an ask the hub never reads: held back by the proxy until the hub says it is going away
        let inFlight: Promise<ThalovantReply> | undefined;
        if (proxy !== undefined) {
          proxy.hold();
          inFlight = client.ask(ASK, { requestId: "thalovant-request-node-in-flight", sessionId: "thalovant-session-node-in-flight", timeoutMs: 45_000 });
          inFlight.catch(() => undefined); // checked below
          await proxy.held;
        }

        const lost = logWatch.next(/^Hub link lost/, wss ? 3 : 1);
        await server.stop();
        await lost;
        await assert.rejects(client.ask(ASK, { timeoutMs: 50 }), notBack);
        await assert.rejects(client.emit("thalovant.test.ping"), notBack);
        for (const alone of [unsupervised, neverUp]) {
          if (alone !== undefined) await assert.rejects(alone.ask(ASK), (e: unknown) => e instanceof ThalovantConnectionError && !notBack(e));
        }

        const waiting = logWatch.next(/^Waiting for the hub link, within the request's 50 s/);
        const whileDown = client.ask(ASK, { sessionId: `thalovant-session-node-down-${protocol}`, timeoutMs: 50_000 });
        await waiting;
        const reconnected = logWatch.next(/^Reconnected to the hub\.$/, looper !== undefined ? 2 : 1);
        await server.start();
        await reconnected;
        assert.equal((await whileDown).text, JOKE);
        assert.equal(client.connected, true);
        assert.equal(client.connectionInfo().reconnects, 1);
        assert.equal(client.connectionInfo().noisePattern, "KKpsk0");
        if (inFlight !== undefined) {
          const reply = await inFlight;
          assert.equal(reply.text, JOKE);
          assert.equal(reply.requestId, "thalovant-request-node-in-flight");
          assert.equal(resentAsks(client), 1);
        } else {
          assert.equal(resentAsks(client), 0);
        }

        if (unsupervised !== undefined) {
          assert.equal((await unsupervised.ask(ASK, { sessionId: "thalovant-session-node-alone" })).text, JOKE);
          assert.equal(unsupervised.connectionInfo().noisePattern, "KKpsk0");
        }

        looping = false;
        const answered = await looped;
        if (looper !== undefined) assert.ok(answered >= 2, `the looping client had ${answered} answers`);
      } finally {
        await looper?.close();
        await unsupervised?.close();
        await neverUp?.close();
        await client.close();
        await proxy?.close();
      }
    });
  }
});
