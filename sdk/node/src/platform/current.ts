/** The host the SDK runs on, installed once by the entry point (`index.ts` or `browser.ts`). */

import { ThalovantError } from "../errors.js";
import type { Platform } from "./types.js";

let installed: Platform | undefined;

/** Install the host (the entry points do this when they load). */
export function installPlatform(platform: Platform): void {
  installed = platform;
}

/** The installed host. */
export function platform(): Platform {
  if (installed === undefined) {
    throw new ThalovantError("The Thalovant SDK was loaded without its entry point: import from \"@thalovant/sdk\".");
  }
  return installed;
}
