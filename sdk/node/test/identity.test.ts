/** Identities (dataplane.md 1.1-1.5), config profiles and the Noise state folder (1.8), without a hub. */

import assert from "node:assert/strict";
import { chmodSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import { FileNoiseStore, ThalovantIdentity, ThalovantIdentityError, ThalovantUnsupportedProtocolError } from "../src/index.js";
import { httpsPinId, LocalStorageNoiseStore, MemoryNoiseStore, NoiseStateError, pskCacheKey, wssPinId } from "../src/noise-store.js";
import { tempFolder } from "./helpers/testbed.js";

const BASE = { access_key: "key-1", password: "pw", site_id: "site-1", default_master: "https://hub.example.com" };

describe("identity material", () => {
  it("accepts the aliases, keeps the port rule and never shows secrets", () => {
    const identity = ThalovantIdentity.fromMapping({ apiKey: " key-1 ", password: "pw", host: "https://hub.example.com/", siteId: "s", port: "443", path: "a//b/" });
    assert.equal(identity.accessKey, "key-1");
    assert.equal(identity.defaultMaster, "https://hub.example.com");
    assert.equal(identity.defaultPort, 443);
    assert.equal(identity.defaultPath, "/a/b");
    assert.equal(identity.endpointBase(), "https://hub.example.com:443/a/b");
    assert.equal(identity.endpointFor("wss"), undefined);
    assert.ok(!String(identity).includes("key-1") && !JSON.stringify(identity).includes("pw"));
    assert.equal(ThalovantIdentity.fromMapping(BASE).defaultPort, 5679);
  });

  it("reads endpoints, protocol flags and the MQTT block", () => {
    const identity = ThalovantIdentity.fromMapping({
      ...BASE,
      default_port: 443,
      data_plane_endpoints: { https: "https://h.example/p/", ws: "wss://h.example:8443/ws", mqtt: "mqtts://broker.example:8884" },
      protocols: { wss: true, https: { enabled: "yes" }, mqtt: "off" },
      mqtt: { endpoint: "mqtts://user:secret@broker.example:8884", username: "u", password: "p", topicPrefix: "/t/x/", qos: "0" },
    });
    assert.equal(identity.endpointFor("https"), "https://h.example:443/p");
    assert.equal(identity.endpointFor("ws"), "wss://h.example:8443/ws");
    assert.deepEqual(identity.enabledProtocols(), ["wss", "https"]);
    assert.equal(identity.supportsProtocol("http"), true);
    assert.equal(identity.mqtt?.host, "broker.example");
    assert.equal(identity.mqtt?.port, 8884);
    assert.equal(identity.mqtt?.topicPrefix, "/t/x");
    assert.equal(identity.mqtt?.qos, 0);
    assert.deepEqual(identity.asDict().mqtt, { endpoint: "mqtts://broker.example:8884", tls: true });
    assert.throws(() => identity.endpointFor("smtp"), ThalovantUnsupportedProtocolError);
    assert.equal(ThalovantIdentity.fromMapping({ ...BASE, mqtt: { endpoint: "mqtts://b" } }).mqtt, undefined);
    assert.equal(ThalovantIdentity.fromMapping({ ...BASE, default_master: "wss://x.example" }).endpointFor("wss"), "wss://x.example");
  });

  it("refuses missing and malformed fields with ThalovantIdentityError", () => {
    for (const bad of [{}, { ...BASE, access_key: "" }, { ...BASE, default_port: "eighty" }, { ...BASE, default_port: true }, { ...BASE, metadata: [] }, "text"]) {
      assert.throws(() => ThalovantIdentity.fromMapping(bad), ThalovantIdentityError);
    }
    assert.throws(() => ThalovantIdentity.fromJson("{"), ThalovantIdentityError);
  });

  it("fromEnv reads the THALOVANT_* variables", () => {
    const identity = ThalovantIdentity.fromEnv({
      env: {
        THALOVANT_ACCESS_KEY: "k",
        THALOVANT_PASSWORD: "p",
        THALOVANT_SITE_ID: "s",
        THALOVANT_HUB_HTTP_HOST: "https://hub.example",
        THALOVANT_HUB_HTTP_PORT: "8443",
        THALOVANT_HUB_WSS_HOST: "wss://hub.example:8443/w",
        THALOVANT_MQTT_ENDPOINT: "mqtts://b.example",
        THALOVANT_MQTT_USERNAME: "u",
        THALOVANT_MQTT_PASSWORD: "pp",
        THALOVANT_MQTT_TOPIC_PREFIX: "t",
      },
    });
    assert.equal(identity.endpointFor("wss"), "wss://hub.example:8443/w");
    assert.equal(identity.endpointBase(), "https://hub.example:8443");
    assert.equal(identity.mqtt?.port, 8883);
    assert.throws(() => ThalovantIdentity.fromEnv({ env: {} }), /THALOVANT_ACCESS_KEY/);
  });

  it("files: saved 0600, read back, refused when readable by others", async () => {
    const folder = tempFolder();
    const file = join(folder, "sub", "identity.json");
    const identity = ThalovantIdentity.fromMapping({ ...BASE, metadata: { api_token: "t", note: "n" } });
    await identity.save(file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const loaded = await ThalovantIdentity.fromFile(file);
    assert.equal(loaded.sourcePath, file);
    assert.equal(loaded.password, "pw");
    assert.deepEqual(loaded.asDict().metadata, { api_token: "<redacted>", note: "n" });
    chmodSync(file, 0o644);
    await assert.rejects(ThalovantIdentity.fromFile(file), /too permissive/);
    await assert.rejects(ThalovantIdentity.fromFile(join(folder, "missing.json")), ThalovantIdentityError);
  });

  it("config profiles: named, selected, default, and refusals", async () => {
    const folder = tempFolder();
    const path = join(folder, "config.yaml");
    const yaml = [
      "default_profile: prod",
      "profiles:",
      "  prod:",
      "    identity:",
      `      access_key: prod-key`,
      "      password: pw",
      "      site_id: prod-site",
      "      default_master: https://prod.example",
      "  dev: {access_key: dev-key, password: pw, site_id: dev-site, default_master: 'https://dev.example'}",
      "",
    ].join("\n");
    writeFileSync(path, yaml, { mode: 0o600 });
    assert.equal((await ThalovantIdentity.fromConfig({ path })).accessKey, "prod-key");
    assert.equal((await ThalovantIdentity.fromConfig({ path, profile: "dev" })).siteId, "dev-site");
    await assert.rejects(ThalovantIdentity.fromConfig({ path, profile: "qa" }), /no profile "qa"/);
    writeFileSync(path, "a: [", { mode: 0o600 });
    await assert.rejects(ThalovantIdentity.fromConfig({ path }), /Cannot parse/);
    chmodSync(path, 0o640);
    await assert.rejects(ThalovantIdentity.fromConfig({ path }), /too permissive/);
    await assert.rejects(ThalovantIdentity.fromConfig({ path: join(folder, "none.yaml") }), /No Thalovant config file/);
  });
});

describe("the Noise state folder", () => {
  it("creates the key once (0600, folder 0700) in the spec 1.8 layout", async () => {
    const folder = join(tempFolder(), "hivemind");
    const store = new FileNoiseStore(folder);
    const key = await store.staticKey();
    assert.deepEqual((await new FileNoiseStore(folder).staticKey()).publicKey, key.publicKey);
    assert.equal(statSync(folder).mode & 0o777, 0o700);
    const keyFile = join(folder, "unnamed-node_noise.key");
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.match(readFileSync(keyFile, "utf8"), /^[0-9a-f]{64}\n$/);
    assert.deepEqual(JSON.parse(readFileSync(join(folder, "_identity.json"), "utf8")), { name: "unnamed-node", pinned_noise_keys: {} });
  });

  it("keeps pins (never replaced) and a bounded PSK cache", async () => {
    const folder = tempFolder();
    const store = new FileNoiseStore(folder);
    const hubKey = new Uint8Array(32).fill(1);
    await store.pinHub("wss://h:443", hubKey);
    await store.pinHub("wss://h:443", new Uint8Array(32).fill(2));
    assert.deepEqual(await store.hubPin("wss://h:443"), hubKey);
    for (let i = 0; i < 40; i++) await store.storePsk("key", `node-${i}`, new Uint8Array(32).fill(i));
    const cache = JSON.parse(readFileSync(join(folder, "unnamed-node_noise_psks.json"), "utf8")) as Record<string, string>;
    assert.equal(Object.keys(cache).length, 32);
    assert.ok(pskCacheKey("key", "node-39") in cache && !(pskCacheKey("key", "node-0") in cache));
    assert.deepEqual(await store.cachedPsk("key", "node-39"), new Uint8Array(32).fill(39));
    await store.forgetPsk("key", "node-39");
    assert.equal(await store.cachedPsk("key", "node-39"), undefined);
    chmodSync(join(folder, "unnamed-node_noise_psks.json"), 0o644);
    assert.equal(await store.cachedPsk("key", "node-38"), undefined, "a permissive PSK cache is ignored");
    assert.equal(await store.removePin("wss://h:443"), true);
  });

  it("refuses symlinks and corrupt state", async () => {
    const folder = tempFolder();
    const target = join(folder, "elsewhere.key");
    writeFileSync(target, "00".repeat(32));
    mkdirSync(join(folder, "state"));
    symlinkSync(target, join(folder, "state", "unnamed-node_noise.key"));
    assert.ok(lstatSync(join(folder, "state", "unnamed-node_noise.key")).isSymbolicLink());
    await assert.rejects(new FileNoiseStore(join(folder, "state")).staticKey(), NoiseStateError);
    const corrupt = join(folder, "corrupt");
    mkdirSync(corrupt);
    writeFileSync(join(corrupt, "_identity.json"), "[1]");
    await assert.rejects(new FileNoiseStore(corrupt).hubPin("x"), NoiseStateError);
  });

  it("pin ids per carrier, and the browser stores share the layout", async () => {
    assert.equal(wssPinId("wss://Hub.Example/x"), "wss://hub.example:443");
    assert.equal(wssPinId("ws://[::1]:8080/"), "ws://[::1]:8080");
    assert.equal(httpsPinId("https://h.example:443/p/"), "https://h.example:443/p");
    const items = new Map<string, string>();
    const storage = { getItem: (k: string) => items.get(k) ?? null, setItem: (k: string, v: string) => void items.set(k, v) };
    const store = new LocalStorageNoiseStore({ storage, prefix: "app/" });
    const key = await store.staticKey();
    await store.pinHub("wss://h:443", new Uint8Array(32).fill(5));
    assert.deepEqual((await new LocalStorageNoiseStore({ storage, prefix: "app/" }).staticKey()).publicKey, key.publicKey);
    assert.ok(items.has("app/_identity.json") && items.has("app/unnamed-node_noise.key"));
    const memory = new MemoryNoiseStore();
    assert.notDeepEqual((await memory.staticKey()).publicKey, key.publicKey);
  });
});
