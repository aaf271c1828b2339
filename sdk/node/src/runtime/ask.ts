/**
 * Collecting the reply to one `ask()` (spec 6.3).
 *
 * A {@link ReplyCollector} is fed every correlated bus event of its request and settles into a
 * reply or a typed error:
 *
 * - each `speak` / `ovos.utterance.speak` with text adds a fragment (a repeat of the previous one
 *   is dropped); the first starts the settle window, and the reply is returned when it closes, or
 *   at once when `ovos.utterance.handled` arrives after speech;
 * - `ovos.utterance.handled` before any speech starts the 5 s empty-reply window (then
 *   {@link ThalovantTimeoutError}), an unmatched / intent failure the same window (then
 *   {@link ThalovantUnansweredError}); a speak inside the window still wins;
 * - `hive.policy.denied` and `hive.query.timeout` end the ask at once (a reply with
 *   `handled: false` if speech already arrived);
 * - `mycroft.audio.queue` clips are kept in order (size limits apply) and never settle it;
 * - the overall deadline without speech is {@link ThalovantTimeoutError}.
 */

import { ThalovantPolicyDeniedError, ThalovantRuntimeError, ThalovantTimeoutError, ThalovantUnansweredError } from "../errors.js";
import {
  EVENT_AUDIO_QUEUE,
  EVENT_INTENT_FAILURE,
  EVENT_INTENT_UNMATCHED,
  EVENT_OVOS_UTTERANCE_SPEAK,
  EVENT_POLICY_DENIED,
  EVENT_QUERY_TIMEOUT,
  EVENT_SPEAK,
  EVENT_UTTERANCE_HANDLED,
  MAX_AUDIO_CLIP_BYTES,
  MAX_REPLY_MEDIA_BYTES,
  type ThalovantEvent,
} from "../events.js";
import { ThalovantReply } from "../models.js";

export const EMPTY_REPLY_WAIT_MS = 5000;

const SPEECH_EVENTS = new Set([EVENT_SPEAK, EVENT_OVOS_UTTERANCE_SPEAK]);
const SOFT_FAILURES = new Set([EVENT_INTENT_UNMATCHED, EVENT_INTENT_FAILURE]);
const HARD_FAILURES = new Set([EVENT_POLICY_DENIED, EVENT_QUERY_TIMEOUT]);

function failureMessage(event: ThalovantEvent): string {
  for (const key of ["reason", "error", "code"]) {
    const value = event.data[key];
    if ((typeof value === "string" || typeof value === "number") && String(value)) return String(value);
  }
  return event.name;
}

/** The state of one ask; feed it events, then await {@link result}. */
export class ReplyCollector {
  readonly events: ThalovantEvent[] = [];
  readonly fragments: string[] = [];
  readonly media: ThalovantEvent[] = [];
  mediaBytes = 0;
  droppedMedia = 0;
  handled = false;
  failureEvent: ThalovantEvent | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private windowError: Error | undefined;
  private readonly seenMedia = new WeakSet<ThalovantEvent>();
  private settled = false;
  private resolveReply!: (reply: ThalovantReply) => void;
  private rejectReply!: (error: Error) => void;
  private readonly outcome: Promise<ThalovantReply>;

  constructor(
    readonly requestId: string,
    readonly sessionId: string | undefined,
    private readonly settleMs: number,
    private readonly emptyReplyWaitMs: number = EMPTY_REPLY_WAIT_MS,
  ) {
    this.outcome = new Promise<ThalovantReply>((resolve, reject) => {
      this.resolveReply = resolve;
      this.rejectReply = reject;
    });
    this.outcome.catch(() => undefined); // observed by result(); never an unhandled rejection
  }

  get done(): boolean {
    return this.settled;
  }

  /** Take one event already correlated with this ask (request id equal, or an attributed denial). */
  feed(event: ThalovantEvent): void {
    if (this.settled) return;
    const name = event.name;
    if (SPEECH_EVENTS.has(name)) {
      this.speech(event);
    } else if (name === EVENT_UTTERANCE_HANDLED) {
      this.events.push(event);
      this.handled = true;
      if (this.fragments.length > 0) this.finish();
      else if (this.timer === undefined) this.startWindow(new ThalovantTimeoutError("Hub finished the query but did not emit a speak reply."));
    } else if (SOFT_FAILURES.has(name)) {
      this.events.push(event);
      if (this.fragments.length === 0) {
        this.failureEvent = event;
        const said = event.data.utterance;
        const error = new ThalovantUnansweredError(`The hub did not understand the request.${said ? ` (said: ${String(said)})` : ""}`);
        if (typeof said === "string") error.said = said;
        this.startWindow(error, true);
      }
    } else if (HARD_FAILURES.has(name)) {
      this.events.push(event);
      this.failureEvent = event;
      if (this.fragments.length > 0) {
        this.handled = false;
        this.finish();
      } else if (name === EVENT_POLICY_DENIED) {
        this.fail(ThalovantPolicyDeniedError.fromEventData(event.data, event));
      } else {
        this.fail(new ThalovantRuntimeError(failureMessage(event)));
      }
    } else if (name === EVENT_AUDIO_QUEUE) {
      this.audio(event);
    }
  }

