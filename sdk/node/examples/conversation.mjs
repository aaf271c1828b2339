// A conversation: related turns share one session, so the hub remembers the colour (the guide's
// conversation recipe).
//
//   node examples/conversation.mjs [--identity identity.json] [--protocol wss]
import { parseArgs } from "node:util";

import { ThalovantClient, ThalovantIdentity } from "@thalovant/sdk";

const { values } = parseArgs({ options: { identity: { type: "string" }, protocol: { type: "string", default: "wss" } } });
const identity = values.identity ? await ThalovantIdentity.fromFile(values.identity) : ThalovantIdentity.fromEnv();

const client = new ThalovantClient(identity, { protocol: values.protocol });
try {
  const convo = client.conversation({ lang: "en-us" });

  const first = await convo.ask("Remember that my favorite color is blue.");
  const second = await convo.ask("What color did I mention?");
  console.log(first.text);
  console.log(second.text);
} finally {
  await client.close();
}
