/** The worker thread that derives one PSK (argon2id, 64 MiB) off the Node.js event loop. */

import { parentPort, workerData } from "node:worker_threads";

import { derivePsk } from "../protocol/psk.js";

const { password, nodeId } = workerData as { password: string; nodeId: string };
derivePsk(password, nodeId).then(
  (psk) => parentPort?.postMessage({ psk }),
  (error: unknown) => parentPort?.postMessage({ error: { name: (error as Error).name, message: (error as Error).message } }),
);
