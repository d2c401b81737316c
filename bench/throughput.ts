/**
 * Aggregate decode throughput at 1, 4, 8 and 16 concurrent streams, measured side by side in one process on one
 * loaded model: the bare engine loop (requests submitted directly, no HTTP) against the full server (streamed
 * completions over loopback HTTP, parsed by clients in a worker thread). Prints tokens/s and the ratio.
 *
 *   npm run bench -- [--model path.gguf | --synthetic 512x8] [--threads 1] [--max-tokens 128] [--repeats 3]
 *                    [--concurrency 1,4,8,16]
 *
 * `--synthetic DxL` benchmarks a random-weight llama of embedding size D and L layers written by the project's
 * GGUF writer (vocabulary 4096, F16): a bigger model than stories260K, whose output is meaningless.
 */

import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { greedySampling } from "../src/engine/engine.ts";
import type { FinishedOutput, RequestId } from "../src/scheduler/request.ts";
import type { Runtime } from "../src/server/serving-state.ts";
import { loadRuntimeWith } from "./harness.ts";
import { syntheticModel } from "./synthetic.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    model: { type: "string", default: path.resolve(repoRoot, "../shared/models/stories260K.gguf") },
    threads: { type: "string", default: "1" },
    "max-tokens": { type: "string", default: "128" },
    repeats: { type: "string", default: "3" },
    concurrency: { type: "string", default: "1,4,8,16" },
    synthetic: { type: "string" },
  },
});
const maxTokens = Number(values["max-tokens"]);
const repeats = Number(values.repeats);
const levels = values.concurrency.split(",").map(Number);
const maxConcurrency = Math.max(...levels);
const PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to the park", "One day, a big bird"];
const promptsFor = (n: number): string[] =>
  Array.from({ length: n }, (_, index) => PROMPTS[index % PROMPTS.length] ?? "");

async function bareRun(runtime: Runtime, n: number): Promise<{ durationMs: number; numTokens: number }> {
  const startMs = performance.now();
  const outputs = await Promise.all(
    promptsFor(n).map(
      (prompt, index) =>
        new Promise<FinishedOutput>((resolve, reject) => {
          const isAccepted = runtime.loop.submit({
            id: `bench-${index}-${startMs}` as RequestId,
            promptTokens: runtime.engine.tokenize(prompt, { addBos: true }),
            params: {
              maxTokens,
              sampling: greedySampling(index),
              stopStrings: [],
              stopTokens: [],
              ignoreEos: true,
            },
            sink: { onDelta: () => undefined, onFinish: resolve },
            arrivalAtMs: startMs,
          });
          if (!isAccepted) reject(new Error("queue full"));
        }),
    ),
  );
  return {
    durationMs: performance.now() - startMs,
    numTokens: outputs.reduce((sum, output) => sum + output.numOutputTokens, 0),
  };
}

function httpRun(
  worker: Worker,
  baseUrl: string,
  modelId: string,
  n: number,
): Promise<{ durationMs: number; numTokens: number }> {
  return new Promise((resolve, reject) => {
    worker.once("message", (message: { durationMs: number; numTokens: number; error?: string }) => {
      if (message.error !== undefined) reject(new Error(message.error));
      else resolve(message);
    });
    worker.postMessage({ baseUrl, model: modelId, prompts: promptsFor(n), maxTokens });
  });
}

function median(numbers: number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  const modelPath =
    values.synthetic === undefined
      ? values.model
      : await syntheticModel(values.synthetic, path.join(repoRoot, ".cache/pagoda"));
  const server = await loadRuntimeWith(
    [
      "--model",
      modelPath,
      "--threads",
      values.threads,
      "--parallel",
      String(maxConcurrency),
      "--ctx-size",
      String(maxTokens + 64),
    ],
    { listen: true },
  );
  const runtime = server.runtime;
  const baseUrl = server.baseUrl ?? "";
  // Loader hooks do not reach worker threads on Node 20, so the worker registers tsx itself.
  const workerUrl = new URL("./http-load-worker.ts", import.meta.url).href;
  const tsxApi = import.meta.resolve("tsx/esm/api");
  const shim = `import { register } from ${JSON.stringify(tsxApi)}; register(); await import(${JSON.stringify(workerUrl)});`;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(shim)}`));

  await bareRun(runtime, maxConcurrency);
  await httpRun(worker, baseUrl, runtime.modelId, maxConcurrency);

  const rows: { concurrency: number; bareTokensPerSecond: number; httpTokensPerSecond: number; ratio: number }[] = [];
  for (const n of levels) {
    const bare: number[] = [];
    const http: number[] = [];
    for (let repeat = 0; repeat < repeats; repeat++) {
      const bareResult = await bareRun(runtime, n);
      bare.push((bareResult.numTokens / bareResult.durationMs) * 1000);
      const httpResult = await httpRun(worker, baseUrl, runtime.modelId, n);
      if (httpResult.numTokens !== n * maxTokens) throw new Error(`HTTP run returned ${httpResult.numTokens} tokens`);
      http.push((httpResult.numTokens / httpResult.durationMs) * 1000);
    }
    const row = {
      concurrency: n,
      bareTokensPerSecond: median(bare),
      httpTokensPerSecond: median(http),
      ratio: median(http) / median(bare),
    };
    rows.push(row);
  }

  console.log(
    `model ${path.basename(modelPath)}${values.synthetic === undefined ? "" : " (random weights)"}, threads ${values.threads}, ${maxTokens} tokens per stream, median of ${repeats}`,
  );
  console.log("streams | bare loop tok/s | HTTP+SSE tok/s | HTTP / bare");
  for (const row of rows) {
    console.log(
      `${String(row.concurrency).padStart(7)} | ${row.bareTokensPerSecond.toFixed(0).padStart(15)} | ${row.httpTokensPerSecond.toFixed(0).padStart(14)} | ${row.ratio.toFixed(3).padStart(11)}`,
    );
  }
  await mkdir(path.join(repoRoot, "bench/out"), { recursive: true });
  await writeFile(
    path.join(repoRoot, "bench/out/throughput.json"),
    JSON.stringify(
      {
        model: path.basename(modelPath),
        isSynthetic: values.synthetic !== undefined,
        threads: values.threads,
        maxTokens,
        repeats,
        rows,
      },
      null,
      2,
    ),
  );
  await worker.terminate();
  await server.close();
}

await main();
