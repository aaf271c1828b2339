#!/usr/bin/env node
// Ask latency and connect time: the Node.js SDK beside the Python SDK, on one hub, in one run.
//
//   node sdk/node/bench/ask.mjs [--n 300] [--warmup 20] [--chunk 25] [--connects 3] [--protocol wss] [--json]
//
// It starts `thalovant-server serve --demo` (the repository's .venv) on free 127.0.0.1 ports in a
// temporary folder, and drives both SDKs against it: the Node.js SDK in this process, the
// repository's Python SDK (`AsyncThalovantClient`, as bench/sdk_ask.py and bench/harness.py
// measure it) in a child process that takes its orders on standard input. The two take turns, so a
// change of load on the machine hits both alike:
//
// - connect: `--connects` times each, alternating, a first contact with a fresh identity of the
//   demo hub (XXpsk2 with the argon2id PSK derivation: no cached PSK, no pins);
// - asks: `--warmup` asks each, then chunks of `--chunk` sequential `ask("Tell me a joke.")`,
//   alternating, until each SDK has `--n` timed asks (reply settle window 0).
//
// It prints each SDK's median and p99 ask latency and median connect time, and the ratios
// Node.js / Python (goals: ask median <= 1.0, connect <= 1.5).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { ThalovantClient, ThalovantControlPlane } from "@thalovant/sdk";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const PYTHON = join(REPO, ".venv", "bin", "python");
const SERVER = join(REPO, ".venv", "bin", "thalovant-server");
const TRUST = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"];

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "300" },
    warmup: { type: "string", default: "20" },
    protocol: { type: "string", default: "wss" },
    chunk: { type: "string", default: "25" },
    connects: { type: "string", default: "3" },
    text: { type: "string", default: "Tell me a joke." },
    json: { type: "boolean", default: false },
  },
});
const N = Number(values.n);
const WARMUP = Number(values.warmup);
const CHUNK = Number(values.chunk);
const CONNECTS = Number(values.connects);

function freePort() {
  return new Promise((done) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
      server.close(() => done(port));
    });
  });
}

/** @param {number[]} values @param {number} q */
function percentile(values, q) {
  if (values.length === 0) return undefined;
  const ordered = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((q / 100) * ordered.length));
  return ordered[Math.min(rank, ordered.length) - 1];
}

/** @param {number[]} values */
function median(values) {
  if (values.length === 0) return undefined;
  const ordered = [...values].sort((a, b) => a - b);
  const middle = Math.floor(ordered.length / 2);
  return ordered.length % 2 ? ordered[middle] : ((ordered[middle - 1] ?? 0) + (ordered[middle] ?? 0)) / 2;
}

/**
 * @typedef {{ child: import("node:child_process").ChildProcess, apiUrl: string, caFile: string, password: string }} Server
 * @typedef {{ connects: number[], times: number[], errors: number, patterns: Set<string | undefined> }} Row
 */

/** Start `serve --demo`; resolves once it prints its API URL. @param {string} folder @returns {Promise<Server>} */
async function startServer(folder) {
  const port = await freePort();
  const mqttPort = await freePort();
  const password = `bench-${Math.random().toString(36).slice(2)}`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("THALOVANT_")));
  const child = spawn(
    SERVER,
    ["serve", "--data-dir", join(folder, "data"), "--host", "127.0.0.1", "--port", String(port), "--mqtt-port", String(mqttPort), "--demo"],
    { env: { ...env, THALOVANT_DEMO_PASSWORD: password }, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  child.stderr.resume();
  await new Promise((ready, fail) => {
    let seen = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      seen += chunk;
      if (seen.includes("Thalovant API: ")) ready(undefined);
    });
    child.on("exit", (code) => fail(new Error(`the server exited (${code}) before it was ready:\n${seen}`)));
  });
  child.stdout.resume();
  return { child, apiUrl: `https://127.0.0.1:${port}`, caFile: join(folder, "data", "ca.pem"), password };
}

