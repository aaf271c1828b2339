/**
 * MQTT's hub-to-client topic `<prefix>/out` belongs to the identity, not to one session: what
 * the hub sends to another session of the same identity (an earlier process that left before
 * reading the answers to its HELLO or its message 1) reaches every session subscribed at that
 * moment, and the hub's HELLO and offer read the same for every session. These tests make that
 * happen on purpose against the testbed's `serve --demo`: a second broker connection with the
 * identity's credentials plays the other session, and the client's own cleartext HELLO is held
 * (the SDK's MQTT connector, wrapped) until the other session's frames have reached the client.
 * Each step waits for the broker event it needs; nothing sleeps.
 */

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";

import { type Carrier, CarrierClosed, type CarrierMessage, Inbox } from "../src/carriers/base.js";
import type { MqttConnectOptions, MqttConnector, MqttSession } from "../src/carriers/mqtt-types.js";
import { helloText, type MqttSettings, mqttSettings } from "../src/carriers/mqtt.js";
import { MemoryNoiseStore, ThalovantClient, ThalovantConnectionError, type ThalovantIdentity } from "../src/index.js";
import { installPlatform, platform } from "../src/platform/current.js";
import { fromUtf8, toHex, utf8 } from "../src/protocol/bytes.js";
import type { SecureChannel } from "../src/protocol/channel.js";
import { HiveMessage } from "../src/protocol/envelope.js";
import { ClientNegotiation } from "../src/protocol/negotiation.js";
import { KeyPair } from "../src/protocol/noise.js";
import { directDerivation } from "../src/protocol/psk.js";
import { establish } from "../src/runtime/link.js";
import { TestHub } from "./helpers/hub.js";
import { newIdentity, refuseUnhandledRejections } from "./helpers/testbed.js";

const CAPABILITIES = "This hub can answer quick joke and trivia requests.";
const checkRejections = refuseUnhandledRejections();
after(checkRejections);

/** What a hub publish on `/out` is, read the way a test can without keys. */
type Kind = "hello" | "offer" | "message 2" | "binary";

function kindOf(payload: Uint8Array): Kind {
  let message: unknown;
  try {
    message = JSON.parse(fromUtf8(payload));
  } catch {
    return "binary";
  }
  if (typeof message !== "object" || message === null) return "binary";
  const { msg_type: type, payload: body } = message as { msg_type?: unknown; payload?: { noise?: { msg?: unknown } } };
  if (type === "hello") return "hello";
  return typeof body?.noise?.msg === "string" ? "message 2" : "offer";
}

/**
 * One broker session, watched: every message from the hub is recorded (kind and text, in order)
 * before it is handed on. With `hold`, the first publish to that topic (the carrier's cleartext
 * HELLO, sent once `/out` is subscribed) waits for {@link letHelloGo}.
 */
class Watched implements MqttSession {
  onMessage: (topic: string, payload: Uint8Array) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;
  readonly kinds: Kind[] = [];
  readonly texts: string[] = [];
  /** Resolves when the carrier, subscribed to `/out`, hands its HELLO over (and it is held). */
  readonly helloHeld: Promise<void>;
  private readonly released: Promise<void>;
  private markHeld: () => void = () => undefined;
  private release: () => void = () => undefined;
  private holding: boolean;
  private readonly waits: { kind: Kind; done: () => void }[] = [];

  constructor(
    private readonly inner: MqttSession,
    private readonly hold?: string,
  ) {
    this.holding = hold !== undefined;
    this.helloHeld = new Promise((resolve) => (this.markHeld = resolve));
    this.released = new Promise((resolve) => (this.release = resolve));
    inner.onMessage = (topic, payload) => {
      const kind = kindOf(payload);
      this.kinds.push(kind);
      if (kind !== "binary") this.texts.push(fromUtf8(payload));
      for (const wait of this.waits.filter((w) => w.kind === kind)) {
        this.waits.splice(this.waits.indexOf(wait), 1);
        wait.done();
      }
      this.onMessage(topic, payload);
    };
    inner.onClose = (reason) => this.onClose(reason);
  }

  get connected(): boolean {
    return this.inner.connected;
  }

  subscribe(topic: string, qos: 0 | 1): Promise<number[]> {
    return this.inner.subscribe(topic, qos);
  }

  async publish(topic: string, payload: Uint8Array, qos: 0 | 1, retain: boolean, timeoutMs: number): Promise<void> {
    if (this.holding && topic === this.hold) {
      this.holding = false;
      this.markHeld();
      await this.released;
    }
    await this.inner.publish(topic, payload, qos, retain, timeoutMs);
  }

