// Events: wait for the one event that proves a request completed, then stream speech events with
// a subscription (the guide's "Events and context" recipes).
//
//   node examples/events.mjs [--identity identity.json] [--protocol wss]
//
// waitForEvent also sees an event that arrived since this client's last publication, so "send,
// then wait" never misses a fast answer.
import { parseArgs } from "node:util";

import { EVENT_SPEAK, EVENT_UTTERANCE_HANDLED, ThalovantClient, ThalovantIdentity } from "@thalovant/sdk";

const { values } = parseArgs({ options: { identity: { type: "string" }, protocol: { type: "string", default: "wss" } } });
const identity = values.identity ? await ThalovantIdentity.fromFile(values.identity) : ThalovantIdentity.fromEnv();

const client = new ThalovantClient(identity, { protocol: values.protocol });
try {
  await client.sendUtterance("Tell me a joke.");
  const event = await client.waitForEvent(EVENT_UTTERANCE_HANDLED, {
    timeoutMs: 12_000,
  });
  console.log("handled:", event.name);

  let spoken = 0;
  /** @type {() => void} */
  let allSpoken = () => undefined;
  const done = new Promise((resolve) => {
    allSpoken = () => resolve(undefined);
  });
  const subscription = client.on(EVENT_SPEAK, (event) => {
    console.log(event.text);
    spoken += 1;
    if (spoken === 3) allSpoken();
  });
  for (const question of ["Tell me a joke.", "Tell me a trivia fact.", "What can this hub do?"]) {
    await client.sendUtterance(question);
  }
  await done;

  // Later, when the listener is no longer needed:
  subscription.close();
} finally {
  await client.close();
}
