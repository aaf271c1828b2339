// Diagnostics: identity, endpoint, TLS, handshake and round trip, then the health line (the
// guide's diagnostics recipe; `doctor()` as in the Python SDK).
//
//   node examples/doctor.mjs [--identity identity.json] [--protocol wss]
//
// Exit status 0 when every check passes.
import { parseArgs } from "node:util";

import { ThalovantClient, ThalovantIdentity } from "@thalovant/sdk";

const { values } = parseArgs({ options: { identity: { type: "string" }, protocol: { type: "string", default: "wss" } } });
const identity = values.identity ? await ThalovantIdentity.fromFile(values.identity) : ThalovantIdentity.fromEnv();

const client = new ThalovantClient(identity, { protocol: values.protocol });
let report;
try {
  report = await client.doctor();
  console.log(String(report));
  console.log(await client.healthcheck());
} finally {
  await client.close();
}
process.exitCode = report?.ok ? 0 : 1;
