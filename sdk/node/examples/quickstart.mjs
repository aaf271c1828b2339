// Quick start (the guide's first example): sign in, create a client identity for a hub, ask it
// for a joke.
//
//   THALOVANT_EMAIL=... THALOVANT_PASSWORD=... node examples/quickstart.mjs [--hub joke-garden] [--protocol wss]
//
// The control plane URL comes from THALOVANT_API_URL (default https://localhost:8443); trust a
// development CA with NODE_EXTRA_CA_CERTS or SSL_CERT_FILE. `--hub` (or THALOVANT_HUB) is the
// guide's "hub-id": a hub id or a public hub's slug or reference. `--save FILE` also writes the
// new identity (0600) for the other examples. `--protocol` picks the carrier (the guide uses wss).
import { parseArgs } from "node:util";

import { ThalovantClient, ThalovantControlPlane } from "@thalovant/sdk";

const { values } = parseArgs({
  options: {
    hub: { type: "string", default: process.env.THALOVANT_HUB ?? "joke-garden" },
    name: { type: "string", default: "node-demo-client" },
    save: { type: "string" },
    protocol: { type: "string", default: "wss" },
  },
});
const email = process.env.THALOVANT_EMAIL;
const password = process.env.THALOVANT_PASSWORD;
if (!email || !password) {
  console.error("Set THALOVANT_EMAIL and THALOVANT_PASSWORD to sign in.");
  process.exit(2);
}

const api = new ThalovantControlPlane();
try {
  await api.login(email, password);
  const hub = await api.getPublicHub(values.hub);

  const result = await api.createClientIdentity(hub.id, {
    name: values.name,
    preferredProtocols: ["wss", "https", "mqtt"],
  });
  if (values.save) await result.identity.save(values.save);

  const client = new ThalovantClient(result.identity, { protocol: values.protocol });
  try {
    const reply = await client.ask("Tell me a short clean joke.");
    console.log(reply.text);
  } finally {
    await client.close();
  }
} finally {
  await api.close();
}
