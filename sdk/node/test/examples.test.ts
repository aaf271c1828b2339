/**
 * Every Node.js snippet of the guide is a runnable example; each runs against the testbed's
 * `serve --demo` on all three carriers and prints what the guide promises.
 */

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { ThalovantIdentity } from "../src/index.js";
import { runExample, runNode } from "./helpers/run.js";
import { tempFolder, testbed } from "./helpers/testbed.js";

const JOKE = "Why did the hub keep good logs? It wanted every punchline to be traceable.";
const CAPABILITIES = "This hub can answer quick joke and trivia requests.";

function exampleEnv(home: string): Record<string, string> {
  const bed = testbed();
  return {
    THALOVANT_API_URL: bed.demo.api_url,
    THALOVANT_EMAIL: bed.demo.email,
    THALOVANT_PASSWORD: bed.demo.password,
    HOME: home,
    XDG_CONFIG_HOME: join(home, "config"),
  };
}

for (const protocol of ["wss", "https", "mqtt"]) {
  describe(`the guide's examples over ${protocol}`, () => {
    const home = tempFolder();
    const env = exampleEnv(home);
    const identityFile = join(home, "identity.json");

    it("quickstart: creates an identity and prints the joke", async () => {
      const name = `node-demo-client-${protocol}-${Date.now().toString(36)}`;
      const out = await runExample("quickstart", ["--protocol", protocol, "--name", name, "--save", identityFile], { env });
      assert.equal(out.at(-1), JOKE);
    });

    it("runtime basics: healthy, and the capabilities answer", async () => {
      const out = await runExample("runtime_basics", ["--identity", identityFile, "--protocol", protocol], { env });
      assert.match(out[0] ?? "", new RegExp(`^health: ok protocol=${protocol} connected=true handshake_complete=true transport_alive=true noise=KKpsk0`));
      assert.equal(out[1], CAPABILITIES);
      assert.deepEqual(JSON.parse(out.at(-1) ?? ""), { text: CAPABILITIES, display_items: [] });
    });

    it("emit and inputs: every send goes out", async () => {
      const out = await runExample("emit_and_inputs", ["--identity", identityFile, "--protocol", protocol], { env });
      assert.deepEqual(out, ["emitted thalovant.client.status", "sent utterance", "sent action", "sent code"]);
    });

    it("conversation: the second turn remembers blue", async () => {
      const out = await runExample("conversation", ["--identity", identityFile, "--protocol", protocol], { env });
      assert.equal(out.length, 2);
      assert.match(out[1] ?? "", /blue/i);
    });

    it("events: the handled event, then three spoken answers", async () => {
      const out = await runExample("events", ["--identity", identityFile, "--protocol", protocol], { env });
      assert.equal(out[0], "handled: ovos.utterance.handled");
      assert.equal(out.length, 4);
      assert.ok(out.slice(1).every((line) => line.trim() !== "" && line !== "undefined"), out.join("\n"));
      assert.ok(out.includes(CAPABILITIES), out.join("\n"));
    });

    it("context: the request with context is answered", async () => {
      const out = await runExample("context", ["--identity", identityFile, "--protocol", protocol], { env });
      assert.equal(out.length, 1);
      assert.ok(out[0]?.trim());
    });

    it("doctor: every check passes", async () => {
      const out = await runExample("doctor", ["--identity", identityFile, "--protocol", protocol], { env });
      for (const name of ["identity", "endpoint", "tls", "handshake", "round trip"]) {
        assert.ok(out.some((line) => line.startsWith("[  ok]") && line.includes(name)), `${name}:\n${out.join("\n")}`);
      }
      assert.ok(out.includes("doctor: all checks passed"));
    });
  });
}

describe("the guide's control-plane and identity examples", () => {
  const home = tempFolder();
  const env = exampleEnv(home);

  it("discover hubs: public list, public ref, workspace hubs, one hub, a new identity", async () => {
    const out = await runExample("discover_hubs", ["--name", `checkout-kiosk-${Date.now().toString(36)}`], { env });
    const listed = out.find((line) => line.split(" ")[1] === testbed().demo.hub_slug);
    assert.ok(listed, out.join("\n"));
    const hubId = listed.split(" ")[0] as string;
    assert.match(out.find((line) => line.startsWith("Joke Garden hub_")) ?? "", /^Joke Garden hub_\w+$/);
    assert.ok(out.includes(`${hubId} Joke Garden`), out.join("\n"));
    assert.equal(out.at(-2), "Joke Garden");
    assert.match(out.at(-1) ?? "", /^checkout-kiosk-\w+ wss$/);
  });

  it("identity protocols: config profile, file and environment agree", async () => {
    const quickstartIdentity = join(home, "made.json");
    await runExample("quickstart", ["--name", `node-identity-${Date.now().toString(36)}`, "--save", quickstartIdentity], { env });
    const identity = await ThalovantIdentity.fromFile(quickstartIdentity);
    const data = identity.asDict(true);
    const work = tempFolder();
    writeFileSync(join(work, "_identity.json"), JSON.stringify(data), { mode: 0o600 });
    const configDir = join(env.XDG_CONFIG_HOME as string, "thalovant");
    await import("node:fs/promises").then((fs) => fs.mkdir(configDir, { recursive: true }));
    const yaml = `profiles:\n  prod:\n    identity: ${JSON.stringify(data)}\n`;
    writeFileSync(join(configDir, "config.yaml"), yaml, { mode: 0o600 });
    const variables = {
      THALOVANT_ACCESS_KEY: identity.accessKey,
      THALOVANT_PASSWORD: identity.password,
      THALOVANT_SITE_ID: identity.siteId,
      THALOVANT_HUB_HTTP_HOST: identity.defaultMaster,
      THALOVANT_HUB_HTTP_PORT: String(identity.defaultPort),
      THALOVANT_HUB_WSS_HOST: identity.endpointFor("wss"),
    };
    const out = await runExample("identity_protocols", [], { env: { ...env, ...variables }, cwd: work });
    assert.deepEqual(out.slice(0, 5), [
      "[ 'wss', 'https', 'mqtt' ]",
      identity.endpointFor("wss"),
      identity.endpointFor("https"),
      identity.endpointFor("mqtt"),
      "true",
    ]);
    assert.equal(out[5], `${identity.mqtt?.host} ${identity.mqtt?.port}`);
    assert.equal(out[6], "true wss wss wss");
  });

  it("quickstart without credentials explains what to set", async () => {
    const ran = await runNode(join("examples", "quickstart.mjs"), [], { env: { ...env, THALOVANT_EMAIL: "", THALOVANT_PASSWORD: "" } });
    assert.equal(ran.code, 2);
    assert.match(ran.stderr, /THALOVANT_EMAIL/);
  });
});
