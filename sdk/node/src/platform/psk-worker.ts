/** The worker thread that derives one PSK (argon2id, 64 MiB) off the Node.js event loop. */

import { parentPort } from "node:worker_threads";

import { derivePsk, warmPsk } from "../protocol/psk.js";

const warm = warmPsk().catch(() => undefined);
parentPort?.once("message", (inputs: { password: string; nodeId: string }) => {
  warm.then(() => derivePsk(inputs.password, inputs.nodeId)).then(
    (psk) => parentPort?.postMessage({ psk }),
    (error: unknown) => parentPort?.postMessage({ error: { name: (error as Error).name, message: (error as Error).message } }),
  );
});
