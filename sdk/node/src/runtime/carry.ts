/**
 * The asks of one client on one timer.
 *
 * Each tracked ask is watched from the moment its utterance is sent: which session it belongs to
 * (so the hub's `ovos.utterance.handled` can update that session's carried conversation state,
 * spec 6.6), and its overall deadline. When the ask ends the session stays known for a grace
 * period ({@link CARRY_GRACE_MS}), because the handled event may follow the reply.
 *
 * One `setTimeout` serves every entry instead of two per ask: it is armed for the earliest time
 * something is due and re-armed only when an earlier one arrives. Deadlines fire when due (never
 * earlier); the ends of grace periods are gathered into batches of up to
 * {@link GRACE_BATCH_MS}, so a run of asks costs a few timer turns a second, not one per ask.
 */

export const CARRY_GRACE_MS = 2000;
export const GRACE_BATCH_MS = 250;

interface Entry {
  readonly sessionId: string;
  /** When the deadline fires (this.clock.now() milliseconds), if one is set. */
  deadlineAt: number | undefined;
  onDeadline: (() => void) | undefined;
  /** When the session mapping is forgotten, once the ask has ended. */
  forgetAt: number | undefined;
}

/** The time and the timer of a {@link CarryWatch} (the host's by default; a test's own). */
export interface WatchClock {
  /** Milliseconds, monotonic. */
  now(): number;
  setTimer(callback: () => void, delayMs: number): unknown;
  clearTimer(timer: unknown): void;
  /** Whether `timer` keeps the process alive (a Node.js notion; a no-op elsewhere). */
  holdTimer(timer: unknown, keep: boolean): void;
}

export const hostClock: WatchClock = {
  now: () => performance.now(),
  setTimer: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimer: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout>),
  holdTimer: (timer, keep) => {
    const handle = timer as { ref?: () => void; unref?: () => void };
    if (keep) handle.ref?.();
    else handle.unref?.();
  },
};

export class CarryWatch {
  private readonly entries = new Map<string, Entry>();
  private timer: unknown;
  private armedAt = Number.POSITIVE_INFINITY;
  /** How many entries have a deadline: while any does, the timer keeps the process alive. */
  private deadlines = 0;

  constructor(
    private readonly graceMs: number = CARRY_GRACE_MS,
    private readonly batchMs: number = GRACE_BATCH_MS,
    private readonly clock: WatchClock = hostClock,
  ) {}

  /** How many asks are watched (pending, or in their grace period). */
  get size(): number {
    return this.entries.size;
  }

  /** Watch the ask `requestId` of session `sessionId` (it has been, or is about to be, sent). */
  watch(requestId: string, sessionId: string): void {
    const old = this.entries.get(requestId);
    if (old !== undefined) this.dropDeadline(old);
    this.entries.set(requestId, { sessionId, deadlineAt: undefined, onDeadline: undefined, forgetAt: undefined });
  }

  /** The session of a watched ask (pending or in its grace period). */
  sessionOf(requestId: string): string | undefined {
    return this.entries.get(requestId)?.sessionId;
  }

  /**
   * Call `onDeadline` once, `timeoutMs` from now, unless the ask ends first (see {@link release},
   * {@link clearDeadline}). Returns false when `requestId` is not watched (nothing is set).
   */
  setDeadline(requestId: string, timeoutMs: number, onDeadline: () => void): boolean {
    const entry = this.entries.get(requestId);
    if (entry === undefined) return false;
    this.dropDeadline(entry);
    entry.deadlineAt = this.clock.now() + Math.max(0, timeoutMs);
    entry.onDeadline = onDeadline;
    this.deadlines += 1;
    this.arm(entry.deadlineAt);
    if (this.deadlines === 1 && this.timer !== undefined) this.clock.holdTimer(this.timer, true);
    return true;
  }

  /** Drop the deadline of `requestId` (its ask settled). */
  clearDeadline(requestId: string): void {
    const entry = this.entries.get(requestId);
    if (entry !== undefined) this.dropDeadline(entry);
  }

  /** The ask ended: no deadline; its session stays known for the grace period. */
  release(requestId: string): void {
    const entry = this.entries.get(requestId);
    if (entry === undefined) return;
    this.dropDeadline(entry);
    entry.forgetAt = this.clock.now() + this.graceMs;
    this.arm(entry.forgetAt + this.batchMs);
  }

  /** Forget `requestId` at once (its utterance never went out). */
  forget(requestId: string): void {
    const entry = this.entries.get(requestId);
    if (entry === undefined) return;
    this.dropDeadline(entry);
    this.entries.delete(requestId);
  }

  private dropDeadline(entry: Entry): void {
    if (entry.deadlineAt === undefined) return;
    entry.deadlineAt = undefined;
    entry.onDeadline = undefined;
    this.deadlines -= 1;
    // a pending deadline keeps the process alive like any wait; the grace period alone does not
    if (this.deadlines === 0 && this.timer !== undefined) this.clock.holdTimer(this.timer, false);
  }

  private arm(at: number): void {
    if (at >= this.armedAt) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.armedAt = at;
    this.timer = this.clock.setTimer(() => this.sweep(), Math.max(0, at - this.clock.now()));
    if (this.deadlines === 0) this.clock.holdTimer(this.timer, false);
  }

  private sweep(): void {
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    const due: (() => void)[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const [requestId, entry] of this.entries) {
      if (entry.deadlineAt !== undefined) {
        if (entry.deadlineAt <= now) {
          if (entry.onDeadline !== undefined) due.push(entry.onDeadline);
          this.dropDeadline(entry);
        } else {
          next = Math.min(next, entry.deadlineAt);
        }
      }
      if (entry.forgetAt !== undefined) {
        if (entry.forgetAt <= now) this.entries.delete(requestId);
        else next = Math.min(next, entry.forgetAt + this.batchMs);
      }
    }
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
    for (const fire of due) fire();
  }
}