/** @param {Server} server @param {string} folder @param {string} name */
async function newIdentityFile(server, folder, name) {
  const api = new ThalovantControlPlane({ apiUrl: server.apiUrl });
  try {
    await api.login("demo@example.com", server.password);
    const hub = await api.getPublicHub("joke-garden");
    const result = await api.createClientIdentity(hub.id, { name, preferredProtocols: [values.protocol] });
    return await result.identity.save(join(folder, name, "identity.json"));
  } finally {
    await api.close();
  }
}

const PYTHON_DRIVER = `
import asyncio, json, sys, time
from thalovant import ThalovantIdentity
from thalovant.client import AsyncThalovantClient

async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client = None
    while True:
        line = (await reader.readline()).decode().strip()
        if not line:
            break
        order, first, second = line.split(" ", 2)
        if order == "connect":
            if client is not None:
                await client.close()
            client = AsyncThalovantClient(ThalovantIdentity.from_file(first), protocol=second, reply_settle_seconds=0)
            started = time.perf_counter()
            await client.connect()
            print(json.dumps({"connect_ms": (time.perf_counter() - started) * 1000,
                              "pattern": client.connection_info().noise_pattern}), flush=True)
        else:
            times, errors = [], 0
            for _ in range(int(first)):
                started = time.perf_counter()
                try:
                    await client.ask(second, timeout=10)
                except Exception:
                    errors += 1
                    continue
                times.append((time.perf_counter() - started) * 1000)
            print(json.dumps({"times": times, "errors": errors}), flush=True)
    if client is not None:
        await client.close()

asyncio.run(main())
`;

/** The Python SDK in a child process: one order per line on its stdin, one JSON answer per line. */
class PythonSdk {
  /** @param {string} caFile */
  constructor(caFile) {
    const env = { ...process.env };
    for (const name of TRUST) env[name] = caFile;
    this.child = spawn(PYTHON, ["-c", PYTHON_DRIVER], { env, stdio: ["pipe", "pipe", "pipe"] });
    /** @type {string[]} */
    this.lines = [];
    /** @type {((line: string) => void) | undefined} */
    this.waiter = undefined;
    this.errors = "";
    let pending = "";
    this.child.stderr.setEncoding("utf8").on("data", (chunk) => (this.errors += chunk));
    this.child.stdout.setEncoding("utf8").on("data", (chunk) => {
      pending += chunk;
      let at;
      while ((at = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, at);
        pending = pending.slice(at + 1);
        const waiter = this.waiter;
        this.waiter = undefined;
        if (waiter) waiter(line);
        else this.lines.push(line);
      }
    });
    this.exited = new Promise((done) => this.child.on("exit", done));
  }

  /** @param {string} order @returns {Promise<any>} */
  async send(order) {
    this.child.stdin.write(`${order}\n`);
    const line = this.lines.shift() ?? (await Promise.race([
      new Promise((done) => (this.waiter = done)),
      this.exited.then(() => Promise.reject(new Error(`the Python SDK driver exited:\n${this.errors}`))),
    ]));
    return JSON.parse(String(line));
  }

  async close() {
    this.child.stdin.end();
    await this.exited;
  }
}

/** The Node.js SDK in this process, with the same orders. */
class NodeSdk {
  constructor() {
    /** @type {ThalovantClient | undefined} */
    this.client = undefined;
  }

  /** @param {string} identityFile */
  async connect(identityFile) {
    await this.client?.close();
    this.client = await ThalovantClient.fromIdentityFile(identityFile, { protocol: values.protocol, replySettleMs: 0 });
    const started = performance.now();
    await this.client.connect();
    return { connect_ms: performance.now() - started, pattern: this.client.connectionInfo().noisePattern };
  }

  /** @param {number} n */
  async asks(n) {
    const client = /** @type {ThalovantClient} */ (this.client);
    /** @type {number[]} */
    const times = [];
    let errors = 0;
    for (let i = 0; i < n; i++) {
      const started = performance.now();
      try {
        await client.ask(values.text, { timeoutMs: 10_000 });
      } catch {
        errors += 1;
        continue;
      }
      times.push(performance.now() - started);
    }
    return { times, errors };
  }

