/**
 * Establishing and running one authenticated session with a hub (spec 2, 3, 4.1, 7.1).
 *
 * {@link establish} drives the sans-I/O {@link ClientNegotiation} over a fresh carrier: it opens
 * the carrier, answers the hub's HELLO and offer, derives (or reuses) the PSK off the event loop,
 * runs the Noise handshake, pins the hub key on first use and sends the encrypted HELLO. A KK
 * attempt the hub cannot read is retried at once with XX on a fresh carrier, inside the same call.
 * On a carrier whose channel from the hub outlives the session (MQTT), the negotiation skips the
 * hub's answers to another session of the identity; an attempt whose message 1 was built on
 * another session's HELLO and offer, when the hub's own differ, is retried once the same way.
 *
 * {@link Link} is the established session: it seals and sends envelopes, and its reader
 * decrypts, reassembles and parses what the hub sends and hands it to the client. Anything
 * malformed ends the session with a {@link ThalovantConnectionError}. This module says which
 * signal a failed attempt showed at which stage; the failure policy (runtime/policy.ts) says what
 * that means: refused, key rejected, key changed, timeout or drop.
 */

import {
  type Carrier,
  type CarrierMessage,
  CarrierClosed,
  CarrierOpenError,
  CarrierRefused,
  CarrierTimeout,
} from "../carriers/base.js";
import {
  ThalovantClientKeyRejectedError,
  ThalovantConnectionError,
  ThalovantError,
} from "../errors.js";
import type { NoiseStateStore } from "../noise-store.js";
import type { SecureChannel } from "../protocol/channel.js";
import { type HiveMessage, parseEnvelope } from "../protocol/envelope.js";
import {
  HandshakeError,
  HubKeyChanged,
  KKFailed,
  NegotiationAborted,
  NegotiationError,
  NegotiationSuperseded,
  ProtocolError,
} from "../protocol/errors.js";
import type { Frame } from "../protocol/framing.js";
import { ClientNegotiation, KK } from "../protocol/negotiation.js";
import type { PskDerivation } from "../protocol/psk.js";
import { decodeFrame, type Wire1Frame } from "../protocol/wire1.js";
import { type LinkTimings, NO_TIMINGS } from "./info.js";
import { log } from "./log.js";
import { errorFor, Evidence, judge, Stage, Verdict } from "./policy.js";
import { Serial } from "./serial.js";

/** A refusal-code close this soon after an XX handshake means the hub refused our static key. */
export const REFUSAL_SETTLE_MS = 750;

/** What the negotiation needs from the identity. */
export interface Credentials {
  accessKey: string;
  password: string;
  siteId: string;
}

/**
 * A send that failed before any of its message went out (the link was already down, or its first
 * part could not be handed to the carrier): the caller may build the message again for the next
 * link. The link counts as lost.
 */
export class LinkNotSent extends ThalovantConnectionError {
  override name = "ThalovantConnectionError";
}

/**
 * An established session: one carrier and its secure channel. `onEnvelope` receives every
 * parsed envelope (JSON frames and non-`bin` WIRE-1 frames), `onBinary` every `bin` WIRE-1 frame,
 * and `onLost` is called once, with the error, when the session ends other than by {@link close}
 * (a failed read, a failed send, or {@link abandon}); {@link closeCode} then holds the carrier's
 * close evidence, if any (a WebSocket close code).
 */
export class Link {
  error: ThalovantError | undefined;
  /** The carrier's code for the end of the session (WSS: the close code), once it is lost. */
  closeCode: number | undefined;
  onEnvelope: (message: HiveMessage) => void = () => undefined;
  onBinary: (frame: Wire1Frame) => void = () => undefined;
  onLost: (error: ThalovantError) => void = () => undefined;
  private readonly serial = new Serial();
  private closing = false;
  private reading = false;

  constructor(
    readonly carrier: Carrier,
    readonly channel: SecureChannel,
    readonly pattern: string,
    readonly sessionId: string,
    readonly hubStatic: Uint8Array | undefined,
    readonly timings: LinkTimings,
    private earlyFrames: Frame[],
  ) {}

  /** Seal and send one envelope. */
  /**
   * Seal and send one envelope. Rejects with {@link LinkNotSent} when nothing of it went out
   * (the link is then lost), with a ThalovantConnectionError when the carrier failed part way.
   */
  async sendEnvelope(message: HiveMessage): Promise<void> {
    const body = message.toBytes();
    await this.serial.run(async () => {
      if (this.closing || this.error !== undefined) throw new LinkNotSent("The hub connection is closed.");
      let sent = 0;
      try {
        for (const part of this.channel.sealJson(body)) {
          await this.carrier.sendBinary(part);
          sent += 1;
        }
      } catch (error) {
        if (!(error instanceof CarrierClosed)) throw error;
        if (sent > 0) throw new ThalovantConnectionError(error.message);
        if (this.error === undefined) this.closeCode = error.code;
        this.lost(this.asError(error));
        throw new LinkNotSent(error.message);
      }
    });
  }

