/**
 * Bundles the server into dist/ (`npm run build`, after the type check; `--outdir DIR` elsewhere): `dist/cli.js` and the chunks its lazy
 * imports load (pagoda plan and synth, the runtime, the routes). Start-up was spent mostly resolving and linking
 * about 1,700 small modules (pagoda's own, fastify, zod, pino, prom-client, and node-llama-cpp with its ~700 files);
 * a bundle loads a few dozen.
 *
 * node-llama-cpp finds its native binaries, llama.cpp sources and package.json relative to its own files through
 * `import.meta.url`; inside a bundle that would name the chunk. So each of its modules gets its own file's URL back,
 * expressed relative to the chunk, which keeps working wherever the project folder is moved (the container image).
 * Its prebuilt binary packages (`@node-llama-cpp/*`, loaded by name at run time) and native optional dependencies
 * stay outside, resolved from node_modules as before.
 */
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";

const PROJECT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** `--outdir DIR` (a test bundles into a scratch folder); it must lie inside the project, beside node_modules. */
const outdirFlag = process.argv.indexOf("--outdir");
const OUT_DIR = outdirFlag === -1 ? path.join(PROJECT_DIR, "dist") : path.resolve(process.argv[outdirFlag + 1] ?? "");

/** Every chunk lands in OUT_DIR itself, so one relative path per module serves whichever chunk holds it. */
const keepModuleUrls: Plugin = {
  name: "keep-node-llama-cpp-module-urls",
  setup(builder) {
    builder.onLoad({ filter: /[\\/]node_modules[\\/]node-llama-cpp[\\/]dist[\\/].*\.js$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      if (!source.includes("import.meta.url")) return { contents: source, loader: "js" };
      const relative = path.relative(OUT_DIR, args.path).split(path.sep).join("/");
      const url = `new URL(${JSON.stringify(relative)}, import.meta.url).href`;
      return { contents: source.replaceAll("import.meta.url", url), loader: "js" };
    });
  },
};

await rm(OUT_DIR, { recursive: true, force: true });
await build({
  absWorkingDir: PROJECT_DIR,
  entryPoints: ["src/cli.ts"],
  outdir: OUT_DIR,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  external: ["@node-llama-cpp/*", "@reflink/*"],
  plugins: [keepModuleUrls],
  sourcemap: true,
  // The CommonJS packages inside (fastify, pino, prom-client) call require() for node's own modules.
  banner: {
    js: 'import { createRequire as pagodaCreateRequire } from "node:module";\nconst require = pagodaCreateRequire(import.meta.url);',
  },
  logLevel: "warning",
});
