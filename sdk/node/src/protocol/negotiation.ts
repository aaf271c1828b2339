/**
 * The client (initiator) side of the HiveMind v3 negotiation as a sans-I/O state machine
 * (spec 3.1-3.10). It takes the hub's messages in and hands back the messages to send; it does
 * no I/O and derives no PSK (argon2id is the caller's job, off the event loop).
 *
 *     AWAIT_HELLO --HELLO--> AWAIT_OFFER --offer--> NEEDS_PSK --start(psk)--> AWAIT_MSG2
 *     AWAIT_MSG2 --message 2--> COMPLETE  (returns message 3 for XX, then the encrypted HELLO)
 *
 * Any error moves the machine to DEAD; every later call throws again. Only
 * {@link ProtocolError} subclasses are thrown on bad input.
 */

import { equalBytes, fromHex, isObject, type JsonObject, toHex } from "./bytes.js";
import { buildPrologue, canonicalJson, canonicalJsonText } from "./canonical.js";
import { SecureChannel } from "./channel.js";
import { HiveMessage, parseJsonObject } from "./envelope.js";
import { EnvelopeError, HandshakeError, HubKeyChanged, KKFailed, NegotiationError, NegotiationSuperseded, ProtocolError } from "./errors.js";
import { MAX_TRANSPORT_MESSAGE, type Frame } from "./framing.js";
import { DHLEN, HandshakeState, type KeyPair, type NoisePattern, type NoiseSuite, protocolName } from "./noise.js";

export const XX: NoisePattern = "XXpsk2";
export const KK: NoisePattern = "KKpsk0";
/** The client's suite preference; the hub's order is ignored (spec 3.4). */
export const CLIENT_PREFERRED_SUITES: readonly NoiseSuite[] = ["25519_ChaChaPoly_SHA256", "25519_AESGCM_SHA256"];
/** Longest hex string a handshake envelope may carry (131070 chars, 65535 bytes). */
export const MAX_HANDSHAKE_HEX = 2 * MAX_TRANSPORT_MESSAGE;

const MESSAGE1_PAYLOAD = canonicalJson({ binarize: false, encodings: [] });
const SHAKE_TYPES = new Set(["shake", "handshake"]);
const MALFORMED = "Malformed HiveMind negotiation";
const MALFORMED_SHAKE = "Malformed Noise handshake envelope";
const OUT_OF_ORDER = "Out-of-order Noise negotiation";
const NO_MATCH = "No supported Noise pattern and cipher suite.";

/**
 * Pick `[pattern, suite]` from an offer's `noise` object (spec 3.4). Suite: the first of
 * ChaChaPoly, AESGCM that the hub offers. Pattern: KKpsk0 when the client holds a pin, the hub
 * offers it and this is not an XX retry; else XXpsk2 if offered. No match throws.
 */
export function selectNoise(offerNoise: JsonObject, pinned: boolean, forceXX = false): [NoisePattern, NoiseSuite] {
  const strings = (value: unknown): Set<string> =>
    new Set(Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : []);
  const patterns = strings(offerNoise.patterns);
  const suites = strings(offerNoise.suites);
  const suite = CLIENT_PREFERRED_SUITES.find((candidate) => suites.has(candidate));
  let pattern: NoisePattern | undefined;
  if (pinned && !forceXX && patterns.has(KK)) pattern = KK;
  else pattern = patterns.has(XX) ? XX : undefined;
  if (suite === undefined || pattern === undefined) throw new NegotiationError(NO_MATCH);
  return [pattern, suite];
}

function handshakeBytes(noise: JsonObject): Uint8Array {
  const msg = noise.msg;
  if (typeof msg !== "string" || msg.length > MAX_HANDSHAKE_HEX) throw new NegotiationError(MALFORMED_SHAKE);
  const bytes = fromHex(msg);
  if (bytes === undefined) throw new NegotiationError(MALFORMED_SHAKE);
  return bytes;
}