  private speech(event: ThalovantEvent): void {
    this.events.push(event);
    const text = (event.text ?? "").trim().replace(/\s+/g, " ");
    if (!text) return;
    if (this.fragments.length > 0 && this.fragments[this.fragments.length - 1] === text) return;
    const first = this.fragments.length === 0;
    this.fragments.push(text);
    this.media.push(event);
    if (first) {
      this.cancelTimer();
      if (this.settleMs <= 0) this.finish();
      else this.timer = setTimeout(() => this.finish(), this.settleMs);
    }
  }

  private audio(event: ThalovantEvent): void {
    if (this.seenMedia.has(event)) return;
    this.seenMedia.add(event);
    const clip = event.data.binary_data;
    const size = typeof clip === "string" ? Math.floor(clip.length / 2) : 0;
    if (size > MAX_AUDIO_CLIP_BYTES || this.mediaBytes + size > MAX_REPLY_MEDIA_BYTES) {
      this.droppedMedia += 1;
      return;
    }
    this.mediaBytes += size;
    this.media.push(event);
  }

  private startWindow(error: Error, restart = false): void {
    if (this.timer !== undefined && !restart) return;
    this.cancelTimer();
    this.windowError = error;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.fragments.length === 0 && this.windowError !== undefined) this.fail(this.windowError);
    }, this.emptyReplyWaitMs);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private finish(): void {
    this.cancelTimer();
    if (this.settled) return;
    this.settled = true;
    this.resolveReply(this.buildReply());
  }

  private fail(error: Error): void {
    this.cancelTimer();
    if (this.settled) return;
    this.settled = true;
    this.rejectReply(error);
  }

  /**
   * End the ask with `error` if nothing for its request has arrived yet (no event, no clip);
   * returns whether it did. The client uses it to send an unanswered ask again.
   */
  abortIfUnanswered(error: Error): boolean {
    if (this.settled || this.events.length > 0 || this.media.length > 0 || this.droppedMedia > 0) return false;
    this.fail(error);
    return true;
  }

  /** End the ask with `error` (the link dropped, the client closed); speech so far still wins. */
  abort(error: Error): void {
    if (this.fragments.length > 0) this.finish();
    else this.fail(error);
  }

  buildReply(): ThalovantReply {
    return ThalovantReply.fromEvents({
      requestId: this.requestId,
      sessionId: this.sessionId,
      text: this.fragments.join(" "),
      fragments: [...this.fragments],
      events: [...this.events],
      mediaEvents: [...this.media],
      handled: this.handled || (this.failureEvent === undefined && this.fragments.length > 0),
      failureEvent: this.failureEvent,
      droppedMedia: this.droppedMedia,
    });
  }

  /**
   * The reply, or the typed error; {@link ThalovantTimeoutError} at the deadline. The deadline is
   * kept by `watch` (one timer for all of a client's asks) when it watches this request, else by
   * a timer of its own. `shownTimeoutMs` is the timeout the error names (the ask's whole one).
   */
  async result(timeoutMs: number, watch?: DeadlineWatch, shownTimeoutMs: number = timeoutMs): Promise<ThalovantReply> {
    const expire = (): void => {
      if (this.fragments.length > 0) this.finish();
      else this.fail(new ThalovantTimeoutError(`No reply from the hub within ${shownTimeoutMs / 1000} s.`));
    };
    const watched = watch?.setDeadline(this.requestId, timeoutMs, expire) ?? false;
    const deadline = watched ? undefined : setTimeout(expire, Math.max(0, timeoutMs));
    try {
      return await this.outcome;
    } finally {
      if (deadline !== undefined) clearTimeout(deadline);
      else watch?.clearDeadline(this.requestId);
      this.cancelTimer();
    }
  }
}

/** Ends an ask that the client sends again, same request id, on the next link (never seen by callers). */
export class SendAgain extends Error {
  override name = "SendAgain";
}

/** What keeps the deadlines of asks (see `CarryWatch`). */
export interface DeadlineWatch {
  /** Call `onDeadline` after `timeoutMs` unless cleared; false when `requestId` is unknown (nothing set). */
  setDeadline(requestId: string, timeoutMs: number, onDeadline: () => void): boolean;
  clearDeadline(requestId: string): void;
}