  /** Report this link lost (it was found dead by other means than its reader); no-op once ended. */
  abandon(error: ThalovantError): void {
    this.lost(error);
  }

  /** Deliver any frame read during the settle window, then start reading. */
  start(): void {
    const early = this.earlyFrames;
    this.earlyFrames = [];
    this.reading = true;
    try {
      for (const frame of early) this.dispatch(frame);
    } catch (error) {
      this.lost(this.asError(error));
      return;
    }
    void this.readLoop();
  }

  get alive(): boolean {
    return !this.closing && this.error === undefined && this.carrier.alive && this.reading;
  }

  private async readLoop(): Promise<void> {
    try {
      for (;;) {
        let message: CarrierMessage | undefined = await this.carrier.receive();
        // every frame that is already queued is read in this same turn, before the callers woken
        // by the first one resume: a reply's late frames (the hub's `ovos.utterance.handled` with
        // the conversation state) are handled before the caller's next request goes out
        while (message !== undefined) {
          if (this.closing) return;
          if (typeof message === "string") throw new ThalovantConnectionError("Plaintext received after Noise authentication.");
          const frame = this.channel.open(message);
          if (frame !== undefined) this.dispatch(frame);
          message = this.carrier.takeReady?.();
        }
      }
    } catch (error) {
      this.reading = false;
      if (error instanceof CarrierClosed) this.closeCode = error.code;
      this.lost(this.asError(error));
    }
  }

  private asError(error: unknown): ThalovantError {
    if (error instanceof CarrierClosed) return new ThalovantConnectionError(`Connection to the hub dropped: ${error.message}`);
    if (error instanceof ProtocolError) return new ThalovantConnectionError(`Malformed data from the hub (${error.name}): ${error.message}`);
    if (error instanceof ThalovantError) return error;
    log.error(`Unexpected error in the hub reader: ${String(error)}`);
    return new ThalovantConnectionError(`Unexpected error reading from the hub: ${String(error)}`);
  }

  private dispatch(frame: Frame): void {
    if (frame.binary) {
      const decoded = decodeFrame(frame.body);
      if (decoded.msgType === "bin") this.onBinary(decoded);
      else this.onEnvelope(decoded.toEnvelope());
    } else {
      this.onEnvelope(parseEnvelope(frame.body));
    }
  }

  private lost(error: ThalovantError): void {
    if (this.closing || this.error !== undefined) return;
    this.error = error;
    void this.carrier.close();
    this.onLost(error);
  }

  /** Close normally (1000 on WSS); no `onLost` callback. */
  async close(): Promise<void> {
    this.closing = true;
    await this.carrier.close();
  }
}

/** The options of {@link establish}. */
export interface EstablishOptions {
  store: NoiseStateStore;
  credentials: Credentials;
  sessionId: string;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** A PSK derivation to start at a first contact (no hub pin yet). */
  startDerivation: () => PskDerivation;
  onPhase?: (phase: "connecting" | "handshake") => void;
}

/** Internal: the KK attempt failed in a way that asks for an immediate XX attempt. */
class RetryWithXX extends Error {}

/**
 * Internal: the attempt answered another session's HELLO and offer (shared channel), and the
 * policy asks for an immediate attempt on a fresh carrier session.
 */
class RetryFresh extends Error {}

function utcNow(): string {
  return new Date().toISOString();
}

function keyRejected(store: NoiseStateStore, when: string): ThalovantClientKeyRejectedError {
  const error = new ThalovantClientKeyRejectedError(
    `The hub refused this client's Noise key ${when}. The hub has another key pinned for this access key; ` +
      `the key in use is in ${store.location}.`,
  );
  error.keyFolder = store.location;
  return error;
}

/**
 * Open a carrier and negotiate; retry at once, on a fresh carrier, when the policy says so (with
 * XX when KK fails; once after a superseded negotiation). Throws the typed Thalovant errors of
 * spec 12; always closes the carrier of a failed attempt.
 */
