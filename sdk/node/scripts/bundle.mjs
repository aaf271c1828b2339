// The browser bundle: dist/browser.js and its dependencies as one ES module,
// dist/thalovant-sdk.browser.js, for pages that load the SDK without a bundler of their own.
import { build } from "esbuild";

await build({
  entryPoints: ["dist/browser.js"],
  outfile: "dist/thalovant-sdk.browser.js",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  conditions: ["browser"],
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  logLevel: "warning",
});
