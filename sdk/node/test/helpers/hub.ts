/**
 * A hub's side of the negotiation for engine tests, written from the spec (3.1-3.10) on the
 * engine's own Noise responder: HELLO and offer out, message 1 in, message 2 out, message 3 in.
 * It is deliberately small; the real hubs of the integration tests are the repository's server
 * and hivemind-core.
 */

import { fromHex, isObject, toHex } from "../../src/protocol/bytes.js";
import { buildPrologue, canonicalJson } from "../../src/protocol/canonical.js";
import { SecureChannel } from "../../src/protocol/channel.js";
import { parseJsonObject } from "../../src/protocol/envelope.js";
import { HandshakeState, KeyPair, type NoisePattern, type NoiseSuite, protocolName } from "../../src/protocol/noise.js";

export interface TestHubOptions {
  nodeId?: string;
  psk: Uint8Array;
  staticKey?: KeyPair;
  pinnedClientKey?: Uint8Array;
  suites?: NoiseSuite[];
  helloExtra?: Record<string, unknown>;
}

export class TestHub {
  readonly staticKey: KeyPair;
  readonly helloPayload: Record<string, unknown>;
  readonly offerPayload: Record<string, unknown>;
  handshake: HandshakeState | undefined;
  channel: SecureChannel | undefined;
  clientKey: Uint8Array | undefined;

  constructor(private readonly options: TestHubOptions) {
    this.staticKey = options.staticKey ?? KeyPair.generate();
    this.helloPayload = { node_id: options.nodeId ?? "node-test", pubkey: "", ...(options.helloExtra ?? {}) };
    const patterns = options.pinnedClientKey !== undefined ? ["KKpsk0", "XXpsk2"] : ["XXpsk2"];
    this.offerPayload = {
      handshake: true,
      binarize: false,
      encodings: ["JSON-B64", "JSON-HEX"],
      noise: { patterns, suites: options.suites ?? ["25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256"] },
    };
  }

  opening(): string[] {
    return [JSON.stringify({ msg_type: "hello", payload: this.helloPayload }), JSON.stringify({ msg_type: "shake", payload: this.offerPayload })];
  }

  /** Message 1 in, message 2 out (its hex may be tampered with by `tamper`). */
  message1(text: string, tamper?: (bytes: Uint8Array) => Uint8Array): string {
    const noise = (parseJsonObject(text).payload as { noise: { pattern: NoisePattern; suite: NoiseSuite; msg: string } }).noise;
    const prologue = buildPrologue(this.helloPayload, this.offerPayload, protocolName(noise.pattern, noise.suite));
    const handshake = new HandshakeState(noise.pattern, noise.suite, {
      initiator: false,
      prologue,
      psk: this.options.psk,
      staticKey: this.staticKey,
      remoteStatic: noise.pattern === "KKpsk0" ? this.options.pinnedClientKey : undefined,
    });
    handshake.readMessage(fromHex(noise.msg) as Uint8Array);
    let reply = handshake.writeMessage(canonicalJson({ binarize: false }));
    if (tamper) reply = tamper(reply);
    this.handshake = handshake;
    if (handshake.finished) this.finish();
    return JSON.stringify({ msg_type: "shake", payload: { noise: { msg: toHex(reply) } } });
  }

  message3(text: string): void {
    const payload = parseJsonObject(text).payload;
    const noise = isObject(payload) && isObject(payload.noise) ? payload.noise : {};
    (this.handshake as HandshakeState).readMessage(fromHex(String(noise.msg)) as Uint8Array);
    this.finish();
  }

  private finish(): void {
    const handshake = this.handshake as HandshakeState;
    this.clientKey = handshake.remoteStatic;
    const [send, recv] = handshake.split();
    this.channel = new SecureChannel(send, recv);
  }
}
