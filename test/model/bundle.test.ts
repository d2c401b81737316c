/**
 * The bundle `npm run build` writes (tools/bundle.ts), built afresh into a scratch folder and run as a real process:
 * node-llama-cpp inside it still finds the patched addon (the shared KV pool is on), and the server, the lazily
 * loaded `pagoda plan` and the grammar path work from it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { STORIES_MODEL } from "../helpers/model-server.ts";
import { startProcess } from "../helpers/server-process.ts";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const outDir = path.join(repoRoot, ".cache", `test-bundle-${process.pid}`);
const entry = path.relative(repoRoot, path.join(outDir, "cli.js"));

/** Module names the chunks still import from node_modules (everything but node's own modules). */
function packagesImported(): Set<string> {
  const names = new Set<string>();
  for (const file of readdirSync(outDir).filter((name) => name.endsWith(".js"))) {
    const source = readFileSync(path.join(outDir, file), "utf8");
    // esbuild writes static imports at line starts, dynamic ones as import("x"), CommonJS ones as __require("x").
    for (const match of source.matchAll(
      /^import [^;]*?from "([^"./][^"]*)"|\bimport\("([^"./][^"]*)"\)|__require\("([^"./][^"]*)"\)/gm,
    )) {
      const name = match[1] ?? match[2] ?? match[3]!;
      if (!name.startsWith("node:")) names.add(name);
    }
  }
  return names;
}

test("the bundle runs the server with the patched addon, the lazily loaded plan command and constrained output", async (t) => {
  t.after(() => rmSync(outDir, { recursive: true, force: true }));
  await run(process.execPath, ["--import", "tsx", "tools/bundle.ts", "--outdir", outDir], { cwd: repoRoot });

  // Kept outside on purpose: node-llama-cpp's binary packages, a native optional dependency, and "electron", which
  // node-llama-cpp requires only when it runs inside Electron.
  const outside = [...packagesImported()].filter(
    (name) => !name.startsWith("@node-llama-cpp/") && !name.startsWith("@reflink/") && name !== "electron",
  );
  // Node's built-ins imported by their bare names (fs, path) are fine; no package of node_modules may be.
  const builtins = new Set((await import("node:module")).builtinModules);
  assert.deepEqual(
    outside.filter((name) => !builtins.has(name)),
    [],
    "only node-llama-cpp's binary packages stay outside",
  );

  const plan = await run(process.execPath, [entry, "plan", STORIES_MODEL], { cwd: repoRoot });
  assert.match(plan.stdout, /the whole process at most/);

  const server = await startProcess(t, ["--embeddings", "true"], entry);
  const loaded = server.logs.find((line) => line.msg === "model loaded");
  assert.equal(loaded?.isKvShared, true, "the patched addon's shared KV pool");

  const chat = await fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      messages: [{ role: "user", content: "Tell me a story" }],
      max_tokens: 24,
      response_format: { type: "json_object" },
    }),
  });
  assert.equal(chat.status, 200);
  const { choices } = (await chat.json()) as { choices: { message: { content: string } }[] };
  assert.match(choices[0]!.message.content, /^\s*\{/, "a grammar-constrained answer starts an object");

  const embeddings = await fetch(`${server.url}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ input: ["Once upon a time", "a cat"] }),
  });
  assert.equal(embeddings.status, 200);
  const { data } = (await embeddings.json()) as { data: { embedding: number[] }[] };
  assert.equal(data.length, 2);
  const norm = Math.hypot(...data[0]!.embedding);
  assert.ok(Math.abs(norm - 1) < 1e-6, `unit vector, got norm ${norm}`);

  server.child.kill("SIGTERM");
  assert.equal(await server.exited, 0);
});