  end(timeoutMs: number): Promise<void> {
    return this.inner.end(timeoutMs);
  }

  destroy(): void {
    this.inner.destroy();
  }

  /** Resolves once a message of `kind` has arrived (at once when one already has). */
  arrival(kind: Kind): Promise<void> {
    if (this.kinds.includes(kind)) return Promise.resolve();
    return new Promise((done) => this.waits.push({ kind, done }));
  }

  letHelloGo(): void {
    this.release();
  }
}

/** The SDK's own MQTT connector, its sessions watched and their HELLO held. */
class HoldingConnector implements MqttConnector {
  private opened: (session: Watched) => void = () => undefined;
  /** The first session opened through this connector. */
  readonly first: Promise<Watched> = new Promise((resolve) => (this.opened = resolve));

  constructor(
    private readonly real: MqttConnector,
    private readonly inbound: string,
  ) {}

  async connect(options: MqttConnectOptions): Promise<MqttSession> {
    const session = new Watched(await this.real.connect(options), this.inbound);
    this.opened(session);
    return session;
  }
}

/** Another broker session with the identity's credentials: an earlier process of the same client. */
async function otherSession(real: MqttConnector, settings: MqttSettings): Promise<Watched> {
  const session = await real.connect({
    host: settings.host,
    port: settings.port,
    username: settings.username,
    password: settings.password,
    clientId: `thalovant-test-${toHex(crypto.getRandomValues(new Uint8Array(8)))}`,
    keepaliveSeconds: 60,
    will: { topic: settings.topics.status, payload: utf8("offline"), qos: 1, retain: true },
    tls: { verify: true },
    timeoutMs: 10_000,
  });
  return new Watched(session);
}

describe("MQTT: the hub's frames for another session of the identity on the shared /out topic", () => {
  const host = platform();
  const real = host.mqtt as MqttConnector;
  let identity: ThalovantIdentity | undefined;
  let settings: MqttSettings | undefined;

  async function client(): Promise<{ client: ThalovantClient; holding: HoldingConnector; settings: MqttSettings }> {
    if (identity === undefined) {
      identity = (await newIdentity("node-mqtt-topic")).identity;
      settings = mqttSettings(identity.mqtt);
    }
    const topics = (settings as MqttSettings).topics;
    const holding = new HoldingConnector(real, topics.inbound);
    installPlatform({ ...host, mqtt: holding });
    // the hold is part of opening: give it time beyond the default 4 s
    return { client: new ThalovantClient(identity, { protocol: "mqtt", connectTimeoutMs: 60_000 }), holding, settings: settings as MqttSettings };
  }

  after(() => installPlatform(host));

  it("a HELLO and offer the hub sent another session before ours do not start a second negotiation", async () => {
    const { client: ours, holding, settings } = await client();
    let other: Watched | undefined;
    try {
      const connecting = ours.connect();
      const session = await holding.first;
      await session.helloHeld; // subscribed to /out; our HELLO waits
      other = await otherSession(real, settings);
      await other.publish(settings.topics.inbound, utf8(helloText("thalovant-node-mqtt-other", ours.identity.siteId)), 1, false, 8000);
      await session.arrival("offer"); // the hub's HELLO and offer for the other session reached us
      session.letHelloGo();
      await connecting;
      assert.deepEqual(session.kinds.slice(0, 5), ["hello", "offer", "hello", "offer", "message 2"]);
      const reply = await ours.ask("What can this hub do?");
      assert.equal(reply.text, CAPABILITIES);
    } finally {
      installPlatform(host);
      await ours.close();
      await other?.end(2000);
    }
  });

  it("a message 2 the hub sent another session before answering our HELLO is not ours (doctor's 'Out-of-order')", async () => {
    const { client: ours, holding, settings } = await client();
    const other = await otherSession(real, settings);
    try {
      // the other session: HELLO, the hub's HELLO and offer (before we subscribe), then its message 1
      await other.subscribe(settings.topics.outbound, 1);
      await other.publish(settings.topics.inbound, utf8(helloText("thalovant-node-mqtt-other", ours.identity.siteId)), 1, false, 8000);
      await other.arrival("offer");
      const negotiation = new ClientNegotiation({ staticKey: KeyPair.generate(), siteId: ours.identity.siteId, sessionId: "other", forceXX: true });
      for (const text of other.texts) negotiation.receiveText(text);
      // XXpsk2 message 1 does not use the PSK yet: any key gets the hub's message 2
      const message1 = negotiation.start(new Uint8Array(32));

      const report = ours.doctor();
      const session = await holding.first;
      await session.helloHeld; // subscribed to /out; our HELLO waits
      await other.publish(settings.topics.inbound, utf8(message1), 1, false, 8000);
      await session.arrival("message 2"); // the hub's answer to the other session's message 1 reached us first
      session.letHelloGo();
      const result = await report;
      assert.equal(session.kinds[0], "message 2");
      assert.ok(result.ok, String(result));
    } finally {
      installPlatform(host);
      await ours.close();
      await other.end(2000);
    }
  });
});

