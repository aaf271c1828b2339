/**
 * The client's failure policy (runtime/policy.ts): the verdict table, what the reconnect loop does
 * next, and the retry schedule. The cells are those of the Python SDK's policy tests.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { ThalovantClient, ThalovantIdentity } from "../src/index.js";
import { setLogger } from "../src/runtime/log.js";

import {
  ThalovantClientKeyRejectedError,
  ThalovantConnectionError,
  ThalovantHubKeyChangedError,
  ThalovantHubRefusedError,
  ThalovantTimeoutError,
} from "../src/errors.js";
import {
  errorFor,
  Evidence as E,
  judge,
  nextStep,
  Outage,
  REFUSAL_GIVE_UP_MS,
  resendUnanswered,
  RetrySchedule,
  Stage as S,
  Step,
  Verdict as V,
  verdictOf,
  waiterGivesUp,
  type Evidence,
  type Stage,
  type Verdict,
} from "../src/runtime/policy.js";

// (stage, evidence, kk) -> (verdict, forget the cached PSK)
const TABLE: [Stage, Evidence, boolean, Verdict, boolean][] = [
  [S.OPENING, E.REFUSAL, false, V.REFUSED, false],
  [S.OPENING, E.REFUSAL, true, V.REFUSED, false],
  [S.OPENING, E.CLOSED, false, V.DROPPED, false],
  [S.OPENING, E.TIMEOUT, true, V.TIMED_OUT, false],
  [S.NEGOTIATING, E.REFUSAL, false, V.REFUSED, false],
  [S.NEGOTIATING, E.AUTH_FAILED, false, V.REFUSED, false],
  [S.NEGOTIATING, E.MALFORMED, false, V.DROPPED, false],
  [S.HANDSHAKE, E.REFUSAL, true, V.RETRY_WITH_XX, true],
  [S.HANDSHAKE, E.AUTH_FAILED, true, V.RETRY_WITH_XX, true],
  [S.HANDSHAKE, E.REFUSAL, false, V.REFUSED, true],
  [S.HANDSHAKE, E.AUTH_FAILED, false, V.REFUSED, true],
  [S.HANDSHAKE, E.KEY_CHANGED, false, V.KEY_CHANGED, false],
  [S.HANDSHAKE, E.CLOSED, true, V.DROPPED, false],
  [S.FINISHING, E.REFUSAL, true, V.RETRY_WITH_XX, true],
  [S.FINISHING, E.REFUSAL, false, V.KEY_REJECTED, false],
  [S.FINISHING, E.AUTH_FAILED, false, V.REFUSED, true],
  [S.SETTLING, E.REFUSAL, false, V.KEY_REJECTED, false],
  [S.SETTLING, E.CLOSED, false, V.DROPPED, false],
  [S.SETTLING, E.TIMEOUT, false, V.TIMED_OUT, false],
];

const STAGES = Object.values(S);
const EVIDENCE = Object.values(E);

const approx = (actual: number, expected: number): void => assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} is not ${expected}`);

describe("the verdict table", () => {
  for (const [stage, evidence, kk, verdict, forget] of TABLE) {
    it(`${stage} / ${evidence} / ${kk ? "KK" : "XX"}: ${verdict}${forget ? ", forget the PSK" : ""}`, () => {
      const judgement = judge(stage, evidence, kk);
      assert.deepEqual(judgement, { verdict, forgetPsk: forget });
      // only a superseded negotiation asks whether a fresh retry was made
      assert.deepEqual(judge(stage, evidence, kk, true), judgement);
    });
  }

  for (const kk of [false, true]) {
    it(`${E.SUPERSEDED} / ${kk ? "KK" : "XX"} at every stage: ${V.RETRY_FRESH}, then ${V.DROPPED} once this connect retried fresh`, () => {
      // message 1 built on another session's HELLO and offer (a shared channel: MQTT): one fresh
      // attempt at once, then an ordinary drop; the cached PSK is never at stake
      for (const stage of STAGES) {
        assert.deepEqual(judge(stage, E.SUPERSEDED, kk), { verdict: V.RETRY_FRESH, forgetPsk: false }, stage);
        assert.deepEqual(judge(stage, E.SUPERSEDED, kk, false), { verdict: V.RETRY_FRESH, forgetPsk: false }, stage);
        assert.deepEqual(judge(stage, E.SUPERSEDED, kk, true), { verdict: V.DROPPED, forgetPsk: false }, stage);
      }
    });
  }

  it("a fresh retry already made changes no other cell", () => {
    let cells = 0;
    for (const evidence of EVIDENCE) {
      for (const kk of [false, true]) {
        for (const stage of STAGES) {
          cells += 1;
          if (evidence === E.SUPERSEDED) continue;
          assert.deepEqual(judge(stage, evidence, kk, true), judge(stage, evidence, kk), `${stage} / ${evidence} / ${kk}`);
        }
      }
    }
    assert.equal(cells, 7 * 2 * 5);
  });

  it("each typed error maps to its verdict", () => {
    assert.equal(verdictOf(new ThalovantHubKeyChangedError("x")), V.KEY_CHANGED);
    assert.equal(verdictOf(new ThalovantClientKeyRejectedError("x")), V.KEY_REJECTED);
    assert.equal(verdictOf(new ThalovantHubRefusedError("x")), V.REFUSED);
    assert.equal(verdictOf(new ThalovantTimeoutError("x")), V.TIMED_OUT);
    assert.equal(verdictOf(new ThalovantConnectionError("x")), V.DROPPED);
  });

  it("each verdict makes the typed error that maps back to it", () => {
    for (const verdict of [V.REFUSED, V.KEY_REJECTED, V.KEY_CHANGED, V.TIMED_OUT, V.DROPPED]) {
      const error = errorFor(verdict, "why");
      assert.equal(error.message, "why");
      assert.equal(verdictOf(error), verdict);
    }
    assert.ok(errorFor(V.DROPPED, "x") instanceof ThalovantConnectionError);
    // the internal retries never leave a connect; should one, it is a drop
    for (const verdict of [V.RETRY_WITH_XX, V.RETRY_FRESH]) assert.equal(verdictOf(errorFor(verdict, "x")), V.DROPPED);
  });
});

describe("after a failure", () => {
  it("the loop stops only for pins and long refusals", () => {
    assert.equal(nextStep(new ThalovantHubKeyChangedError("x"), 0), Step.STOP);
    assert.equal(nextStep(new ThalovantClientKeyRejectedError("x"), 0), Step.STOP);
    assert.equal(nextStep(new ThalovantHubRefusedError("x"), 0), Step.RETRY);
    assert.equal(nextStep(new ThalovantHubRefusedError("x"), REFUSAL_GIVE_UP_MS), Step.STOP);
    assert.equal(nextStep(new ThalovantConnectionError("x"), REFUSAL_GIVE_UP_MS * 10), Step.RETRY);
    assert.equal(nextStep(new ThalovantTimeoutError("x"), REFUSAL_GIVE_UP_MS * 10), Step.RETRY);
  });

  it("waiters wait through drops and timeouts only", () => {
    assert.equal(waiterGivesUp(new ThalovantConnectionError("x")), false);
    assert.equal(waiterGivesUp(new ThalovantTimeoutError("x")), false);
    assert.equal(waiterGivesUp(new ThalovantHubRefusedError("x")), true);
    assert.equal(waiterGivesUp(new ThalovantClientKeyRejectedError("x")), true);
    assert.equal(waiterGivesUp(new ThalovantHubKeyChangedError("x")), true);
  });

  it("unanswered asks are sent again only after a going-away or restart close", () => {
    assert.equal(resendUnanswered(1001), true);
    assert.equal(resendUnanswered(1012), true);
    for (const code of [undefined, 1000, 1005, 1006, 1008, 1011]) assert.equal(resendUnanswered(code), false);
  });

  it("an outage stops after ten minutes of refusals without a break, never for drops", () => {
    const outage = new Outage(0);
    assert.equal(outage.afterFailure(new ThalovantHubRefusedError("x"), 1000), Step.RETRY);
    assert.equal(outage.afterFailure(new ThalovantConnectionError("x"), 2000), Step.RETRY); // breaks the run
    assert.equal(outage.afterFailure(new ThalovantHubRefusedError("x"), 3000), Step.RETRY);
    assert.equal(outage.afterFailure(new ThalovantHubRefusedError("x"), 3000 + REFUSAL_GIVE_UP_MS - 1), Step.RETRY);
    assert.equal(outage.afterFailure(new ThalovantHubRefusedError("x"), 3000 + REFUSAL_GIVE_UP_MS), Step.STOP);
    assert.equal(new Outage(0).afterFailure(new ThalovantTimeoutError("x"), REFUSAL_GIVE_UP_MS * 10), Step.RETRY);
    assert.equal(new Outage(0).afterFailure(new ThalovantHubKeyChangedError("x"), 0), Step.STOP);
  });
});

describe("the retry schedule", () => {
  const schedule = new RetrySchedule();

  it("retries every half to one second during the first minute", () => {
    // the jitter draws in [0, 1): the delay spans (base/2, base]
    assert.equal(schedule.delay(0, 0, () => 0), 1000);
    approx(schedule.delay(0, 0, () => 0.999), 500.5);
    // no doubling while the outage is younger than a minute, however many retries failed
    assert.deepEqual(new Set([500, 10_000, 30_000, 59_900].map((down) => schedule.delay(0, down, () => 0))), new Set([1000]));
    for (const down of [500, 10_000, 59_900]) approx(schedule.delay(0, down, () => 0.999), 500.5);
  });

  it("doubles after a minute up to thirty seconds", () => {
    const later = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => schedule.delay(n, 60_000 + n * 1000, () => 0));
    assert.deepEqual(later, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(schedule.delay(10_000, 10_000_000, () => 0), 30_000);
    approx(schedule.delay(10_000, 10_000_000, () => 0.999), 15_015);
  });

  it("an outage counts only the retries made past the minute", () => {
    const outage = new Outage(0);
    const early = [0, 1000, 30_000, 59_999].map((now) => outage.nextDelayMs(now, () => 0));
    assert.deepEqual(early, [1000, 1000, 1000, 1000]);
    const late = [60_000, 61_000, 63_000, 67_000, 75_000, 91_000, 121_000].map((now) => outage.nextDelayMs(now, () => 0));
    assert.deepEqual(late, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
  });
});

describe("the client applies section 2 (a stand-in for its connect attempts)", () => {
  before(() => setLogger({ info: () => undefined, warn: () => undefined, error: () => undefined }));
  after(() => setLogger({ info: () => undefined, warn: (message) => console.warn(`thalovant: ${message}`), error: (message) => console.error(`thalovant: ${message}`) }));

  /** A client whose every connect attempt fails with `error`; `supervised`: as after a link was up and lost. */
  function failingClient(error: Error, options: { supervised?: boolean; autoReconnect?: boolean } = {}): { client: ThalovantClient; attempts: () => number } {
    const identity = ThalovantIdentity.fromEnv({
      env: { THALOVANT_ACCESS_KEY: "k", THALOVANT_PASSWORD: "p", THALOVANT_SITE_ID: "s", THALOVANT_HUB_HTTP_HOST: "https://hub.invalid", THALOVANT_HUB_WSS_HOST: "wss://hub.invalid:8443/w" },
    });
    const client = new ThalovantClient(identity, { protocol: "wss", sendTimeoutMs: 20, autoReconnect: options.autoReconnect ?? true });
    let attempts = 0;
    const dial = async (): Promise<void> => {
      attempts += 1;
      throw error;
    };
    Object.assign(client, { dial, everUp: options.supervised ?? true });
    return { client, attempts: () => attempts };
  }

  it("a refusal ends a waiting request at once with the refusal", async () => {
    const { client, attempts } = failingClient(new ThalovantHubRefusedError("no"));
    try {
      await assert.rejects(client.ask("hello", { timeoutMs: 60_000 }), ThalovantHubRefusedError);
      assert.equal(attempts(), 1);
    } finally {
      await client.close();
    }
  });

  it("a changed hub key stops the loop: waiting and later requests get it at once, nothing is dialled again", async () => {
    const { client, attempts } = failingClient(new ThalovantHubKeyChangedError("other key"));
    try {
      await assert.rejects(client.ask("hello", { timeoutMs: 60_000 }), ThalovantHubKeyChangedError);
      await assert.rejects(client.sendUtterance("hello", { timeoutMs: 60_000 }), ThalovantHubKeyChangedError);
      await assert.rejects(client.emit("thalovant.test"), ThalovantHubKeyChangedError);
      assert.equal(attempts(), 1);
    } finally {
      await client.close();
    }
  });

  it("a drop is waited through: the request gives up at its own timeout with a connection error naming the last error", async () => {
    const { client, attempts } = failingClient(new ThalovantConnectionError("reset by peer"));
    try {
      await assert.rejects(client.emit("thalovant.test"), (e: unknown) => {
        assert.ok(e instanceof ThalovantConnectionError);
        assert.match(e.message, /not back within the request's 0\.02 s \(last error: ThalovantConnectionError: reset by peer\)/);
        return true;
      });
      assert.equal(attempts(), 1); // the loop's first attempt, at once; the next one comes later
      await assert.rejects(client.ask("hello", { timeoutMs: 10 }), /not back within the request's 0\.01 s/);
    } finally {
      await client.close();
    }
  });

  it("without auto-reconnect, or before any link was up, a request makes one attempt of its own and gets its error", async () => {
    for (const options of [{ autoReconnect: false }, { supervised: false }]) {
      const { client, attempts } = failingClient(new ThalovantConnectionError("reset by peer"), options);
      try {
        await assert.rejects(client.ask("hello", { timeoutMs: 60_000 }), /reset by peer/);
        assert.equal(attempts(), 1);
      } finally {
        await client.close();
      }
    }
  });
});
