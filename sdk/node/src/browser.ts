/**
 * `@thalovant/sdk` for browsers: the same API over WSS and HTTPS, with the identity passed in
 * and the Noise state in a pluggable store (`localStorage` by default).
 *
 *     import { ThalovantClient, ThalovantIdentity, LocalStorageNoiseStore } from "@thalovant/sdk";
 *
 *     const identity = ThalovantIdentity.fromMapping(identityJson);
 *     const client = new ThalovantClient(identity, { protocol: "wss", noiseStore: new LocalStorageNoiseStore() });
 *     console.log((await client.ask("Tell me a short clean joke.")).text);
 */

import { browserPlatform } from "./platform/browser.js";
import { installPlatform } from "./platform/current.js";

installPlatform(browserPlatform);

export * from "./api.js";