  async close() {
    await this.client?.close();
  }
}

const folder = mkdtempSync(join(tmpdir(), "thalovant-node-bench-"));
process.env.SSL_CERT_FILE = join(folder, "data", "ca.pem"); // this process trusts the dev CA for the API and the hub
const server = await startServer(folder);
/** @returns {Row} */
const emptyRow = () => ({ connects: [], times: [], errors: 0, patterns: new Set() });
/** @type {Record<"node" | "python", Row>} */
const results = { node: emptyRow(), python: emptyRow() };
const node = new NodeSdk();
const python = new PythonSdk(server.caFile);
try {
  for (let round = 0; round < CONNECTS; round++) {
    /** @type {("node" | "python")[]} */
    const order = round % 2 === 0 ? ["node", "python"] : ["python", "node"];
    for (const sdk of order) {
      const identity = await newIdentityFile(server, folder, `bench-${sdk}-${round}`);
      const answer = sdk === "node" ? await node.connect(identity) : await python.send(`connect ${identity} ${values.protocol}`);
      results[sdk].connects.push(answer.connect_ms);
      results[sdk].patterns.add(answer.pattern);
    }
  }
  await node.asks(WARMUP);
  await python.send(`ask ${WARMUP} ${values.text}`);
  for (let done = 0; done < N; done += CHUNK) {
    const size = Math.min(CHUNK, N - done);
    for (const sdk of /** @type {const} */ (["node", "python"])) {
      const answer = sdk === "node" ? await node.asks(size) : await python.send(`ask ${size} ${values.text}`);
      results[sdk].times.push(...answer.times);
      results[sdk].errors += answer.errors;
    }
  }
} finally {
  await node.close();
  await python.close();
  try {
    process.kill(-(server.child.pid ?? 0), "SIGTERM");
  } catch {
    // already gone
  }
  await new Promise((done) => server.child.once("exit", done));
  rmSync(folder, { recursive: true, force: true });
}

/** @param {Row} row */
function summarise(row) {
  return {
    connect_ms: Number(median(row.connects)?.toFixed(1)),
    connects_ms: row.connects.map((value) => Number(value.toFixed(1))),
    median_ms: Number(median(row.times)?.toFixed(3)),
    p99_ms: Number(percentile(row.times, 99)?.toFixed(3)),
    asks: row.times.length,
    errors: row.errors,
    noise_pattern: [...row.patterns].join(","),
  };
}
const summary = { node: summarise(results.node), python: summarise(results.python) };
/** @param {number} a @param {number} b */
const ratio = (a, b) => (a && b ? Number((a / b).toFixed(3)) : null);
const report = {
  protocol: values.protocol,
  n: N,
  connects: CONNECTS,
  node: summary.node,
  python: summary.python,
  ratio_ask_median: ratio(summary.node.median_ms, summary.python.median_ms),
  ratio_connect: ratio(summary.node.connect_ms, summary.python.connect_ms),
};
if (values.json) {
  console.log(JSON.stringify(report));
} else {
  console.log(`${values.protocol}: ${N} asks per SDK in chunks of ${CHUNK}, taking turns (settle 0); connect = median of ${CONNECTS} first contacts (XXpsk2 + argon2id)`);
  console.log(`${"".padEnd(8)} ${"connect ms".padStart(11)} ${"ask median ms".padStart(14)} ${"ask p99 ms".padStart(11)}  pattern  errors`);
  for (const sdk of /** @type {const} */ (["node", "python"])) {
    const row = summary[sdk];
    console.log(
      `${sdk.padEnd(8)} ${String(row.connect_ms).padStart(11)} ${String(row.median_ms).padStart(14)} ${String(row.p99_ms).padStart(11)}  ${row.noise_pattern.padEnd(8)} ${row.errors}`,
    );
  }
  console.log(`ratios node/python: ask median ${report.ratio_ask_median} (goal <= 1.0), connect ${report.ratio_connect} (goal <= 1.5)`);
}
process.exitCode = summary.node.errors === 0 && summary.python.errors === 0 ? 0 : 1;
