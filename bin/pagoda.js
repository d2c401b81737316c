#!/usr/bin/env node
// Runs the bundle in dist/ (built by `npm run build`, which npm ci runs; see tools/bundle.ts), so start-up pays
// neither for transpiling TypeScript nor for loading some 1,700 modules one by one. When dist/ is missing or older
// than a source file, it runs the sources through tsx instead, so an edit is never served stale.
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const compiled = path.join(root, "dist", "cli.js");

function newestSourceMs(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSourceMs(full) : statSync(full).mtimeMs);
  }
  return newest;
}

// Without src/ (the container images ship only dist/) there is nothing newer to run.
const sourceDir = path.join(root, "src");
const isCompiledFresh =
  existsSync(compiled) && (!existsSync(sourceDir) || statSync(compiled).mtimeMs >= newestSourceMs(sourceDir));
if (isCompiledFresh) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(path.join(root, "src", "cli.ts")).href);
}
