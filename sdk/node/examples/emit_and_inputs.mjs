// Raw events and structured input: emit, an utterance, an action and a code (the guide's
// "Runtime client" input recipes).
//
//   node examples/emit_and_inputs.mjs [--identity identity.json] [--protocol wss]
import { parseArgs } from "node:util";

import { ThalovantClient, ThalovantIdentity } from "@thalovant/sdk";

const { values } = parseArgs({ options: { identity: { type: "string" }, protocol: { type: "string", default: "wss" } } });
const identity = values.identity ? await ThalovantIdentity.fromFile(values.identity) : ThalovantIdentity.fromEnv();

const client = new ThalovantClient(identity, { protocol: values.protocol });
try {
  await client.emit(
    "thalovant.client.status",
    { state: "ready" },
    { source: "checkout-kiosk" },
  );
  console.log("emitted thalovant.client.status");

  await client.sendUtterance("What is the status?", {
    lang: "en-us",
    sessionId: "status-session",
  });
  console.log("sent utterance");

  await client.sendAction(
    "/approve invoice-42",
    { title: "Approve invoice", sessionId: "approval-session" },
  );
  console.log("sent action");

  await client.sendCode("INV-2026-001", {
    kind: "invoice",
    sessionId: "scan-session",
  });
  console.log("sent code");
} finally {
  await client.close();
}
