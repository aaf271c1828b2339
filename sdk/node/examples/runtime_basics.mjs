// A runtime client: connect, health, one ask with display items (the guide's "Runtime client"
// recipes and its diagnostics line).
//
//   node examples/runtime_basics.mjs [--identity identity.json] [--protocol wss]
//
// Without `--identity` the identity comes from THALOVANT_* variables.
import { parseArgs } from "node:util";

import { ThalovantClient, ThalovantIdentity } from "@thalovant/sdk";

const { values } = parseArgs({ options: { identity: { type: "string" }, protocol: { type: "string", default: "wss" } } });
const identity = values.identity ? await ThalovantIdentity.fromFile(values.identity) : ThalovantIdentity.fromEnv();

const client = new ThalovantClient(identity, { protocol: values.protocol });
try {
  await client.connect();
  console.log(await client.healthcheck());

  const reply = await client.ask("What can this hub do?");

  console.log(reply.text);
  for (const item of reply.displayItems()) {
    console.log(item);
  }
  console.log(JSON.stringify({ text: reply.text, display_items: reply.displayItems() }));
} finally {
  await client.close();
}
