// Builds web/dist from web/src: one script, one stylesheet, one page. The
// output is committed (the server embeds it, so `cargo build` needs no
// Node); CI rebuilds it and fails if the result differs by a byte.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
const common = { bundle: true, minify: true, legalComments: "none", logLevel: "warning", charset: "utf8" };
await build({
  ...common,
  entryPoints: ["src/app.tsx"],
  outfile: "dist/app.js",
  format: "esm",
  target: ["chrome114", "firefox115", "safari17"],
  jsx: "automatic",
  jsxImportSource: "preact",
});
// The audio worklets run in their own scope, loaded by URL.
await build({ ...common, entryPoints: ["src/worklet.ts"], outfile: "dist/worklet.js", format: "esm", target: ["chrome114", "firefox115", "safari17"] });
// light-dark() (the theme) needs these or later.
await build({ ...common, entryPoints: ["src/app.css"], outfile: "dist/app.css", target: ["chrome123", "firefox120", "safari17.5"] });
for (const f of ["index.html", "favicon.svg"]) copyFileSync(`src/${f}`, `dist/${f}`);
