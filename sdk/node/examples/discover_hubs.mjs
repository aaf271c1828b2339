// Control plane: public discovery, a hub by reference, the workspace's hubs, one hub by id, and
// a new client identity (the guide's "Control plane" recipes, in order).
//
//   THALOVANT_EMAIL=... THALOVANT_PASSWORD=... node examples/discover_hubs.mjs [--hub joke-garden] [--name checkout-kiosk]
//
// `--hub` is the guide's "hub-id" (an id, or a slug resolved through the public lookup).
import { parseArgs } from "node:util";

import { ThalovantControlPlane } from "@thalovant/sdk";

const { values } = parseArgs({
  options: {
    hub: { type: "string", default: process.env.THALOVANT_HUB ?? "joke-garden" },
    name: { type: "string", default: "checkout-kiosk" },
  },
});

const api = new ThalovantControlPlane();
try {
  const page = await api.listPublicHubs({ limit: 12 });
  for (const hub of page.data) {
    console.log(hub.id, hub.slug, hub.title);
  }

  const publicHub = await api.getPublicHub(values.hub);
  console.log(publicHub.title, publicHub.publicRef);

  await api.login(process.env.THALOVANT_EMAIL ?? "", process.env.THALOVANT_PASSWORD ?? "");

  const hubs = await api.listHubs({ limit: 25 });
  for (const hub of hubs.data) {
    console.log(hub.id, hub.title);
  }

  const hub = await api.getHub(publicHub.id);
  console.log(hub.title);

  const result = await api.createClientIdentity(publicHub.id, {
    name: values.name,
    preferredProtocols: ["wss", "https"],
  });
  const identity = result.identity;
  console.log(identity.siteId, result.selectedProtocol);
} finally {
  await api.close();
}
