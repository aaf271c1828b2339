/**
 * The client's failure policy in one place: what a failed connect means, and what comes next.
 *
 * It mirrors the Python SDK's `thalovant.runtime.policy` section by section (as the Go and Rust
 * SDKs do); keep it a set of small tables. Durations are milliseconds here.
 *
 * 1. Judging one connect attempt. An attempt fails at a {@link Stage} with some
 *    {@link Evidence}; {@link judge} turns the pair (and whether the attempt was KK) into a
 *    {@link Verdict}:
 *
 *        evidence \ stage   OPENING   NEGOTIATING  HANDSHAKE         FINISHING          SETTLING
 *        REFUSAL            REFUSED   REFUSED      KK: XX / REFUSED  KK: XX / KEY_REJ.  KEY_REJECTED
 *        AUTH_FAILED        REFUSED   REFUSED      KK: XX / REFUSED  KK: XX / REFUSED   REFUSED
 *        KEY_CHANGED        KEY_CHANGED at every stage
 *        CLOSED, MALFORMED  DROPPED at every stage
 *        TIMEOUT            TIMED_OUT at every stage
 *        SUPERSEDED         FRESH at every stage; DROPPED when this connect already retried fresh
 *
 *    "KK: XX" is `RETRY_WITH_XX`: a KK attempt the hub could not read or refused is tried again
 *    at once with XX on a fresh carrier, inside the same connect. "FRESH" is `RETRY_FRESH`: on a
 *    carrier whose channel from the hub outlives the session (MQTT, where the hub's answers to
 *    another session of the identity may come first), message 1 was built on a HELLO and offer
 *    unlike the hub's own; the attempt is tried again at once on a fresh carrier session, once
 *    per connect (a second time is malformed, DROPPED). A refusal once the hub holds
 *    our static key (FINISHING, SETTLING) means it has another client key pinned for this access
 *    key. The cached PSK is forgotten whenever the hub said no after the Noise handshake began
 *    (the cached PSK may be why).
 *
 * 2. What the client does after a failure ({@link nextStep}, {@link WAITERS_SEE}):
 *    KEY_CHANGED and KEY_REJECTED stop the reconnecting (only a person can fix the pins);
 *    REFUSED keeps reconnecting on the schedule for {@link REFUSAL_GIVE_UP_MS}, then stops;
 *    DROPPED and TIMED_OUT keep reconnecting on the schedule for ever. A caller waiting for the
 *    link gets a REFUSED or KEY_* error at once and waits through DROPPED and TIMED_OUT.
 *    A message already sent is never sent again, except that an ask with nothing received for
 *    it yet is sent again (same request id) once the link is back when the hub closed saying it
 *    was going away or restarting ({@link resendUnanswered}, WebSocket 1001 or 1012). The client
 *    applies this section (client.ts: requests waiting for the link, the loss of a link).
 *
 * 3. When to reconnect ({@link RetrySchedule}): every loss of the link starts the same loop.
 *    Each delay is a base jittered down by up to half, so a fleet does not dial in step:
 *
 *        outage age        base delay before the next retry
 *        under a minute    1 s every time (a retry 0.5-1 s after the previous one: a hub restart)
 *        a minute or more  1 s doubled for every retry already made past the minute, at most 30 s
 */

import {
  ThalovantClientKeyRejectedError,
  ThalovantConnectionError,
  type ThalovantError,
  ThalovantHubKeyChangedError,
  ThalovantHubRefusedError,
  ThalovantTimeoutError,
} from "../errors.js";

// ------------------------------------------------------------------ 1. judging one attempt

/** Where in one connect attempt a failure happened. */
export const Stage = {
  /** the carrier opens: TCP, TLS, WebSocket upgrade, HTTPS /connect, MQTT CONNACK */
  OPENING: "opening",
  /** cleartext HELLO and offer, before our Noise message 1 went out */
  NEGOTIATING: "negotiating",
  /** our Noise message 1 went out; the handshake is not complete */
  HANDSHAKE: "handshake",
  /** the handshake is complete; the last XX frame or the encrypted HELLO goes out */
  FINISHING: "finishing",
  /** after XX: the window before the hub's first authenticated frame */
  SETTLING: "settling",
} as const;
export type Stage = (typeof Stage)[keyof typeof Stage];