/** Python's default `json.dumps` text of a shake envelope (the client's messages 1 and 3). */
function shakeText(noise: JsonObject): string {
  const inner = Object.entries(noise)
    .map(([key, value]) => `${JSON.stringify(key)}: ${JSON.stringify(value)}`)
    .join(", ");
  return `{"msg_type": "shake", "payload": {"noise": {${inner}}}, "metadata": {}, "route": []}`;
}

type ClientState = "await-hello" | "await-offer" | "needs-psk" | "await-message-2" | "complete" | "dead";

export interface ClientNegotiationOptions {
  staticKey: KeyPair;
  siteId: string;
  sessionId: string;
  /** The hub key pinned for this endpoint, if any. */
  hubPin?: Uint8Array | undefined;
  /** Skip KK even with a pin (the immediate retry after a failed KK attempt). */
  forceXX?: boolean;
  /**
   * The hub's channel to this client outlives the session (MQTT's `<prefix>/out`): what the hub
   * sent another session of the same identity may arrive before the answers to this session's
   * HELLO. See {@link ClientNegotiation.receiveText}.
   */
  sharedChannel?: boolean;
}

/**
 * One negotiation attempt of the client.
 *
 * Feed every hub message to {@link receiveText} (text, or UTF-8 bytes on MQTT) or
 * {@link receiveBinary}. After the offer `needsPsk` is true and `nodeId` known: derive the PSK
 * and call {@link start} for message 1. Message 2 returns message 3 (XX only) and the encrypted
 * HELLO, ready to send in that order.
 *
 * Errors: {@link KKFailed} (retry at once with `forceXX` on a fresh carrier session),
 * {@link HubKeyChanged} (the hub key contradicts `hubPin`), `DecryptError` for an XX message 2
 * that does not authenticate (a refusal), {@link NegotiationSuperseded} (shared channel only:
 * retry at once on a fresh carrier session), {@link NegotiationError} for anything malformed.
 */
export class ClientNegotiation {
  readonly siteId: string;
  readonly sessionId: string;
  nodeId: string | undefined;
  helloPayload: JsonObject | undefined;
  offerPayload: JsonObject | undefined;
  pattern: NoisePattern | undefined;
  suite: NoiseSuite | undefined;
  hubStatic: Uint8Array | undefined;
  private readonly staticKey: KeyPair;
  private readonly hubPin: Uint8Array | undefined;
  private readonly forceXX: boolean;
  private readonly sharedChannel: boolean;
  private state: ClientState = "await-hello";
  private handshake: HandshakeState | undefined;
  private secure: SecureChannel | undefined;

  constructor(options: ClientNegotiationOptions) {
    if (options.hubPin !== undefined && options.hubPin.length !== DHLEN) {
      throw new NegotiationError("a pinned hub key is 32 bytes");
    }
    this.staticKey = options.staticKey;
    this.siteId = options.siteId;
    this.sessionId = options.sessionId;
    this.hubPin = options.hubPin;
    this.forceXX = options.forceXX ?? false;
    this.sharedChannel = options.sharedChannel ?? false;
  }

  /** True between the offer and {@link start}. */
  get needsPsk(): boolean {
    return this.state === "needs-psk";
  }

  get complete(): boolean {
    return this.state === "complete";
  }

  get dead(): boolean {
    return this.state === "dead";
  }

  /** The session's secure channel (after completion). */
  get channel(): SecureChannel {
    if (this.secure === undefined || this.state !== "complete") throw new NegotiationError("the Noise handshake is not complete");
    return this.secure;
  }

  private die(error: ProtocolError): never {
    this.state = "dead";
    this.handshake = undefined;
    throw error;
  }

  private checkAlive(): void {
    if (this.state === "dead") throw new NegotiationError("the negotiation already ended");
  }

