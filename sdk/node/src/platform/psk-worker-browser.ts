/**
 * The Web Worker that derives one PSK (argon2id, 64 MiB) off a page's main thread. The browser
 * bundle carries it as text and starts it from a Blob URL (see `browser.ts`).
 */

import { derivePsk, warmPsk } from "../protocol/psk.js";

const scope = globalThis as unknown as {
  onmessage: ((event: { data: { password: string; nodeId: string } }) => void) | null;
  postMessage(message: unknown): void;
};
const warm = warmPsk().catch(() => undefined);
scope.onmessage = (event) => {
  const { password, nodeId } = event.data;
  warm
    .then(() => derivePsk(password, nodeId))
    .then(
      (psk) => scope.postMessage({ psk }),
      (error: unknown) => scope.postMessage({ error: { name: (error as Error).name, message: (error as Error).message } }),
    );
};