/** What the client saw. */
export const Evidence = {
  /** the carrier's refusal signal: HTTP 401/403, WSS close 1000/1005/1008, CONNACK not authorised */
  REFUSAL: "refusal",
  /** the hub aborted the negotiation, or its Noise message did not decrypt */
  AUTH_FAILED: "auth-failed",
  /** the hub's static key differs from the pinned one */
  KEY_CHANGED: "key-changed",
  /** any other close, reset or failure to open */
  CLOSED: "closed",
  /** the hub sent something the protocol does not allow */
  MALFORMED: "malformed",
  /** a phase did not finish in time */
  TIMEOUT: "timeout",
  /** shared channel: message 1 was built on another session's HELLO and offer */
  SUPERSEDED: "superseded",
} as const;
export type Evidence = (typeof Evidence)[keyof typeof Evidence];

/** What a failed attempt means; each (but RETRY_WITH_XX and RETRY_FRESH) stands for one typed error. */
export const Verdict = {
  /** internal: at once, inside the same connect */
  RETRY_WITH_XX: "retry-with-xx",
  /** internal: at once, inside the same connect, once */
  RETRY_FRESH: "retry-fresh",
  /** ThalovantHubRefusedError */
  REFUSED: "refused",
  /** ThalovantClientKeyRejectedError */
  KEY_REJECTED: "key-rejected",
  /** ThalovantHubKeyChangedError */
  KEY_CHANGED: "key-changed",
  /** ThalovantTimeoutError */
  TIMED_OUT: "timed-out",
  /** ThalovantConnectionError */
  DROPPED: "dropped",
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/** The verdict on one failed attempt, and whether to forget the cached PSK. */
export interface Judgement {
  readonly verdict: Verdict;
  readonly forgetPsk: boolean;
}

const AFTER_NOISE_BEGAN: ReadonlySet<Stage> = new Set<Stage>([Stage.HANDSHAKE, Stage.FINISHING]);
const HUB_KNOWS_OUR_KEY: ReadonlySet<Stage> = new Set<Stage>([Stage.FINISHING, Stage.SETTLING]);

/**
 * The verdict on one failed attempt (the table of section 1); `kk`: the attempt used KK,
 * `retriedFresh`: this connect already made its {@link Verdict.RETRY_FRESH} attempt.
 */
export function judge(stage: Stage, evidence: Evidence, kk: boolean, retriedFresh = false): Judgement {
  switch (evidence) {
    case Evidence.SUPERSEDED:
      return { verdict: retriedFresh ? Verdict.DROPPED : Verdict.RETRY_FRESH, forgetPsk: false };
    case Evidence.KEY_CHANGED:
      return { verdict: Verdict.KEY_CHANGED, forgetPsk: false };
    case Evidence.TIMEOUT:
      return { verdict: Verdict.TIMED_OUT, forgetPsk: false };
    case Evidence.CLOSED:
    case Evidence.MALFORMED:
      return { verdict: Verdict.DROPPED, forgetPsk: false };
    case Evidence.REFUSAL:
    case Evidence.AUTH_FAILED: {
      // the hub said no
      const afterNoise = AFTER_NOISE_BEGAN.has(stage);
      if (kk && afterNoise) return { verdict: Verdict.RETRY_WITH_XX, forgetPsk: true };
      if (evidence === Evidence.REFUSAL && HUB_KNOWS_OUR_KEY.has(stage)) return { verdict: Verdict.KEY_REJECTED, forgetPsk: false };
      return { verdict: Verdict.REFUSED, forgetPsk: afterNoise };
    }
  }
}

/** The verdict a typed connect error stands for (anything untyped is a drop). */
export function verdictOf(error: unknown): Verdict {
  if (error instanceof ThalovantHubKeyChangedError) return Verdict.KEY_CHANGED;
  if (error instanceof ThalovantClientKeyRejectedError) return Verdict.KEY_REJECTED;
  if (error instanceof ThalovantHubRefusedError) return Verdict.REFUSED;
  if (error instanceof ThalovantTimeoutError) return Verdict.TIMED_OUT;
  return Verdict.DROPPED;
}

/** The typed error a verdict stands for, with `message` (RETRY_WITH_XX and RETRY_FRESH never leave a connect). */
export function errorFor(verdict: Verdict, message: string): ThalovantError {
  switch (verdict) {
    case Verdict.REFUSED:
      return new ThalovantHubRefusedError(message);
    case Verdict.KEY_REJECTED:
      return new ThalovantClientKeyRejectedError(message);
    case Verdict.KEY_CHANGED:
      return new ThalovantHubKeyChangedError(message);
    case Verdict.TIMED_OUT:
      return new ThalovantTimeoutError(message);
    case Verdict.RETRY_WITH_XX:
    case Verdict.RETRY_FRESH:
    case Verdict.DROPPED:
      return new ThalovantConnectionError(message);
  }
}

// ------------------------------------------------------------------ 2. after a failure

/** What the reconnect loop does after a failed attempt. */
export const Step = {
  RETRY: "retry",
  STOP: "stop",
} as const;
export type Step = (typeof Step)[keyof typeof Step];

/** How long the hub may refuse without a break before the reconnect loop stops (10 minutes). */
export const REFUSAL_GIVE_UP_MS = 600_000;

/** The verdicts a caller waiting for the link gets at once (it waits through the others). */
export const WAITERS_SEE: ReadonlySet<Verdict> = new Set<Verdict>([Verdict.REFUSED, Verdict.KEY_REJECTED, Verdict.KEY_CHANGED]);

/**
 * After a failed attempt: retry (on the schedule) or stop. `refusedForMs` is how long the hub
 * has been refusing without a break.
 */
export function nextStep(error: unknown, refusedForMs: number): Step {
  const verdict = verdictOf(error);
  if (verdict === Verdict.KEY_CHANGED || verdict === Verdict.KEY_REJECTED) return Step.STOP;
  if (verdict === Verdict.REFUSED && refusedForMs >= REFUSAL_GIVE_UP_MS) return Step.STOP;
  return Step.RETRY;
}

/** The WebSocket close codes by which a hub says it is going away or restarting. */
export const RESTART_CLOSE_CODES: ReadonlySet<number> = new Set([1001, 1012]);

/** Whether asks with no answer yet are sent again after the link closed with `closeCode`. */
export function resendUnanswered(closeCode: number | undefined): boolean {
  return closeCode !== undefined && RESTART_CLOSE_CODES.has(closeCode);
}

/** True when a caller waiting for the link should get `error` now. */
export function waiterGivesUp(error: unknown): boolean {
  return WAITERS_SEE.has(verdictOf(error));
}

// ------------------------------------------------------------------ 3. when to reconnect

/** The delays of the reconnect loop (section 3 of the header). */
export class RetrySchedule {
  constructor(
    readonly firstMs = 1000,
    readonly factor = 2,
    readonly restartWindowMs = 60_000,
    readonly capMs = 30_000,
    readonly jitter = 0.5,
  ) {}

  /**
   * Milliseconds to wait before the next retry, the link having been down for `downForMs`;
   * `lateRetries` is how many retries were already made with the link down for a minute or more
   * (only those double the delay). `rand` draws in [0, 1).
   */
  delay(lateRetries: number, downForMs: number, rand: () => number = Math.random): number {
    const base = downForMs < this.restartWindowMs ? this.firstMs : Math.min(this.firstMs * this.factor ** Math.min(lateRetries, 32), this.capMs);
    return base * (1 - this.jitter * rand());
  }
}

/** The schedule every client uses. */
export const DEFAULT_RETRY_SCHEDULE = new RetrySchedule();

/**
 * One outage as the reconnect loop sees it: when the link went down, how many retries were made
 * past the restart window, and since when the hub has been refusing without a break.
 */
export class Outage {
  private lateRetries = 0;
  private refusedSince: number | undefined;

  constructor(
    private readonly downSince: number,
    private readonly schedule: RetrySchedule = DEFAULT_RETRY_SCHEDULE,
  ) {}

  /** The delay before the next retry, counted as one retry made at `now`. */
  nextDelayMs(now: number, rand: () => number = Math.random): number {
    const downFor = now - this.downSince;
    const delay = this.schedule.delay(this.lateRetries, downFor, rand);
    if (downFor >= this.schedule.restartWindowMs) this.lateRetries += 1;
    return delay;
  }

  /** After a failed retry at `now`: go on or stop. A refusal extends the run of refusals; anything else breaks it. */
  afterFailure(error: unknown, now: number): Step {
    if (verdictOf(error) === Verdict.REFUSED) this.refusedSince ??= now;
    else this.refusedSince = undefined;
    return nextStep(error, this.refusedSince === undefined ? 0 : now - this.refusedSince);
  }
}
