/**
 * The Node.js SDK against hivemind-core 5.3.10a1 (the testbed's hm5) over ws, https and mqtt:
 * XX first, then KK on reconnect.
 *
 * hivemind-core pins the first client Noise key it sees for an access key, so every connection
 * here uses the one client key of the Noise state folder beside the hm5 identity file. Each
 * carrier starts from a folder holding only that key (no hub pin yet, hence XX; HTTPS and MQTT
 * share one pin id) and reconnects with the same folder (pinned, hence KK).
 */

import assert from "node:assert/strict";
import { copyFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";

import { FileNoiseStore, ThalovantClient, ThalovantIdentity } from "../src/index.js";
import { refuseUnhandledRejections, tempFolder, testbed } from "./helpers/testbed.js";

const checkRejections = refuseUnhandledRejections();
after(checkRejections);

function hm5(): { identity_file: string; ca_file: string } {
  const stack = testbed().hm5;
  if (stack === null) throw new Error("The testbed runs without hivemind-core: start it with `python -m peers testbed --hm5 -- ...`.");
  return stack;
}

/** A Noise state folder holding only the client key hivemind-core pinned (or will pin). */
async function folderWithClientKey(): Promise<string> {
  const shared = new FileNoiseStore(join(dirname(hm5().identity_file), "hivemind"));
  await shared.staticKey();
  const keyFile = await shared.keyFile();
  const folder = tempFolder();
  await copyFile(join(shared.directory, keyFile), join(folder, keyFile));
  return folder;
}

describe("hivemind-core 5.3.10a1", () => {
  for (const protocol of ["wss", "https", "mqtt"] as const) {
    it(`${protocol}: XX first, then KK on reconnect, and the hub answers`, async () => {
      const identity = await ThalovantIdentity.fromFile(hm5().identity_file);
      const folder = await folderWithClientKey();
      const patterns: (string | undefined)[] = [];
      for (const text of ["Tell me a joke.", "What time is it?"]) {
        const client = new ThalovantClient(identity, { protocol, noiseStateDir: folder });
        try {
          await client.connect();
          patterns.push(client.connectionInfo().noisePattern);
          const reply = await client.ask(text);
          assert.equal(reply.text, `You said ${text}`);
        } finally {
          await client.close();
        }
      }
      assert.deepEqual(patterns, ["XXpsk2", "KKpsk0"]);
    });
  }
});