  /**
   * Handle one cleartext hub message; what to send (after message 2 only).
   *
   * On a shared channel the hub's answers to another session of the same identity may come
   * first, and nothing in the hub's HELLO or offer names the session it answers (they read the
   * same for every session). All of that arrives before the hub's answer to this session's
   * HELLO: the hub answers a prefix's messages in order and stops answering a session when a
   * newer HELLO comes. So, instead of ending the negotiation:
   *
   * - before message 1 goes out, the newest HELLO wins; an offer without a HELLO before it is
   *   skipped (its HELLO went to an earlier subscriber), and so is a message 2 (none of ours
   *   is out to be answered);
   * - after message 1, a HELLO or offer equal to the pair it was built on is skipped: message 1
   *   was built on another session's copy of the pair, and the hub reads it against its own,
   *   which is the same; one that differs throws {@link NegotiationSuperseded}.
   */
  receiveText(text: string | Uint8Array): (string | Uint8Array)[] {
    this.checkAlive();
    if (this.state === "complete") this.die(new NegotiationError("Plaintext received after Noise authentication"));
    let message: JsonObject;
    try {
      message = parseJsonObject(text, "negotiation message");
    } catch (error) {
      if (error instanceof EnvelopeError) this.die(new NegotiationError(MALFORMED));
      throw error;
    }
    const payload = message.payload;
    if (!isObject(payload)) this.die(new NegotiationError(MALFORMED));
    const msgType = message.msg_type;
    if (msgType === "hello") {
      if (this.sharedChannel && this.state !== "await-hello") this.repeatedHello(payload);
      else this.hello(payload);
      return [];
    }
    if (typeof msgType !== "string" || !SHAKE_TYPES.has(msgType)) {
      this.die(new NegotiationError(`Unexpected ${JSON.stringify(String(msgType).slice(0, 40))} message before Noise authentication`));
    }
    const noise = payload.noise;
    if (!isObject(noise)) this.die(new NegotiationError("The hub did not offer HiveMind v3 Noise."));
    if (!("msg" in noise)) {
      if (this.sharedChannel && this.state !== "await-offer") this.repeatedOffer(payload, noise);
      else this.offer(payload, noise);
      return [];
    }
    if (this.state !== "await-message-2") {
      if (this.sharedChannel) return []; // another session's: no message 1 of ours is out yet
      this.die(new NegotiationError(OUT_OF_ORDER));
    }
    return this.message2(noise);
  }

  /** Before authentication: an error. After it: the channel's `open` (a frame or undefined). */
  receiveBinary(message: Uint8Array): Frame | undefined {
    this.checkAlive();
    if (this.state !== "complete" || this.secure === undefined) {
      this.die(new NegotiationError("Application traffic received before Noise authentication"));
    }
    try {
      return this.secure.open(message);
    } catch (error) {
      if (error instanceof ProtocolError) this.die(error);
      throw error;
    }
  }

  private hello(payload: JsonObject): void {
    const nodeId = payload.node_id;
    if (this.state !== "await-hello" || typeof nodeId !== "string" || nodeId === "") {
      this.die(new NegotiationError("Missing node_id or duplicate Noise HELLO"));
    }
    this.checkCanonical(payload);
    this.nodeId = nodeId;
    this.helloPayload = payload;
    this.state = "await-offer";
  }

  private offer(payload: JsonObject, noise: JsonObject): void {
    if (this.state !== "await-offer") this.die(new NegotiationError(OUT_OF_ORDER));
    this.checkCanonical(payload);
    try {
      [this.pattern, this.suite] = selectNoise(noise, this.hubPin !== undefined, this.forceXX);
    } catch (error) {
      if (error instanceof ProtocolError) this.die(error);
      throw error;
    }
    this.offerPayload = payload;
    this.state = "needs-psk";
  }

