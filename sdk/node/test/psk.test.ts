/** argon2id: the native `@node-rs/argon2` and `hash-wasm` give the same PSKs; the host falls back to the worker. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ThalovantError } from "../src/errors.js";
import { nodePlatform, nativeDerivation, workerDerivation } from "../src/platform/node.js";
import { nativeArgon2, NativeArgon2Loader } from "../src/platform/node-argon2.js";
import { toHex } from "../src/protocol/bytes.js";
import { HandshakeError } from "../src/protocol/errors.js";
import { derivePsk, directDerivation, pskDeriverWith, type Argon2id, type PskDerivation } from "../src/protocol/psk.js";
import { vectors } from "./helpers/paths.js";

const cases = vectors<{ psk: { cases: { password: string; node_id: string; psk: string }[] } }>("noise-vectors.json").psk.cases;
const first = cases.find((c) => c.password !== "") ?? (cases[0] as (typeof cases)[number]);

/** A fallback that counts its uses and derives on `hash-wasm` in this thread. */
function countingFallback(): { make: () => PskDerivation; made: () => number } {
  let made = 0;
  return {
    make: () => {
      made += 1;
      return directDerivation(derivePsk);
    },
    made: () => made,
  };
}

describe("argon2id in Node.js", () => {
  it("the native module loads here (the lockfile installs it for this platform)", async () => {
    const argon2 = await nativeArgon2.load();
    assert.equal(nativeArgon2.loadError, undefined);
    assert.equal(typeof argon2, "function");
  });

  for (const [index, c] of cases.entries()) {
    it(`vector ${index}: native and hash-wasm agree, byte for byte, with the reference`, async () => {
      const argon2 = (await nativeArgon2.load()) as Argon2id;
      const native = await pskDeriverWith(argon2)(c.password, c.node_id);
      const wasm = await derivePsk(c.password, c.node_id);
      assert.ok(native instanceof Uint8Array);
      assert.equal(toHex(native), toHex(wasm));
      assert.equal(toHex(native), c.psk);
    });
  }

  it("the host's derivation is the native one and matches the reference", async () => {
    const fallback = countingFallback();
    const derivation = nativeDerivation(nativeArgon2, fallback.make);
    assert.equal(toHex(await derivation.derive(first.password, first.node_id)), first.psk);
    assert.equal(fallback.made(), 0);
    const platformDerivation = nodePlatform.startPskDerivation();
    assert.equal(toHex(await platformDerivation.derive(first.password, first.node_id)), first.psk);
  });

  it("falls back to hash-wasm when the native module cannot load", async () => {
    const loader = new NativeArgon2Loader(() => Promise.reject(new Error("no binary for this platform")));
    const fallback = countingFallback();
    const derivation = nativeDerivation(loader, fallback.make);
    assert.equal(toHex(await derivation.derive(first.password, first.node_id)), first.psk);
    assert.equal(fallback.made(), 1);
    assert.match(loader.loadError?.message ?? "", /no binary/);
  });

  it("falls back to the hash-wasm worker thread, the same bytes", async () => {
    const loader = new NativeArgon2Loader(() => Promise.reject(new Error("missing")));
    const derivation = nativeDerivation(loader, workerDerivation);
    assert.equal(toHex(await derivation.derive(first.password, first.node_id)), first.psk);
  });

  it("falls back when the native computation fails", async () => {
    const loader = new NativeArgon2Loader(async () => ({ hashRaw: () => Promise.reject(new Error("out of memory")) }));
    const fallback = countingFallback();
    const derivation = nativeDerivation(loader, fallback.make);
    assert.equal(toHex(await derivation.derive(first.password, first.node_id)), first.psk);
    assert.equal(fallback.made(), 1);
  });

  it("refuses lone surrogates on the native path as on hash-wasm", async () => {
    const fallback = countingFallback();
    const derivation = nativeDerivation(nativeArgon2, fallback.make);
    await assert.rejects(derivation.derive("bad\uD800", "node"), HandshakeError);
    await assert.rejects(derivePsk("bad\uD800", "node"), HandshakeError);
    assert.equal(fallback.made(), 0);
  });

  it("a cancelled derivation derives nothing", async () => {
    const fallback = countingFallback();
    const derivation = nativeDerivation(nativeArgon2, fallback.make);
    derivation.cancel();
    await assert.rejects(derivation.derive(first.password, first.node_id), ThalovantError);
  });
});
