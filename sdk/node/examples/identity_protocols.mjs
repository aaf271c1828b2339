// Load saved identity material (config profile, identity file, environment) and inspect its
// protocols (the guide's "Identity" recipes).
//
//   node examples/identity_protocols.mjs [--profile prod] [--file _identity.json]
//
// The config file is $XDG_CONFIG_HOME/thalovant/config.yaml (else ~/.config/thalovant/config.yaml),
// mode 0600; `--profile` is the guide's profile name. The environment client needs THALOVANT_*
// variables (THALOVANT_ACCESS_KEY, THALOVANT_PASSWORD, THALOVANT_SITE_ID, THALOVANT_HUB_HTTP_HOST...).
import { parseArgs } from "node:util";

import { ThalovantClient, ThalovantIdentity } from "@thalovant/sdk";

const { values } = parseArgs({
  options: {
    profile: { type: "string", default: "prod" },
    file: { type: "string", default: "_identity.json" },
  },
});

const identity = await ThalovantIdentity.fromConfig({ profile: values.profile });
const sameIdentity = await ThalovantIdentity.fromFile(values.file);

const clientFromConfig = await ThalovantClient.fromConfig({ profile: values.profile, protocol: "wss" });
const clientFromFile = await ThalovantClient.fromIdentityFile(values.file);
const clientFromEnv = ThalovantClient.fromEnv();

console.log(identity.enabledProtocols());
console.log(identity.endpointFor("wss"));
console.log(identity.endpointFor("https"));
console.log(identity.endpointFor("mqtt"));
console.log(identity.supportsProtocol("wss"));

if (identity.mqtt) {
  console.log(identity.mqtt.host, identity.mqtt.port);
}

console.log(sameIdentity.siteId === identity.siteId, clientFromConfig.protocol, clientFromFile.protocol, clientFromEnv.protocol);
