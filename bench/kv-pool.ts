/**
 * The shared KV pool against stock per-sequence slabs, measured side by side in one run on one model file:
 *
 * 1. capacity: the same KV cells (default 4,096) as slabs of --ctx-size (what stock node-llama-cpp reserves per
 *    sequence) or as one paged pool; 64 short requests at once; peak concurrent sequences and aggregate tok/s.
 * 2. prefix: 8 concurrent requests sharing a ~1,000-token prefix, mean time to first token with the prefix cached
 *    (hit) and without prefix caching (miss).
 * 3. oversubscription: autocannon against the HTTP server whose pool holds a quarter of the load's demand;
 *    failed requests (429s counted apart) and throughput.
 *
 *   npm run bench:kv -- [--model path.gguf | --synthetic 512x8] [--threads 1] [--kv-cells 4096] [--ctx-size 2048]
 *                       [--only capacity,prefix,oversubscription]
 *
 * The capacity part also runs the shared pool at the slabs' concurrency: llama.cpp's unified cache attends over
 * every occupied cell of the pool (masking the other sequences'), so a full pool costs attention time per token
 * that slabs do not; that row separates this cost from the gain of running more sequences.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { type Loaded, loadRuntimeWith, runAll } from "./harness.ts";
import { syntheticModel } from "./synthetic.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    model: { type: "string", default: path.resolve(repoRoot, "../shared/models/stories260K.gguf") },
    threads: { type: "string", default: "1" },
    "kv-cells": { type: "string", default: "4096" },
    "ctx-size": { type: "string", default: "2048" },
    "load-seconds": { type: "string", default: "20" },
    synthetic: { type: "string" },
    only: { type: "string", default: "capacity,prefix,oversubscription" },
  },
});
const modelPath =
  values.synthetic === undefined
    ? values.model
    : await syntheticModel(values.synthetic, path.join(repoRoot, ".cache/pagoda"));
const parts = new Set(values.only.split(","));
const kvCells = Number(values["kv-cells"]);
const ctxSize = Number(values["ctx-size"]);
const load = (flags: string[]): Promise<Loaded> =>
  loadRuntimeWith(["--model", modelPath, "--threads", values.threads, ...flags]);

function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

async function capacity(): Promise<Record<string, number>> {
  const numRequests = 64;
  const maxTokens = 48;
  const result: Record<string, number> = {};
  const numSlabs = Math.max(1, Math.floor(kvCells / ctxSize));
  const runs = [
    { name: "slabs", layout: "slabs", parallel: numSlabs },
    { name: "sharedAtSlabConcurrency", layout: "shared", parallel: numSlabs },
    { name: "shared", layout: "shared", parallel: numRequests },
  ] as const;
  for (const { name, layout, parallel } of runs) {
    // Slabs: as many sequences as whole contexts fit the cells. Shared: the same cells, any number of sequences.
    const loaded = await load([
      "--kv-layout",
      layout,
      "--parallel",
      String(parallel),
      "--ctx-size",
      String(ctxSize),
      "--kv-cache-tokens",
      String(kvCells),
      "--batch-size",
      "512",
    ]);
    const prompts = Array.from({ length: numRequests }, (_, index) =>
      loaded.runtime.engine.tokenize(`Story ${index}: Once upon a time`, { addBos: true }),
    );
    const { timings, durationMs } = await runAll(loaded.runtime, prompts, maxTokens);
    const tokens = timings.reduce((sum, timing) => sum + timing.numTokens, 0);
    result[`${name}PeakSequences`] = Math.max(...loaded.steps.map((step) => step.numSequences));
    result[`${name}TokensPerSecond`] = (tokens / durationMs) * 1000;
    result[`${name}KvCells`] = loaded.runtime.engine.info.kvCacheTokens;
    await loaded.close();
  }
  return result;
}

async function prefix(): Promise<Record<string, number>> {
  const story =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ".repeat(
      40,
    );
  const result: Record<string, number> = {};
  for (const mode of ["miss", "hit"] as const) {
    const loaded = await load([
      "--parallel",
      "8",
      "--ctx-size",
      String(ctxSize),
      "--kv-cache-tokens",
      String(Math.max(kvCells, 16_384)),
      "--batch-size",
      "512",
      "--prefix-caching",
      mode === "hit" ? "true" : "false",
    ]);
    const engine = loaded.runtime.engine;
    const prefixTokens = engine.tokenize(story, { addBos: true }).slice(0, 1000);
    // Warm: one request computes the prefix (with caching on, its blocks stay resident).
    await runAll(loaded.runtime, [[...prefixTokens, ...engine.tokenize(" The end.")]], 1);
    const prompts = Array.from({ length: 8 }, (_, index) => [
      ...prefixTokens,
      ...engine.tokenize(` Then friend number ${index} came.`),
    ]);
    const { timings } = await runAll(loaded.runtime, prompts, 8);
    result[`${mode}MeanTtftMs`] = mean(timings.map((timing) => timing.firstTokenMs));
    result.prefixTokens = prefixTokens.length;
    await loaded.close();
  }
  return result;
}

async function oversubscription(): Promise<Record<string, number>> {
  const maxTokens = 64;
  // The pool holds 8 requests at their full length (80 tokens); the load keeps 32 in flight: 4x the pool.
  const poolCells = 8 * 80;
  const { runtime, baseUrl, close } = await loadRuntimeWith(
    [
      "--model",
      modelPath,
      "--threads",
      values.threads,
      "--parallel",
      "32",
      "--ctx-size",
      "128",
      "--kv-cache-tokens",
      String(poolCells),
      "--batch-size",
      "256",
    ],
    { listen: true },
  );
  const preemptionsBefore = runtime.loop.kvCacheState().numPreemptions;
  const body = JSON.stringify({
    model: runtime.modelId,
    prompt: "Once upon a time, in a small village by the sea, there lived",
    max_tokens: maxTokens,
    temperature: 0.8,
    ignore_eos: true,
  });
  const load = await autocannon({
    url: `${baseUrl}/v1/completions`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    connections: 32,
    duration: Number(values["load-seconds"]),
  });
  const state = runtime.loop.kvCacheState();
  await close();
  return {
    poolCells,
    connections: 32,
    demandOverPool: (32 * 80) / poolCells,
    requests: load.requests.total,
    ok: load["2xx"],
    rejected429: load.statusCodeStats?.["429"]?.count ?? 0,
    failed: load.errors + load.timeouts + load.non2xx - (load.statusCodeStats?.["429"]?.count ?? 0),
    completionTokensPerSecond: (load["2xx"] * maxTokens) / Number(values["load-seconds"]),
    latencyP50Ms: load.latency.p50,
    latencyP99Ms: load.latency.p99,
    preemptions: state.numPreemptions - preemptionsBefore,
  };
}

const output: Record<string, unknown> = {
  model: path.basename(modelPath),
  isSynthetic: values.synthetic !== undefined,
  threads: values.threads,
};
if (parts.has("capacity")) {
  const r = await capacity();
  output.capacity = r;
  console.log(
    `capacity, ${kvCells} KV cells, ${ctxSize}-token contexts, 64 short requests (${path.basename(modelPath)}):`,
  );
  console.log(
    `  slabs:                  peak ${r.slabsPeakSequences} sequences, ${r.slabsTokensPerSecond?.toFixed(0)} tok/s`,
  );
  console.log(
    `  shared, same parallel:  peak ${r.sharedAtSlabConcurrencyPeakSequences} sequences, ${r.sharedAtSlabConcurrencyTokensPerSecond?.toFixed(0)} tok/s`,
  );
  console.log(
    `  shared:                 peak ${r.sharedPeakSequences} sequences, ${r.sharedTokensPerSecond?.toFixed(0)} tok/s`,
  );
  console.log(
    `  shared / slabs:         ${((r.sharedPeakSequences ?? 0) / (r.slabsPeakSequences ?? 1)).toFixed(1)}x sequences, ${((r.sharedTokensPerSecond ?? 0) / (r.slabsTokensPerSecond ?? 1)).toFixed(2)}x tok/s`,
  );
}
if (parts.has("prefix")) {
  const r = await prefix();
  output.prefix = r;
  console.log(`prefix, 8 concurrent requests sharing ${r.prefixTokens} tokens:`);
  console.log(
    `  miss ${r.missMeanTtftMs?.toFixed(1)} ms, hit ${r.hitMeanTtftMs?.toFixed(1)} ms mean TTFT: ${((r.missMeanTtftMs ?? 0) / (r.hitMeanTtftMs ?? 1)).toFixed(1)}x`,
  );
}
if (parts.has("oversubscription")) {
  const r = await oversubscription();
  output.oversubscription = r;
  console.log(`oversubscription, demand ${r.demandOverPool?.toFixed(1)}x the pool, ${r.connections} connections:`);
  console.log(
    `  ${r.requests} requests, ${r.ok} ok, ${r.rejected429} 429, ${r.failed} failed, ${r.preemptions} preemptions, ${r.completionTokensPerSecond?.toFixed(0)} completion tok/s, p50 ${r.latencyP50Ms} ms, p99 ${r.latencyP99Ms} ms`,
  );
}
await mkdir(path.join(repoRoot, "bench/out"), { recursive: true });
await writeFile(path.join(repoRoot, "bench/out/kv-pool.json"), JSON.stringify(output, null, 2));
