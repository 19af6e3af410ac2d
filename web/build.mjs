// Bundles the UI into one directory: index.html, app.js, app.css.
// `node build.mjs [--outdir DIR]` (default dist/). The server embeds DIR.
import * as esbuild from "esbuild";
import { mkdirSync, copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const i = process.argv.indexOf("--outdir");
const outdir = i > 0 ? process.argv[i + 1] : join(here, "dist");
mkdirSync(outdir, { recursive: true });

await esbuild.build({
  entryPoints: { app: join(here, "src/main.ts"), style: join(here, "src/style.css") },
  bundle: true,
  minify: true,
  sourcemap: false,
  target: ["es2020"],
  outdir,
  logLevel: "warning",
  legalComments: "eof",
});
copyFileSync(join(here, "src/index.html"), join(outdir, "index.html"));