/** A carrier on a shared channel whose hub is a script: opening and each send may make it answer. */
class ScriptedCarrier implements Carrier {
  readonly protocol = "mqtt" as const;
  readonly pinId = "mqtts://hub.test:8883";
  readonly endpoint = "mqtts://hub.test:8883";
  readonly sharedInbound = true;
  alive = false;
  private readonly inbox = new Inbox();

  constructor(private readonly hub: { opened(): CarrierMessage[]; sent(message: CarrierMessage): CarrierMessage[] }) {}

  bindSession(): void {}

  async open(): Promise<void> {
    this.alive = true;
    for (const message of this.hub.opened()) this.inbox.push(message);
  }

  async sendText(text: string): Promise<void> {
    for (const message of this.hub.sent(text)) this.inbox.push(message);
  }

  async sendBinary(data: Uint8Array): Promise<void> {
    for (const message of this.hub.sent(data)) this.inbox.push(message);
  }

  receive(timeoutMs?: number): Promise<CarrierMessage> {
    return this.inbox.next(timeoutMs);
  }

  takeReady(): CarrierMessage | undefined {
    return this.inbox.take();
  }

  async close(): Promise<void> {
    this.alive = false;
    this.inbox.fail(new CarrierClosed("closed"));
  }

  extraInfo(): Record<string, unknown> {
    return {};
  }
}

describe("MQTT without a network: message 1 built on another session's HELLO and offer", () => {
  const PSK = new Uint8Array(32).fill(5);
  const options = {
    credentials: { accessKey: "access", password: "secret", siteId: "site" },
    sessionId: "sid",
    connectTimeoutMs: 5000,
    handshakeTimeoutMs: 5000,
    startDerivation: () => directDerivation(async () => PSK),
  };

  /**
   * Sessions before `fromAttempt` open on `stale`'s HELLO and offer (another session's copies,
   * unlike the hub's own when `stale` is another hub state), and the hub's own come after our
   * message 1; later sessions open on the hub's own.
   */
  function carriers(stale: TestHub, hub: TestHub, fromAttempt: number): () => Carrier {
    let attempts = 0;
    return () => {
      attempts += 1;
      const clean = attempts >= fromAttempt;
      return new ScriptedCarrier({
        opened: () => (clean ? hub.opening() : stale.opening()),
        sent: (message) => {
          if (typeof message !== "string") {
            (hub.channel as SecureChannel).open(message); // the encrypted HELLO
            return (hub.channel as SecureChannel).sealJson(new HiveMessage("bus", { type: "ready", data: {}, context: {} }).toBytes());
          }
          if (message.includes('"pattern"')) {
            // unclean: the hub's answer to our HELLO arrives after our message 1
            const answer = clean ? [] : hub.opening();
            try {
              answer.push(hub.message1(message));
            } catch {
              // built on a pair unlike the hub's: the hub cannot read it and says nothing
            }
            return answer;
          }
          hub.message3(message);
          return [];
        },
      });
    };
  }

  it("is retried at once on a fresh carrier session, once", async () => {
    const stale = new TestHub({ psk: PSK, helloExtra: { peer: "an earlier session's hub state" } });
    const hub = new TestHub({ psk: PSK, staticKey: stale.staticKey });
    const link = await establish(carriers(stale, hub, 2), { ...options, store: new MemoryNoiseStore() });
    assert.equal(link.timings.attempts, 2);
    assert.equal(link.pattern, "XXpsk2");
    await link.close();

    const again = new TestHub({ psk: PSK, staticKey: stale.staticKey });
    await assert.rejects(establish(carriers(stale, again, 3), { ...options, store: new MemoryNoiseStore() }), (error: unknown) => {
      assert.ok(error instanceof ThalovantConnectionError);
      assert.match(error.message, /restarted the negotiation/);
      return true;
    });
  });

  it("a copy equal to the hub's own needs no retry", async () => {
    const hub = new TestHub({ psk: PSK });
    const link = await establish(carriers(hub, hub, 2), { ...options, store: new MemoryNoiseStore() });
    assert.equal(link.timings.attempts, 1);
    await link.close();
  });
});
