/** Where the package and the repository's shared test data are, from the compiled test files. */

import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** `sdk/node` (this file is compiled to `build/test/helpers/`). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
/** The repository root. */
export const REPO_ROOT = resolve(PACKAGE_ROOT, "..", "..");
/** The one copy of the conformance vectors every SDK reads. */
export const CONFORMANCE = resolve(REPO_ROOT, "conformance");

/** A conformance vector file, parsed. */
export function vectors<T>(name: string): T {
  return JSON.parse(readFileSync(resolve(CONFORMANCE, name), "utf8")) as T;
}
