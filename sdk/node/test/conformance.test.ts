/** The repository's conformance vectors (noise, WIRE-1 frames, API errors) in Node.js. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { fromBase64, fromHex, toHex, utf8 } from "../src/protocol/bytes.js";
import { buildPrologue, canonicalJsonText } from "../src/protocol/canonical.js";
import { CipherState, type NoiseSuite } from "../src/protocol/noise.js";
import { selectNoise } from "../src/protocol/negotiation.js";
import { derivePsk } from "../src/protocol/psk.js";
import { decodeFrame, encodeBinary, encodeJson, payloadTypeName } from "../src/protocol/wire1.js";
import { apiErrorFromResponse, ThalovantAPIError } from "../src/errors.js";
import { vectors } from "./helpers/paths.js";

interface NoiseVectors {
  psk: { cases: { password: string; node_id: string; psk: string }[] };
  transport: {
    key: string;
    plaintext_utf8: string;
    cases: { suite: NoiseSuite; counter: number; nonce: string; ciphertext: string }[];
  };
  canonical_json: { input: unknown; output: string }[];
  prologue: {
    hello: Record<string, unknown>;
    handshake: Record<string, unknown>;
    protocol_name: string;
    bytes: string;
  };
  selection: { patterns: string[]; suites: string[]; pinned: boolean; expect: [string, string] | null }[];
}

const noise = vectors<NoiseVectors>("noise-vectors.json");

describe("noise-vectors.json", () => {
  for (const [index, c] of noise.psk.cases.entries()) {
    it(`psk case ${index}: argon2id matches the reference`, async () => {
      assert.equal(toHex(await derivePsk(c.password, c.node_id)), c.psk);
    });
  }

  for (const c of noise.transport.cases) {
    it(`transport ${c.suite} at counter ${c.counter} encrypts and decrypts as the reference`, () => {
      const key = fromHex(noise.transport.key) as Uint8Array;
      const sender = new CipherState(c.suite, key);
      sender.counter = BigInt(c.counter);
      assert.equal(toHex(sender.encrypt(utf8(noise.transport.plaintext_utf8))), c.ciphertext);
      const receiver = new CipherState(c.suite, key);
      receiver.counter = BigInt(c.counter);
      assert.deepEqual(receiver.decrypt(fromHex(c.ciphertext) as Uint8Array), utf8(noise.transport.plaintext_utf8));
      assert.equal(receiver.counter, BigInt(c.counter + 1));
    });
  }

  for (const [index, c] of noise.canonical_json.entries()) {
    it(`canonical JSON case ${index}`, () => {
      assert.equal(canonicalJsonText(c.input), c.output);
    });
  }

  it("prologue bytes", () => {
    const p = noise.prologue;
    assert.equal(toHex(buildPrologue(p.hello, p.handshake, p.protocol_name)), p.bytes);
  });

  for (const [index, c] of noise.selection.entries()) {
    it(`selection case ${index}`, () => {
      const offer = { patterns: c.patterns, suites: c.suites };
      if (c.expect === null) {
        assert.throws(() => selectNoise(offer, c.pinned), /No supported Noise pattern/);
      } else {
        assert.deepEqual(selectNoise(offer, c.pinned), c.expect);
      }
    });
  }
});

interface FrameVectors {
  cases: {
    name: string;
    frame: string;
    expected_kind: string;
    expected_metadata: Record<string, unknown>;
    expected_payload: string;
  }[];
  bus_frame: string;
}

const frames = vectors<FrameVectors>("binary-frames.json");

describe("binary-frames.json", () => {
  for (const c of frames.cases) {
    it(`decodes: ${c.name}`, () => {
      const decoded = decodeFrame(fromBase64(c.frame) as Uint8Array);
      assert.equal(decoded.msgType, "bin");
      assert.equal(decoded.kind, c.expected_kind);
      assert.deepEqual(decoded.metadata, c.expected_metadata);
      assert.deepEqual(decoded.payload, fromBase64(c.expected_payload));
    });
    it(`encodes byte for byte, or reads back when compressed: ${c.name}`, () => {
      const decoded = decodeFrame(fromBase64(c.frame) as Uint8Array);
      const encoded = encodeBinary(fromBase64(c.expected_payload) as Uint8Array, decoded.binType as number, {
        metadata: c.expected_metadata,
      });
      if (decoded.compressed) {
        // zlib streams differ between deflate implementations; the frame must read back the same
        const again = decodeFrame(encoded);
        assert.deepEqual([again.kind, again.metadata, again.payload], [decoded.kind, decoded.metadata, decoded.payload]);
      } else {
        assert.equal(toHex(encoded), toHex(fromBase64(c.frame) as Uint8Array));
      }
    });
  }
  it("the binarized bus frame reads as a bus envelope and encodes byte for byte", () => {
    const wire = fromBase64(frames.bus_frame) as Uint8Array;
    assert.equal(toHex(wire.subarray(0, 5)), "c042027b7d");
    const decoded = decodeFrame(wire);
    assert.equal(decoded.msgType, "bus");
    assert.equal(decoded.version, 1);
    assert.equal(decoded.compressed, false);
    assert.deepEqual(decoded.metadata, {});
    assert.deepEqual(decoded.payload, { type: "speak", data: { utterance: "Pfffft." } });
    assert.equal(decoded.kind, undefined);
    assert.deepEqual(decoded.toEnvelope().busMessage().data, { utterance: "Pfffft." });
    assert.equal(toHex(encodeJson("bus", { type: "speak", data: { utterance: "Pfffft." } }, { metadata: {} })), toHex(wire));
  });
});

interface BinaryVectors {
  cases: {
    name: string;
    bin_type: number;
    metadata: Record<string, unknown>;
    expected: { kind: string; utterance: string | null; lang: string | null; file_name: string | null };
  }[];
  unnamed_kind_names: Record<string, string>;
}

const binary = vectors<BinaryVectors>("binary-vectors.json");

describe("binary-vectors.json", () => {
  for (const c of binary.cases) {
    it(c.name, () => {
      const frame = decodeFrame(encodeBinary(utf8("payload"), c.bin_type, { metadata: c.metadata }));
      assert.equal(frame.kind, c.expected.kind);
      assert.equal(frame.utterance ?? null, c.expected.utterance);
      assert.equal(frame.lang ?? null, c.expected.lang);
      assert.equal(frame.fileName ?? null, c.expected.file_name);
    });
  }
  for (const [number, name] of Object.entries(binary.unnamed_kind_names)) {
    it(`payload type ${number} is named ${name}`, () => {
      assert.equal(payloadTypeName(Number(number)), name);
    });
  }
});

interface ApiErrorVectors {
  cases: {
    name: string;
    response: { status: number; content_type: string; body: string };
    expect: { status: number; code: string | null; detail: string | null; problem: unknown };
    message_excludes?: string[];
  }[];
}

const apiErrors = vectors<ApiErrorVectors>("api-error-vectors.json");

describe("api-error-vectors.json", () => {
  for (const c of apiErrors.cases) {
    it(c.name, () => {
      const error = apiErrorFromResponse(c.response.status, c.response.body, { "content-type": c.response.content_type });
      assert.ok(error instanceof ThalovantAPIError);
      assert.equal(error.status, c.expect.status);
      assert.equal(error.code ?? null, c.expect.code);
      assert.equal(error.detail ?? null, c.expect.detail);
      assert.deepEqual(error.problem ?? null, c.expect.problem);
      for (const secret of c.message_excludes ?? []) {
        assert.ok(!error.message.includes(secret), `message repeats ${secret}`);
        assert.ok(!String(error).includes(secret), `string form repeats ${secret}`);
      }
    });
  }
});