  /** Shared channel: a HELLO after the first one (see {@link receiveText}). */
  private repeatedHello(payload: JsonObject): void {
    if (this.state === "await-message-2") {
      this.checkSamePair(payload, this.helloPayload);
      return;
    }
    // before message 1 (awaiting the offer, or holding one): start over from the newest HELLO
    this.offerPayload = undefined;
    this.pattern = undefined;
    this.suite = undefined;
    this.state = "await-hello";
    this.hello(payload);
  }

  /** Shared channel: an offer that does not follow a HELLO of this negotiation at once. */
  private repeatedOffer(payload: JsonObject, noise: JsonObject): void {
    if (this.state === "await-hello") return; // its HELLO went to an earlier subscriber
    if (this.state === "needs-psk") {
      // message 1 is not out yet: the newest offer wins
      this.state = "await-offer";
      this.offer(payload, noise);
      return;
    }
    this.checkSamePair(payload, this.offerPayload);
  }

  /** After message 1: `received` must equal the payload message 1 was built on. */
  private checkSamePair(received: JsonObject, used: JsonObject | undefined): void {
    this.checkCanonical(received);
    if (used === undefined || canonicalJsonText(received) !== canonicalJsonText(used)) {
      this.die(new NegotiationSuperseded("The hub restarted the negotiation with another HELLO or offer than the one message 1 was built on."));
    }
  }

  private checkCanonical(payload: JsonObject): void {
    try {
      canonicalJsonText(payload);
    } catch {
      this.die(new NegotiationError(MALFORMED));
    }
  }

  /** Message 1 text, once the PSK for `nodeId` is derived. */
  start(psk: Uint8Array): string {
    this.checkAlive();
    if (this.state !== "needs-psk") this.die(new NegotiationError("start() needs a received offer and may run once"));
    const pattern = this.pattern as NoisePattern;
    const suite = this.suite as NoiseSuite;
    let message: Uint8Array;
    try {
      const prologue = buildPrologue(this.helloPayload as JsonObject, this.offerPayload as JsonObject, protocolName(pattern, suite));
      const handshake = new HandshakeState(pattern, suite, {
        initiator: true,
        prologue,
        psk,
        staticKey: this.staticKey,
        remoteStatic: pattern === KK ? this.hubPin : undefined,
      });
      message = handshake.writeMessage(MESSAGE1_PAYLOAD);
      this.handshake = handshake;
    } catch (error) {
      if (error instanceof ProtocolError) this.die(error);
      throw error;
    }
    this.state = "await-message-2";
    return shakeText({ pattern, suite, msg: toHex(message) });
  }

  private message2(noise: JsonObject): (string | Uint8Array)[] {
    const handshake = this.handshake as HandshakeState;
    let message: Uint8Array;
    try {
      message = handshakeBytes(noise);
    } catch (error) {
      if (error instanceof ProtocolError) this.die(error);
      throw error;
    }
    try {
      handshake.readMessage(message);
    } catch (error) {
      if (error instanceof HandshakeError && this.pattern === KK) this.die(new KKFailed(`KKpsk0 message 2 failed: ${error.message}`));
      if (error instanceof ProtocolError) this.die(error);
      throw error;
    }
    const out: (string | Uint8Array)[] = [];
    if (!handshake.finished) out.push(shakeText({ msg: toHex(handshake.writeMessage()) }));
    const hubKey = handshake.remoteStatic as Uint8Array;
    if (this.hubPin !== undefined && !equalBytes(hubKey, this.hubPin)) this.die(new HubKeyChanged("Trusted Noise server key changed"));
    this.hubStatic = hubKey;
    const [send, recv] = handshake.split();
    this.secure = new SecureChannel(send, recv);
    this.handshake = undefined;
    this.state = "complete";
    out.push(...this.secure.sealJson(this.encryptedHelloBody()));
    return out;
  }

  /** The JSON body of the client's encrypted HELLO (spec 3.10). */
  encryptedHelloBody(): Uint8Array {
    return new HiveMessage("hello", { pubkey: "", session: { session_id: this.sessionId }, site_id: this.siteId }).toBytes();
  }
}
