/** The sans-I/O engine without a network: Noise in both roles, framing, WIRE-1, the client negotiation. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { nodeCryptoPrimitives } from "../src/platform/node-crypto.js";
import { fromHex, toHex, utf8 } from "../src/protocol/bytes.js";
import { canonicalJsonText } from "../src/protocol/canonical.js";
import { SecureChannel } from "../src/protocol/channel.js";
import { parseEnvelope } from "../src/protocol/envelope.js";
import {
  CanonicalJSONError,
  DecryptError,
  FramingError,
  HandshakeError,
  HubKeyChanged,
  KKFailed,
  NegotiationError,
  NegotiationSuperseded,
  Wire1Error,
} from "../src/protocol/errors.js";
import { CHUNK_SIZE, Marker, Reassembler, splitPlaintext } from "../src/protocol/framing.js";
import { ClientNegotiation } from "../src/protocol/negotiation.js";
import { CipherState, HandshakeState, KeyPair, type NoisePattern, type NoiseSuite, SUITES } from "../src/protocol/noise.js";
import { noblePrimitives, type NoisePrimitives, useNoisePrimitives } from "../src/protocol/primitives.js";
import { decodeFrame, encodeBinary, encodeJson } from "../src/protocol/wire1.js";
import { vectors } from "./helpers/paths.js";
import { TestHub } from "./helpers/hub.js";

const PSK = new Uint8Array(32).fill(9);

function pair(pattern: NoisePattern, suite: NoiseSuite, options: { psk?: Uint8Array; responderPsk?: Uint8Array } = {}) {
  const client = KeyPair.generate();
  const hub = KeyPair.generate();
  const prologue = utf8("prologue");
  const kk = pattern === "KKpsk0";
  const initiator = new HandshakeState(pattern, suite, { initiator: true, prologue, psk: options.psk ?? PSK, staticKey: client, remoteStatic: kk ? hub.publicKey : undefined });
  const responder = new HandshakeState(pattern, suite, { initiator: false, prologue, psk: options.responderPsk ?? PSK, staticKey: hub, remoteStatic: kk ? client.publicKey : undefined });
  return { client, hub, initiator, responder };
}

function handshake(initiator: HandshakeState, responder: HandshakeState): void {
  let writer = initiator;
  let reader = responder;
  while (!initiator.finished || !responder.finished) {
    reader.readMessage(writer.writeMessage(utf8("payload")));
    [writer, reader] = [reader, writer];
  }
}

for (const primitives of [noblePrimitives, nodeCryptoPrimitives] as NoisePrimitives[]) {
  describe(`Noise on ${primitives.name}`, () => {
    it("reproduces the reference transport ciphertexts", () => {
      useNoisePrimitives(primitives);
      const transport = vectors<{ transport: { key: string; plaintext_utf8: string; cases: { suite: NoiseSuite; counter: number; ciphertext: string }[] } }>(
        "noise-vectors.json",
      ).transport;
      for (const c of transport.cases) {
        const state = new CipherState(c.suite, fromHex(transport.key) as Uint8Array);
        state.counter = BigInt(c.counter);
        assert.equal(toHex(state.encrypt(utf8(transport.plaintext_utf8))), c.ciphertext);
      }
    });

    for (const pattern of ["XXpsk2", "KKpsk0"] as NoisePattern[]) {
      for (const suite of SUITES) {
        it(`${pattern} ${suite}: both sides agree, learn each other's static key, and talk`, () => {
          useNoisePrimitives(primitives);
          const { client, hub, initiator, responder } = pair(pattern, suite);
          handshake(initiator, responder);
          assert.deepEqual(initiator.remoteStatic, hub.publicKey);
          assert.deepEqual(responder.remoteStatic, client.publicKey);
          assert.deepEqual(initiator.handshakeHash, responder.handshakeHash);
          const [clientSend, clientRecv] = initiator.split();
          const [hubSend, hubRecv] = responder.split();
          const toHub = new SecureChannel(clientSend, clientRecv);
          const toClient = new SecureChannel(hubSend, hubRecv);
          const big = utf8("x".repeat(3 * CHUNK_SIZE + 17));
          const parts = toHub.sealJson(big);
          assert.equal(parts.length, 4);
          let frame;
          for (const part of parts) frame = toClient.open(part) ?? frame;
          assert.deepEqual(frame, { binary: false, body: big });
          const back = toHub.open((toClient.sealBinary(utf8("hi")))[0] as Uint8Array);
          assert.deepEqual(back, { binary: true, body: utf8("hi") });
        });
      }
    }

    it("a different PSK fails to authenticate (DecryptError), and the state is dead afterwards", () => {
      useNoisePrimitives(primitives);
      const { initiator, responder } = pair("XXpsk2", "25519_ChaChaPoly_SHA256", { responderPsk: new Uint8Array(32).fill(1) });
      const message2 = (() => {
        responder.readMessage(initiator.writeMessage());
        return responder.writeMessage();
      })();
      assert.throws(() => initiator.readMessage(message2), DecryptError);
      assert.throws(() => initiator.readMessage(message2), HandshakeError);
    });

    it("a tampered transport message, a replay and a reorder are refused", () => {
      useNoisePrimitives(primitives);
      const { initiator, responder } = pair("XXpsk2", "25519_AESGCM_SHA256");
      handshake(initiator, responder);
      const [send] = initiator.split();
      const [, recv] = responder.split();
      const first = send.encrypt(utf8("one"));
      const second = send.encrypt(utf8("two"));
      const tampered = Uint8Array.from(first);
      tampered[0] = (tampered[0] as number) ^ 1;
      assert.throws(() => recv.decrypt(tampered), DecryptError);
      assert.throws(() => recv.decrypt(second), DecryptError); // out of order
      assert.deepEqual(recv.decrypt(first), utf8("one"));
      assert.throws(() => recv.decrypt(first), DecryptError); // replay
    });
  });
}

describe("handshake misuse", () => {
  it("refuses a wrong turn, a short message, a bad PSK and a missing remote key", () => {
    useNoisePrimitives(noblePrimitives);
    const { initiator, responder } = pair("XXpsk2", "25519_ChaChaPoly_SHA256");
    assert.throws(() => responder.writeMessage(), /turn/);
    assert.throws(() => responder.readMessage(new Uint8Array(5)), /wrong length/);
    assert.throws(() => new HandshakeState("XXpsk2", "25519_ChaChaPoly_SHA256", { initiator: true, prologue: new Uint8Array(), psk: new Uint8Array(3), staticKey: KeyPair.generate() }), HandshakeError);
    assert.throws(() => new HandshakeState("KKpsk0", "25519_ChaChaPoly_SHA256", { initiator: true, prologue: new Uint8Array(), psk: PSK, staticKey: KeyPair.generate() }), /remote static/);
    assert.throws(() => initiator.split(), /not finished/);
  });

  it("refuses an all-zero (low-order) public key", () => {
    for (const primitives of [noblePrimitives, nodeCryptoPrimitives]) {
      useNoisePrimitives(primitives);
      const { responder, initiator } = pair("XXpsk2", "25519_ChaChaPoly_SHA256");
      responder.readMessage(initiator.writeMessage());
      const message2 = responder.writeMessage();
      message2.fill(0, 0, 32);
      assert.throws(() => initiator.readMessage(message2), HandshakeError);
    }
    useNoisePrimitives(noblePrimitives);
  });
});

describe("canonical JSON refusals", () => {
  it("refuses floats, lone surrogates, non-plain objects and deep nesting", () => {
    assert.throws(() => canonicalJsonText({ a: 1.5 }), CanonicalJSONError);
    assert.throws(() => canonicalJsonText({ a: "\uD800" }), CanonicalJSONError);
    assert.throws(() => canonicalJsonText({ a: new Date() }), CanonicalJSONError);
    let deep: unknown = 1;
    for (let i = 0; i < 300; i++) deep = [deep];
    assert.throws(() => canonicalJsonText(deep), CanonicalJSONError);
    assert.equal(canonicalJsonText({ "\u{1F600}": 1, "\uFFFF": 2 }), '{"\uFFFF":2,"\u{1F600}":1}');
  });
});

describe("framing", () => {
  it("splits and reassembles, refusing every sequencing violation", () => {
    const body = new Uint8Array(150_001).fill(7);
    const parts = splitPlaintext(body, true);
    assert.deepEqual(parts.map((p) => p[0]), [Marker.BINARY_FIRST, Marker.MIDDLE, Marker.LAST]);
    const reassembler = new Reassembler();
    assert.equal(reassembler.feed(parts[0] as Uint8Array), undefined);
    assert.equal(reassembler.inSequence, true);
    reassembler.feed(parts[1] as Uint8Array);
    assert.deepEqual(reassembler.feed(parts[2] as Uint8Array), { binary: true, body });
    for (const bad of [new Uint8Array(0), Uint8Array.of(9, 1), Uint8Array.of(Marker.MIDDLE, 1), Uint8Array.of(Marker.LAST)]) {
      assert.throws(() => new Reassembler().feed(bad), FramingError);
    }
    const open = new Reassembler();
    open.feed(Uint8Array.of(Marker.JSON_FIRST, 1));
    assert.throws(() => open.feed(Uint8Array.of(Marker.JSON, 1)), /inside a chunked sequence/);
    assert.throws(() => open.feed(Uint8Array.of(Marker.JSON, 1)), /already failed/);
  });
});

describe("WIRE-1", () => {
  it("round-trips JSON and binary frames and refuses malformed ones", () => {
    const frame = decodeFrame(encodeJson("query", { type: "x" }, { metadata: { query_id: "q" } }));
    assert.equal(frame.msgType, "query");
    assert.deepEqual(frame.metadata, { query_id: "q" });
    const long = decodeFrame(encodeBinary(utf8("audio"), 6, { metadata: { utterance: "y".repeat(600) } }));
    assert.equal(long.compressed, true);
    assert.equal(long.utterance, "y".repeat(600));
    assert.throws(() => decodeFrame(new Uint8Array(3)), Wire1Error);
    assert.throws(() => decodeFrame(Uint8Array.of(0xc0)), /truncated/);
    assert.throws(() => decodeFrame(Uint8Array.of(0xc3, 0x00, 0x00)), /version/);
    assert.throws(() => encodeBinary(utf8("x"), 16), Wire1Error);
    const broken = encodeBinary(utf8("audio"), 6, { metadata: { utterance: "y".repeat(600) } });
    broken[5] = (broken[5] as number) ^ 0xff;
    assert.throws(() => decodeFrame(broken), Wire1Error);
  });
});

describe("client negotiation against a hub written from the spec", () => {
  function run(hub: TestHub, client: ClientNegotiation, options: { tamper?: (b: Uint8Array) => Uint8Array } = {}) {
    const [hello, offer] = hub.opening();
    assert.deepEqual(client.receiveText(hello as string), []);
    assert.deepEqual(client.receiveText(offer as string), []);
    assert.equal(client.needsPsk, true);
    const message1 = client.start(PSK);
    const out = client.receiveText(hub.message1(message1, options.tamper));
    if (typeof out[0] === "string") hub.message3(out[0]);
    const encrypted = out.at(-1) as Uint8Array;
    const frame = (hub.channel as SecureChannel).open(encrypted);
    return parseEnvelope((frame as { body: Uint8Array }).body);
  }

  it("XX then KK; the encrypted HELLO carries the session and site", () => {
    const clientKey = KeyPair.generate();
    const hub = new TestHub({ psk: PSK });
    const first = new ClientNegotiation({ staticKey: clientKey, siteId: "site-1", sessionId: "sid-1" });
    const hello = run(hub, first);
    assert.equal(first.pattern, "XXpsk2");
    assert.deepEqual(hello.payload, { pubkey: "", session: { session_id: "sid-1" }, site_id: "site-1" });
    assert.deepEqual(hub.clientKey, clientKey.publicKey);
    const pinned = new TestHub({ psk: PSK, staticKey: hub.staticKey, pinnedClientKey: clientKey.publicKey });
    const second = new ClientNegotiation({ staticKey: clientKey, siteId: "site-1", sessionId: "sid-2", hubPin: first.hubStatic });
    run(pinned, second);
    assert.equal(second.pattern, "KKpsk0");
    assert.equal(second.complete, true);
  });

  it("a hub key that differs from the pin: HubKeyChanged", () => {
    const clientKey = KeyPair.generate();
    const hub = new TestHub({ psk: PSK });
    const client = new ClientNegotiation({ staticKey: clientKey, siteId: "s", sessionId: "sid", hubPin: KeyPair.generate().publicKey, forceXX: true });
    assert.throws(() => run(hub, client), HubKeyChanged);
  });

  it("a KK message 2 that does not authenticate: KKFailed (retry with XX)", () => {
    const clientKey = KeyPair.generate();
    const hubKey = KeyPair.generate();
    const hub = new TestHub({ psk: PSK, staticKey: hubKey, pinnedClientKey: clientKey.publicKey });
    const client = new ClientNegotiation({ staticKey: clientKey, siteId: "s", sessionId: "sid", hubPin: hubKey.publicKey });
    assert.throws(() => run(hub, client, { tamper: (b) => b.map((x, i) => (i === b.length - 1 ? x ^ 1 : x)) }), KKFailed);
  });

  it("an XX message 2 that does not authenticate: DecryptError (a refusal)", () => {
    const hub = new TestHub({ psk: new Uint8Array(32).fill(3) });
    const client = new ClientNegotiation({ staticKey: KeyPair.generate(), siteId: "s", sessionId: "sid" });
    assert.throws(() => run(hub, client), DecryptError);
  });

  it("malformed or out-of-order negotiation messages are refused and kill the machine", () => {
    const fresh = () => new ClientNegotiation({ staticKey: KeyPair.generate(), siteId: "s", sessionId: "sid" });
    const hub = new TestHub({ psk: PSK });
    const [hello, offer] = hub.opening() as [string, string];
    for (const bad of ["not json", "[]", '{"msg_type":"hello"}', '{"msg_type":"bus","payload":{}}', offer]) {
      const client = fresh();
      assert.throws(() => client.receiveText(bad), NegotiationError);
      assert.equal(client.dead, true);
      assert.throws(() => client.receiveText(hello), NegotiationError);
    }
    const twice = fresh();
    twice.receiveText(hello);
    assert.throws(() => twice.receiveText(hello), /duplicate Noise HELLO/);
    const binary = fresh();
    assert.throws(() => binary.receiveBinary(new Uint8Array(4)), /before Noise authentication/);
    const floats = fresh();
    assert.throws(() => floats.receiveText('{"msg_type":"hello","payload":{"node_id":"n","x":1.5}}'), NegotiationError);
    const noNoise = fresh();
    noNoise.receiveText(hello);
    assert.throws(() => noNoise.receiveText('{"msg_type":"shake","payload":{"ciphers":[]}}'), /did not offer HiveMind v3 Noise/);
    const noSuite = fresh();
    noSuite.receiveText(hello);
    assert.throws(() => noSuite.receiveText('{"msg_type":"shake","payload":{"noise":{"patterns":["XXpsk2"],"suites":["448_ChaChaPoly_BLAKE2b"]}}}'), /No supported Noise/);
    const badHex = fresh();
    badHex.receiveText(hello);
    badHex.receiveText(offer);
    badHex.start(PSK);
    assert.throws(() => badHex.receiveText('{"msg_type":"shake","payload":{"noise":{"msg":"zz"}}}'), /Malformed Noise handshake envelope/);
  });
});

describe("client negotiation on a channel shared across sessions (MQTT's /out)", () => {
  const shared = (): ClientNegotiation => new ClientNegotiation({ staticKey: KeyPair.generate(), siteId: "s", sessionId: "sid", sharedChannel: true });
  const staleMessage2 = JSON.stringify({ msg_type: "shake", payload: { noise: { msg: toHex(new Uint8Array(96).fill(7)) } } });

  /** Message 1 to `hub`, its message 2 back: the handshake completes and the hub reads our encrypted HELLO. */
  function finish(hub: TestHub, client: ClientNegotiation, message1: string): void {
    const out = client.receiveText(hub.message1(message1));
    if (typeof out[0] === "string") hub.message3(out[0]);
    assert.equal(client.complete, true);
    const frame = (hub.channel as SecureChannel).open(out.at(-1) as Uint8Array);
    assert.equal(parseEnvelope((frame as { body: Uint8Array }).body).msgType, "hello");
  }

  it("skips another session's message 2, and an offer whose HELLO went to an earlier subscriber", () => {
    const hub = new TestHub({ psk: PSK });
    const [hello, offer] = hub.opening() as [string, string];
    const client = shared();
    assert.deepEqual(client.receiveText(staleMessage2), []);
    assert.deepEqual(client.receiveText(offer), []);
    client.receiveText(hello);
    assert.deepEqual(client.receiveText(staleMessage2), []);
    client.receiveText(offer);
    assert.deepEqual(client.receiveText(staleMessage2), []);
    finish(hub, client, client.start(PSK));
  });

  it("before message 1 the newest HELLO and offer win", () => {
    const stale = new TestHub({ psk: PSK, helloExtra: { peer: "an earlier session's hub state" } });
    const hub = new TestHub({ psk: PSK, staticKey: stale.staticKey });
    const client = shared();
    for (const text of [...stale.opening(), ...hub.opening()]) assert.deepEqual(client.receiveText(text), []);
    assert.deepEqual(client.helloPayload, hub.helloPayload);
    finish(hub, client, client.start(PSK));
  });

  it("after message 1, the hub's own HELLO and offer equal to the copies it was built on are skipped", () => {
    const hub = new TestHub({ psk: PSK });
    const client = shared();
    for (const text of hub.opening()) client.receiveText(text); // another session's copies
    const message1 = client.start(PSK);
    for (const text of hub.opening()) assert.deepEqual(client.receiveText(text), []); // the answer to ours
    finish(hub, client, message1);
  });

  it("after message 1, a HELLO or an offer unlike the ones it was built on: NegotiationSuperseded", () => {
    const stale = new TestHub({ psk: PSK });
    const otherHello = new TestHub({ psk: PSK, helloExtra: { peer: "another" } });
    const otherOffer = new TestHub({ psk: PSK, pinnedClientKey: KeyPair.generate().publicKey }); // offers KK too
    for (const [hello, offer] of [otherHello.opening(), otherOffer.opening()] as [string, string][]) {
      const client = shared();
      for (const text of stale.opening()) client.receiveText(text);
      client.start(PSK);
      assert.throws(() => {
        client.receiveText(hello);
        client.receiveText(offer);
      }, NegotiationSuperseded);
      assert.equal(client.dead, true);
    }
  });

  it("off by default: a second HELLO and a message 2 before message 1 still end the negotiation", () => {
    const hub = new TestHub({ psk: PSK });
    const [hello] = hub.opening() as [string, string];
    const strict = new ClientNegotiation({ staticKey: KeyPair.generate(), siteId: "s", sessionId: "sid" });
    strict.receiveText(hello);
    assert.throws(() => strict.receiveText(staleMessage2), /Out-of-order Noise negotiation/);
  });
});