export async function establish(makeCarrier: () => Carrier, options: EstablishOptions): Promise<Link> {
  const timings: LinkTimings = { ...NO_TIMINGS, startedAt: utcNow() };
  const started = performance.now();
  let forceXX = false;
  let retriedFresh = false;
  for (;;) {
    timings.attempts += 1;
    const carrier = makeCarrier();
    try {
      const link = await attempt(carrier, options, forceXX, retriedFresh, timings);
      timings.connectMs = performance.now() - started;
      timings.connectedAt = utcNow();
      return link;
    } catch (error) {
      await carrier.close();
      if (error instanceof RetryWithXX && !forceXX) {
        log.info("KK handshake failed; retrying at once with XX.");
        forceXX = true;
        continue;
      }
      if (error instanceof RetryWithXX) throw new ThalovantConnectionError("The hub refused the XX handshake.");
      if (error instanceof RetryFresh) {
        log.info("The hub answered a newer HELLO than the one this attempt used; retrying at once.");
        retriedFresh = true;
        continue;
      }
      throw error;
    }
  }
}

function openWithin(carrier: Carrier, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CarrierTimeout("open timed out")), timeoutMs);
    carrier.open(timeoutMs).then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

async function attempt(carrier: Carrier, options: EstablishOptions, forceXX: boolean, retriedFresh: boolean, timings: LinkTimings): Promise<Link> {
  const { store, credentials, sessionId } = options;
  options.onPhase?.("connecting");
  carrier.bindSession(sessionId, credentials.siteId);
  const pinId = carrier.pinId;
  const hubPin = await store.hubPin(pinId);
  // a first contact almost surely derives the PSK: warm the derivation while the carrier opens
  let derivation = hubPin === undefined ? options.startDerivation() : undefined;
  try {
    return await negotiate(carrier, options, forceXX, retriedFresh, timings, hubPin, () => (derivation ??= options.startDerivation()));
  } finally {
    derivation?.cancel();
  }
}

