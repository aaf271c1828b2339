// Context: stable user, source, locale and trace metadata on a request, without changing the
// utterance (the guide's context recipe).
//
//   node examples/context.mjs [--identity identity.json] [--protocol wss]
import { parseArgs } from "node:util";

import { buildClientContext, ThalovantClient, ThalovantIdentity } from "@thalovant/sdk";

const { values } = parseArgs({ options: { identity: { type: "string" }, protocol: { type: "string", default: "wss" } } });
const identity = values.identity ? await ThalovantIdentity.fromFile(values.identity) : ThalovantIdentity.fromEnv();

const client = new ThalovantClient(identity, { protocol: values.protocol });
try {
  const context = buildClientContext({}, {
    userId: "user-42",
    userName: "Ada",
    source: "checkout-kiosk",
    platform: "kiosk",
    locale: "en-US",
    channel: "chat",
    metadata: { traceId: "req-2026-06-10-001" },
  });

  const reply = await client.ask("Show the next instruction.", { context });
  console.log(reply.text);
} finally {
  await client.close();
}
