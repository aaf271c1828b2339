/** The asks of a client on one timer (CarryWatch), and the carrier inbox read in one turn. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { CarrierClosed, Inbox } from "../src/carriers/base.js";
import { ThalovantTimeoutError } from "../src/errors.js";
import { ThalovantEvent } from "../src/events.js";
import { ReplyCollector } from "../src/runtime/ask.js";
import { CarryWatch, CARRY_GRACE_MS, GRACE_BATCH_MS, type WatchClock } from "../src/runtime/carry.js";

/** A clock the test moves by hand: `advance` runs what came due, in order. */
class ManualClock implements WatchClock {
  time = 1000;
  armed = 0;
  private nextId = 1;
  readonly timers = new Map<number, { at: number; callback: () => void; held: boolean }>();

  now(): number {
    return this.time;
  }

  setTimer(callback: () => void, delayMs: number): unknown {
    const id = this.nextId++;
    this.armed += 1;
    this.timers.set(id, { at: this.time + delayMs, callback, held: true });
    return id;
  }

  clearTimer(timer: unknown): void {
    this.timers.delete(timer as number);
  }

  holdTimer(timer: unknown, keep: boolean): void {
    const entry = this.timers.get(timer as number);
    if (entry !== undefined) entry.held = keep;
  }

  /** Whether a pending timer keeps the process alive. */
  get holding(): boolean {
    return [...this.timers.values()].some((timer) => timer.held);
  }

  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, timer]) => timer.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].callback();
    }
    this.time = end;
  }
}

function speak(requestId: string, text: string): ThalovantEvent {
  return new ThalovantEvent("speak", { utterance: text }, { request_id: requestId });
}

describe("CarryWatch", () => {
  it("knows an ask's session while it is pending and for the grace period after it", () => {
    const clock = new ManualClock();
    const watch = new CarryWatch(CARRY_GRACE_MS, GRACE_BATCH_MS, clock);
    watch.watch("r1", "s1");
    assert.equal(watch.sessionOf("r1"), "s1");
    clock.advance(60_000);
    assert.equal(watch.sessionOf("r1"), "s1", "a pending ask is never forgotten");
    watch.release("r1");
    clock.advance(CARRY_GRACE_MS - 1);
    assert.equal(watch.sessionOf("r1"), "s1", "still within the grace period");
    clock.advance(GRACE_BATCH_MS + 1);
    assert.equal(watch.sessionOf("r1"), undefined);
    assert.equal(watch.size, 0);
    assert.equal(clock.timers.size, 0, "nothing left, no timer");
  });

  it("forgets an ask whose utterance never went out at once", () => {
    const watch = new CarryWatch(CARRY_GRACE_MS, GRACE_BATCH_MS, new ManualClock());
    watch.watch("r1", "s1");
    watch.forget("r1");
    assert.equal(watch.sessionOf("r1"), undefined);
  });

  it("fires a deadline when due, never before, and once", () => {
    const clock = new ManualClock();
    const watch = new CarryWatch(CARRY_GRACE_MS, GRACE_BATCH_MS, clock);
    let fired = 0;
    watch.watch("r1", "s1");
    assert.equal(watch.setDeadline("r1", 500, () => (fired += 1)), true);
    clock.advance(499);
    assert.equal(fired, 0);
    clock.advance(1);
    assert.equal(fired, 1);
    clock.advance(10_000);
    assert.equal(fired, 1);
    assert.equal(watch.setDeadline("unknown", 500, () => (fired += 1)), false);
  });

  it("a cleared or released deadline does not fire", () => {
    const clock = new ManualClock();
    const watch = new CarryWatch(CARRY_GRACE_MS, GRACE_BATCH_MS, clock);
    let fired = 0;
    watch.watch("r1", "s1");
    watch.watch("r2", "s1");
    watch.setDeadline("r1", 100, () => (fired += 1));
    watch.setDeadline("r2", 100, () => (fired += 1));
    watch.clearDeadline("r1");
    watch.release("r2");
    clock.advance(CARRY_GRACE_MS * 2);
    assert.equal(fired, 0);
  });

  it("serves many asks with a few timers, and holds the process only while a deadline is pending", () => {
    const clock = new ManualClock();
    const watch = new CarryWatch(CARRY_GRACE_MS, GRACE_BATCH_MS, clock);
    for (let i = 0; i < 1000; i++) {
      const rid = `r${i}`;
      watch.watch(rid, "s1");
      watch.setDeadline(rid, 12_000, () => assert.fail("no deadline is due"));
      assert.equal(clock.holding, true);
      clock.advance(1);
      watch.release(rid);
      assert.equal(clock.holding, false, "the grace period alone does not hold the process");
    }
    assert.ok(clock.armed <= 3, `armed ${clock.armed} timers for 1000 asks`);
    clock.advance(CARRY_GRACE_MS + GRACE_BATCH_MS + 1000);
    assert.equal(watch.size, 0);
    assert.ok(clock.armed <= 3 + Math.ceil(1000 / GRACE_BATCH_MS) + 2, `armed ${clock.armed} timers`);
  });

  it("keeps the ask deadline of a reply collector: the same timeout error", async () => {
    const watch = new CarryWatch();
    watch.watch("silent", "s1");
    await assert.rejects(
      new ReplyCollector("silent", "s1", 0).result(20, watch),
      (error: unknown) => error instanceof ThalovantTimeoutError && error.message === "No reply from the hub within 0.02 s.",
    );
    watch.watch("spoken", "s1");
    const collector = new ReplyCollector("spoken", "s1", 60_000);
    const result = collector.result(20, watch);
    collector.feed(speak("spoken", "Partly."));
    assert.equal((await result).text, "Partly.", "at the deadline, speech so far is the reply");
    watch.release("silent");
    watch.release("spoken");
  });

  it("a collector whose request is not watched keeps its own deadline", async () => {
    const watch = new CarryWatch();
    await assert.rejects(new ReplyCollector("other", "s1", 0).result(10, watch), ThalovantTimeoutError);
  });
});

describe("Inbox.take", () => {
  it("takes what is queued, in order, without waiting; the failure is left to next()", async () => {
    const inbox = new Inbox();
    assert.equal(inbox.take(), undefined);
    inbox.push("a");
    inbox.push("b");
    assert.equal(inbox.take(), "a");
    assert.equal(await inbox.next(), "b");
    inbox.push("c");
    inbox.fail(new CarrierClosed("gone"));
    assert.equal(inbox.take(), "c");
    assert.equal(inbox.take(), undefined);
    await assert.rejects(inbox.next(), /gone/);
  });
});