async function negotiate(
  carrier: Carrier,
  options: EstablishOptions,
  forceXX: boolean,
  retriedFresh: boolean,
  timings: LinkTimings,
  hubPin: Uint8Array | undefined,
  derivation: () => PskDerivation,
): Promise<Link> {
  const { store, credentials, sessionId } = options;
  const pinId = carrier.pinId;
  const openedAt = performance.now();
  try {
    await openWithin(carrier, options.connectTimeoutMs);
  } catch (error) {
    // the failure policy decides what each signal means (runtime/policy.ts)
    let seen: [Evidence, string];
    if (error instanceof CarrierRefused) seen = [Evidence.REFUSAL, `The hub refused this client's credentials: ${error.message}`];
    else if (error instanceof CarrierTimeout) seen = [Evidence.TIMEOUT, `Could not open the ${carrier.protocol} connection within ${options.connectTimeoutMs / 1000} s.`];
    else if (error instanceof CarrierOpenError) seen = [Evidence.CLOSED, error.message];
    else if (error instanceof ThalovantError) throw error;
    else seen = [Evidence.CLOSED, `Could not open the ${carrier.protocol} connection: ${String(error)}`];
    throw errorFor(judge(Stage.OPENING, seen[0], false).verdict, seen[1]);
  }
  const handshakeStart = performance.now();
  timings.transportOpenMs = handshakeStart - openedAt;
  const socketOpenMs = carrier.extraInfo().socketOpenMs;
  timings.socketOpenMs = typeof socketOpenMs === "number" ? socketOpenMs : undefined;
  options.onPhase?.("handshake");

  const negotiation = new ClientNegotiation({
    staticKey: await store.staticKey(),
    siteId: credentials.siteId,
    sessionId,
    hubPin,
    forceXX,
    sharedChannel: carrier.sharedInbound === true,
  });
  const deadline = handshakeStart + options.handshakeTimeoutMs;
  let psk: Uint8Array | undefined;
  let pskWasCached = false;
  let startedHandshake = false;

  const forgetPsk = async (): Promise<void> => {
    if (negotiation.nodeId) await store.forgetPsk(credentials.accessKey, negotiation.nodeId);
  };
  const kkAttempt = (): boolean => negotiation.pattern === KK && !forceXX;

  try {
    while (!negotiation.complete) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new CarrierTimeout("handshake deadline");
      const message = await carrier.receive(remaining);
      if (typeof message !== "string") throw new ThalovantConnectionError("Application traffic received before Noise authentication.");
      const outputs = negotiation.receiveText(message);
      if (negotiation.needsPsk && !startedHandshake) {
        const nodeId = negotiation.nodeId as string;
        psk = await store.cachedPsk(credentials.accessKey, nodeId);
        pskWasCached = psk !== undefined;
        if (psk === undefined) psk = await derivation().derive(credentials.password, nodeId);
        startedHandshake = true;
        await carrier.sendText(negotiation.start(psk));
      }
      for (const out of outputs) {
        if (typeof out === "string") await carrier.sendText(out);
        else await carrier.sendBinary(out);
      }
    }
  } catch (error) {
    // the failure policy decides what each signal means at this stage (runtime/policy.ts)
    const stage = negotiation.complete ? Stage.FINISHING : startedHandshake ? Stage.HANDSHAKE : Stage.NEGOTIATING;
    let seen: [Evidence, string];
    if (error instanceof CarrierTimeout) {
      seen = [Evidence.TIMEOUT, `The hub did not complete the handshake within ${options.handshakeTimeoutMs / 1000} s.`];
    } else if (error instanceof HubKeyChanged) {
      seen = [
        Evidence.KEY_CHANGED,
        `Trusted Noise server key changed for ${pinId}: the hub's key differs from the one pinned in ${store.location}. ` +
          "Stop and check; remove that pin only if you trust the new key.",
      ];
    } else if (error instanceof NegotiationSuperseded) {
      seen = [Evidence.SUPERSEDED, `Malformed HiveMind negotiation: ${error.message}`];
    } else if (error instanceof KKFailed || error instanceof NegotiationAborted || error instanceof HandshakeError) {
      seen = [Evidence.AUTH_FAILED, `The hub refused this client (wrong password or tampered negotiation): ${error.message}`];
    } else if (error instanceof NegotiationError || error instanceof ProtocolError) {
      seen = [Evidence.MALFORMED, `Malformed HiveMind negotiation: ${error.message}`];
    } else if (error instanceof CarrierClosed && error.refusalSignal) {
      seen = [Evidence.REFUSAL, stage === Stage.NEGOTIATING ? `The hub refused this client's credentials: ${error.message}` : `The hub refused this client: ${error.message}`];
    } else if (error instanceof CarrierClosed) {
      seen = [Evidence.CLOSED, `The hub closed the connection before the handshake completed: ${error.message}`];
    } else {
      throw error;
    }
    const judgement = judge(stage, seen[0], kkAttempt(), retriedFresh);
    if (judgement.forgetPsk) await forgetPsk();
    if (judgement.verdict === Verdict.RETRY_WITH_XX) throw new RetryWithXX();
    if (judgement.verdict === Verdict.RETRY_FRESH) throw new RetryFresh();
    // refused while the final XX frames or the encrypted HELLO went out (HTTPS 401/403)
    if (judgement.verdict === Verdict.KEY_REJECTED) throw keyRejected(store, `as the handshake completed (${(error as Error).message})`);
    throw errorFor(judgement.verdict, seen[1]);
  }

  const channel = negotiation.channel;
  const pattern = negotiation.pattern as string;
  const hubStatic = negotiation.hubStatic;
  timings.handshakeMs = performance.now() - handshakeStart;
  if (!pskWasCached && psk !== undefined && negotiation.nodeId) await store.storePsk(credentials.accessKey, negotiation.nodeId, psk);
  if (hubPin === undefined && hubStatic !== undefined) await store.pinHub(pinId, hubStatic);

  const early = pattern !== KK ? await settleAfterXX(carrier, channel, store) : [];
  return new Link(carrier, channel, pattern, sessionId, hubStatic, timings, early);
}

/**
 * Wait up to 750 ms for the first authenticated frame after an XX handshake. A refusal close in
 * that window means the hub refused this client's static key.
 */
async function settleAfterXX(carrier: Carrier, channel: SecureChannel, store: NoiseStateStore): Promise<Frame[]> {
  let message: string | Uint8Array;
  try {
    message = await carrier.receive(REFUSAL_SETTLE_MS);
  } catch (error) {
    if (error instanceof CarrierTimeout) return [];
    if (error instanceof CarrierClosed) {
      const { verdict } = judge(Stage.SETTLING, error.refusalSignal ? Evidence.REFUSAL : Evidence.CLOSED, false);
      if (verdict === Verdict.KEY_REJECTED) throw keyRejected(store, `right after the handshake (${error.message})`);
      throw errorFor(verdict, `The hub closed the connection after the handshake: ${error.message}`);
    }
    throw error;
  }
  if (typeof message === "string") throw new ThalovantConnectionError("Plaintext received after Noise authentication.");
  try {
    const frame = channel.open(message);
    return frame !== undefined ? [frame] : [];
  } catch (error) {
    if (error instanceof ProtocolError) throw new ThalovantConnectionError(`Malformed data from the hub: ${error.message}`);
    throw error;
  }
}
