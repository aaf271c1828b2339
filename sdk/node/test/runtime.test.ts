/** The runtime's pure parts: contexts, events, reply collection, typed errors. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  buildClientContext,
  ThalovantAPIUnreachableError,
  ThalovantClientKeyRejectedError,
  ThalovantConnectionError,
  ThalovantError,
  ThalovantEvent,
  ThalovantHubRefusedError,
  ThalovantPolicyDeniedError,
  ThalovantRuntimeError,
  ThalovantTimeoutError,
  ThalovantUnansweredError,
} from "../src/index.js";
import type { Carrier } from "../src/carriers/base.js";
import { CarrierClosed } from "../src/carriers/base.js";
import type { SecureChannel } from "../src/protocol/channel.js";
import { ReplyCollector, SendAgain } from "../src/runtime/ask.js";
import { NO_TIMINGS } from "../src/runtime/info.js";
import { Link, LinkNotSent } from "../src/runtime/link.js";
import { carriedFields, connectionSessionId, newRequestId, runtimeContext, utteranceMessage } from "../src/runtime/bus.js";
import { busOf, normaliseContext } from "../src/runtime/inbound.js";
import { HiveMessage } from "../src/protocol/envelope.js";

function event(name: string, data: Record<string, unknown> = {}, requestId = "rid"): ThalovantEvent {
  return new ThalovantEvent(name, data, { request_id: requestId, session: { session_id: "sid" } });
}

describe("outgoing contexts", () => {
  it("buildClientContext follows the guide's shape and composes", () => {
    const context = buildClientContext({}, {
      userId: "user-42",
      userName: "Ada",
      source: "checkout-kiosk",
      platform: "kiosk",
      locale: "en-US",
      channel: "chat",
      metadata: { traceId: "req-1" },
      sessionId: "s-1",
      deviceId: "d-1",
    });
    assert.deepEqual(context, {
      user: { id: "user-42", name: "Ada" },
      user_id: "user-42",
      user_name: "Ada",
      platform: "kiosk",
      source: "checkout-kiosk",
      channel: "chat",
      locale: "en-US",
      device: { id: "d-1", platform: "kiosk" },
      metadata: { traceId: "req-1" },
      session_id: "s-1",
      session: { session_id: "s-1" },
    });
    assert.deepEqual(buildClientContext(context, { roles: "admin" }).user, { id: "user-42", name: "Ada", roles: ["admin"] });
  });

  it("utterances get ids, the session and the carried fields; the runtime context fills only what is missing", () => {
    const [rid, data, ctx] = utteranceMessage(" hello ", { lang: "en-us", siteId: "site", carried: { active_skills: ["x"] }, context: { session: { lang: "fr-fr" } } });
    assert.match(rid, /^thalovant-request-[0-9a-f]{32}$/);
    assert.deepEqual(data, { utterances: ["hello"], lang: "en-us" });
    assert.deepEqual(ctx.session, { lang: "fr-fr", site_id: "site", request_id: rid, active_skills: ["x"] });
    const full = runtimeContext({ ...ctx, source: "mine" }, { userAgent: "UA", connectionSid: "conn", siteId: "site", identityMetadata: { a: 1, b: 1 } });
    assert.equal(full.source, "mine");
    assert.equal(full.platform, "UA");
    assert.equal(full.destination, "HiveMind");
    assert.equal((full.session as { session_id: string }).session_id, "conn");
    assert.deepEqual(carriedFields({ active_skills: [], context: { a: 1 }, lang: "en" }), { context: { a: 1 } });
  });

  it("carried fields are deep copies", () => {
    const session = { active_skills: [["jokes", 1.5]], context: { skills: { jokes: { next: 3 } } } };
    const fields = carriedFields(session);
    assert.deepEqual(fields, session);
    session.active_skills[0]?.push("later");
    session.context.skills.jokes.next = 4;
    assert.deepEqual(fields, { active_skills: [["jokes", 1.5]], context: { skills: { jokes: { next: 3 } } } });
  });

  it("a JSON __proto__ key stays an own property of copies", () => {
    const session = JSON.parse('{"context": {"__proto__": {"polluted": true}, "a": 1}}') as { context: object };
    const copy = carriedFields(session).context as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(copy), Object.prototype);
    assert.deepEqual(Object.keys(copy), ["__proto__", "a"]);
    assert.equal(copy.polluted, undefined);
    const context = normaliseContext(JSON.parse('{"__proto__": {"polluted": true}, "destination": "me"}') as Record<string, unknown>);
    assert.equal(Object.getPrototypeOf(context), Object.prototype);
    assert.equal(context.polluted, undefined);
    assert.equal(context.source, "me");
    assert.deepEqual(normaliseContext({ source: "hub", destination: "me", b: 2 }), { source: "me", b: 2 });
  });

    it("ids are random and distinct, across refills of the random pool", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) ids.add(newRequestId());
    assert.equal(ids.size, 1000);
    for (const id of ids) assert.match(id, /^thalovant-request-[0-9a-f]{32}$/);
    assert.match(connectionSessionId(), /^thalovant-node-[0-9a-f]{32}$/);
  });
});

describe("inbound events", () => {
  it("normalises contexts and reads text, ids, lang and display items", () => {
    assert.deepEqual(normaliseContext({ destination: "me", hivemind_verified_source_peer: "x", a: 1 }), { source: "me", a: 1 });
    const speak = new ThalovantEvent("speak", { utterance: "<b>Hi</b>  there", rich_media: JSON.stringify({ buttons: ["Yes", { label: "No", value: "n" }] }) }, { session: { request_id: "r", lang: "en" } });
    assert.equal(speak.text, "<b>Hi</b>  there");
    assert.equal(speak.requestId, "r");
    assert.equal(speak.lang, "en");
    assert.deepEqual(speak.displayItems(), [
      { kind: "text", text: "Hi there", silent: false },
      { kind: "choices", choices: [{ title: "Yes", payload: "Yes" }, { title: "No", payload: "n" }] },
    ]);
    const broadcast = new HiveMessage("broadcast", { msg_type: "bus", payload: { type: "speak", data: {} } }, {}, [], null, "site");
    assert.equal(busOf(broadcast, "site")?.type, "speak");
    assert.equal(busOf(broadcast, "other"), undefined);
  });
});

describe("reply collection", () => {
  it("speech settles the reply; repeats are dropped; handled ends it", async () => {
    const collector = new ReplyCollector("rid", "sid", 50);
    const result = collector.result(1000);
    collector.feed(event("speak", { utterance: "One." }));
    collector.feed(event("speak", { utterance: "One." }));
    collector.feed(event("speak", { utterance: "Two." }));
    collector.feed(event("ovos.utterance.handled"));
    const reply = await result;
    assert.equal(reply.text, "One. Two.");
    assert.equal(reply.handled, true);
    assert.deepEqual(reply.displayItems(), []);
    assert.deepEqual(reply.toJSON(), { text: "One. Two.", request_id: "rid", session_id: "sid", lang: null, handled: true, display_items: [] });
  });

  it("handled without speech, unmatched, denied, timeout: each its typed error", async () => {
    const handled = new ReplyCollector("rid", "sid", 0, 20);
    const h = handled.result(1000);
    handled.feed(event("ovos.utterance.handled"));
    await assert.rejects(h, (e: unknown) => e instanceof ThalovantTimeoutError && /did not emit a speak/.test(e.message));
    const unmatched = new ReplyCollector("rid", "sid", 0, 20);
    const u = unmatched.result(1000);
    unmatched.feed(event("ovos.intent.unmatched", { utterance: "blorp" }));
    await assert.rejects(u, (e: unknown) => e instanceof ThalovantUnansweredError && e.said === "blorp");
    const denied = new ReplyCollector("rid", "sid", 0);
    const d = denied.result(1000);
    denied.feed(event("hive.policy.denied", { denied_type: "recognizer_loop:utterance", code: "intent_quota_exceeded", data: { period: "daily", limit: 5, used: 5.5 } }));
    await assert.rejects(d, (e: unknown) => {
      assert.ok(e instanceof ThalovantPolicyDeniedError && e instanceof ThalovantRuntimeError);
      assert.deepEqual(e.quota, { period: "daily", limit: 5, used: 0, resetAfter: undefined });
      return true;
    });
    const silent = new ReplyCollector("rid", "sid", 0);
    await assert.rejects(silent.result(20), ThalovantTimeoutError);
    const dropped = new ReplyCollector("rid", "sid", 0);
    const a = dropped.result(1000);
    dropped.abort(new ThalovantConnectionError("gone"));
    await assert.rejects(a, ThalovantConnectionError);
  });

  it("only an ask with nothing received for it yet can be ended to be sent again", async () => {
    const unanswered = new ReplyCollector("rid", "sid", 0);
    const u = unanswered.result(1000);
    assert.equal(unanswered.abortIfUnanswered(new SendAgain("again")), true);
    await assert.rejects(u, SendAgain);
    for (const first of [event("ovos.utterance.handled"), event("mycroft.audio.queue", { binary_data: "00" }), event("speak", { utterance: "One." })]) {
      const answered = new ReplyCollector("rid", "sid", 1000);
      const a = answered.result(1000);
      answered.feed(first);
      assert.equal(answered.abortIfUnanswered(new SendAgain("again")), false, first.name);
      answered.abort(new ThalovantConnectionError("gone"));
      if (first.name === "speak") assert.equal((await a).text, "One.");
      else await assert.rejects(a, ThalovantConnectionError);
    }
  });
});

describe("the end of a link", () => {
  /** A link on a stand-in carrier: `parts` transport messages per envelope, sends failing from the `failAt`-th part (0: the first). */
  function standIn(parts: number, failAt: number, code: number): { link: Link; endRead: (error: Error) => void; lost: Promise<ThalovantError> } {
    let endRead: (error: Error) => void = () => undefined;
    let sent = 0;
    const carrier = {
      alive: true,
      receive: () => new Promise<never>((_, reject) => (endRead = reject)),
      takeReady: () => undefined,
      sendBinary: async () => {
        if (sent++ >= failAt) throw new CarrierClosed(`The hub closed the WebSocket (${code}).`, { code });
      },
      close: async () => undefined,
    } as unknown as Carrier;
    const channel = { sealJson: () => Array.from({ length: parts }, () => new Uint8Array(1)), open: () => undefined } as unknown as SecureChannel;
    const link = new Link(carrier, channel, "KKpsk0", "sid", undefined, NO_TIMINGS, []);
    const lost = new Promise<ThalovantError>((resolve) => {
      let calls = 0;
      link.onLost = (error) => {
        calls += 1;
        assert.equal(calls, 1, "onLost is called once");
        resolve(error);
      };
    });
    link.start();
    return { link, endRead: (error) => endRead(error), lost };
  }

  it("a read ended by a close keeps its code; a later send puts nothing out", async () => {
    const { link, endRead, lost } = standIn(1, 0, 1012);
    endRead(new CarrierClosed("The hub closed the WebSocket (1012).", { code: 1012 }));
    assert.ok((await lost) instanceof ThalovantConnectionError);
    assert.equal(link.closeCode, 1012);
    await assert.rejects(link.sendEnvelope(HiveMessage.bus("x", {}, {})), LinkNotSent);
  });

  it("a send the carrier took nothing of is LinkNotSent and ends the link with the close code", async () => {
    const { link, lost } = standIn(2, 0, 1001);
    await assert.rejects(link.sendEnvelope(HiveMessage.bus("x", {}, {})), LinkNotSent);
    await lost;
    assert.equal(link.closeCode, 1001);
    assert.equal(link.alive, false);
  });

  it("a send that failed part way is a plain connection error (something went out)", async () => {
    const { link } = standIn(2, 1, 1006);
    await assert.rejects(link.sendEnvelope(HiveMessage.bus("x", {}, {})), (e: unknown) => e instanceof ThalovantConnectionError && !(e instanceof LinkNotSent));
  });
});

describe("typed errors", () => {
  it("mirror the Python hierarchy", () => {
    assert.ok(new ThalovantClientKeyRejectedError("x") instanceof ThalovantHubRefusedError);
    assert.ok(new ThalovantHubRefusedError("x") instanceof ThalovantConnectionError);
    assert.ok(new ThalovantAPIUnreachableError() instanceof ThalovantConnectionError);
    assert.ok(!(new ThalovantHubRefusedError("x") instanceof ThalovantAPIUnreachableError));
    assert.ok(new ThalovantTimeoutError("x") instanceof ThalovantError);
    assert.equal(new ThalovantHubRefusedError("x").name, "ThalovantHubRefusedError");
  });
});

describe("the package", () => {
  it("declares the version the SDK reports, and both entry points", async () => {
    const { readFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { PACKAGE_ROOT } = await import("./helpers/paths.js");
    const { VERSION } = await import("../src/index.js");
    const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string; exports: Record<string, unknown> };
    assert.equal(manifest.version, VERSION);
    assert.deepEqual(Object.keys(manifest.exports["."] as object), ["types", "browser", "default"]);
  });
});
