/**
 * `@thalovant/sdk` for Node.js: the control plane, identities and the runtime client over WSS,
 * HTTPS and MQTT.
 *
 *     import { ThalovantClient, ThalovantControlPlane } from "@thalovant/sdk";
 *
 *     const api = new ThalovantControlPlane();
 *     await api.login(email, password);
 *     const result = await api.createClientIdentity("hub-id", { name: "node-demo-client" });
 *     const client = new ThalovantClient(result.identity, { protocol: "wss" });
 *     try {
 *       console.log((await client.ask("Tell me a short clean joke.")).text);
 *     } finally {
 *       await client.close();
 *     }
 */

import { installPlatform } from "./platform/current.js";
import { nodePlatform } from "./platform/node.js";
import { nodeCryptoPrimitives } from "./platform/node-crypto.js";
import { useNoisePrimitives } from "./protocol/primitives.js";

installPlatform(nodePlatform);
useNoisePrimitives(nodeCryptoPrimitives);

export * from "./api.js";
export { FileNoiseStore } from "./platform/node-files.js";
