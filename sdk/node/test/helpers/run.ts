/** Running the package's example scripts as a user would: `node examples/<name>.mjs ...`. */

import { spawn } from "node:child_process";
import { join } from "node:path";

import { PACKAGE_ROOT } from "./paths.js";

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `node <script> ...args` with `env` (added to this process's environment) in `cwd`. */
export function runNode(script: string, args: string[], options: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      cwd: options.cwd ?? PACKAGE_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Run an example and require exit status 0; its standard output lines. */
export async function runExample(name: string, args: string[], options: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<string[]> {
  const ran = await runNode(join(PACKAGE_ROOT, "examples", `${name}.mjs`), args, options);
  if (ran.code !== 0) throw new Error(`${name}.mjs exited ${ran.code}:\n${ran.stdout}\n${ran.stderr}`);
  return ran.stdout.split("\n").filter((line) => line !== "");
}
