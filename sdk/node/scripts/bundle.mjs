// The one-file browser bundle, dist/thalovant-sdk.browser.js: dist/browser.js and its
// dependencies as one ES module, for pages that load the SDK without a bundler of their own. It
// carries the PSK worker (argon2id off the page's main thread) as text, started from a Blob URL.
import { build } from "esbuild";

const common = { bundle: true, format: "esm", platform: "browser", target: ["es2022"], conditions: ["browser"], minify: true, logLevel: "warning" };

const worker = await build({ ...common, entryPoints: ["dist/platform/psk-worker-browser.js"], write: false });
await build({
  ...common,
  entryPoints: ["dist/browser.js"],
  outfile: "dist/thalovant-sdk.browser.js",
  sourcemap: true,
  legalComments: "linked",
  define: { THALOVANT_PSK_WORKER_SOURCE: JSON.stringify(worker.outputFiles[0].text) },
});
